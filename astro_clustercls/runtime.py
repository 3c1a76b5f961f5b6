# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Runtime choices, made in one place: device, numeric precision, test-time
augmentation.

The classifier, the ensemble, training, the experiments and the Dask workers
all decide through these functions, so they cannot drift apart:

- `resolve_device`: ``None`` means ``astro_clustercls.conf.device``;
  ``'auto'`` means CUDA when available, else the CPU; anything else is
  checked (and a device that is not there is refused, naming it).
- `resolve_precision`: ``'auto'`` means bfloat16 on CPUs that compute it in
  hardware (`cpu_has_native_bf16`: AVX512-BF16, AMX or Arm BF16, and oneDNN
  able to use it) and on CUDA GPUs that support it, float16 on older CUDA GPUs
  with tensor cores (compute capability 7.x), float32 everywhere else; on
  CPUs without native bfloat16 the classifier then runs the bundled networks'
  int8 copy where it can (`~astro_clustercls.ClusterClassifier`,
  ``conf.int8_auto``).
- `autocast`: the autocast context of a precision (float32 disables it).
- Test-time augmentation (`tta_probabilities`): **the class probabilities
  are the mean, over the 8 rotations and flips of the cutout, of
  ``softmax(logits / T)``** (T the weights' temperature). Probabilities are
  averaged, not logits: the result is a mixture of the eight predictions,
  and it is what `~astro_clustercls.ClusterClassifier` (``tta=True``),
  `~astro_clustercls.training.predict_logits` and the experiments report.
"""

import contextlib
import functools
import re

import torch

from ._config import conf
from .preprocessing import dihedral
from .utils._parameters import validate_choice

__all__ = ["DEVICE_CHOICES", "PRECISIONS", "resolve_device", "torch_device",
           "cpu_has_native_bf16", "resolve_precision", "autocast_dtype", "autocast",
           "tta_probabilities", "N_TTA_VIEWS"]

#: device names accepted besides 'cuda:N' (listed in error messages)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:0", "mps")

#: accepted values of ``precision``
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_PRECISION_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16",
                      "half": "fp16"}

#: the views test-time augmentation averages over (the dihedral group of the square)
N_TTA_VIEWS = 8


def resolve_device(device=None):
    """
    The torch device to run on, as a validated string.

    Parameters
    ----------
    device : str or `torch.device`, optional
        ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'`` or ``'auto'`` (CUDA if
        available, else the CPU). Default: ``astro_clustercls.conf.device``.

    Returns
    -------
    str
        ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'``.

    Raises
    ------
    TypeError, ValueError
        For another type, an unknown name (with close matches), or a device
        this machine does not have.

    Examples
    --------
    >>> from astro_clustercls.runtime import resolve_device
    >>> resolve_device('cpu')
    'cpu'
    """
    if device is None:
        device = conf.device
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"'device' must be a string such as 'cpu' or 'cuda', or a "
                        f"torch.device, got {type(device).__name__}")
    name = device.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not torch.cuda.is_available():
            raise ValueError(f"'device' is {device!r} but CUDA is not available on "
                             "this machine; use device='cpu' or 'auto'")
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"'device' is {device!r} but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
        return name
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("'device' is 'mps' but MPS is not available on this "
                             "machine; use device='cpu' or 'auto'")
        return "mps"
    # unknown: raise listing the valid ones, with close-match suggestions
    validate_choice("device", device, DEVICE_CHOICES)
    raise AssertionError("unreachable")  # pragma: no cover


def torch_device(device=None):
    """
    `resolve_device` as a `torch.device`.

    Examples
    --------
    >>> from astro_clustercls.runtime import torch_device
    >>> torch_device('cpu')
    device(type='cpu')
    """
    return torch.device(resolve_device(device))


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16():
    """
    True if this CPU computes bfloat16 in hardware and oneDNN can use it.

    oneDNN accepts bfloat16 on any AVX512 CPU, but without the AVX512-BF16 or
    AMX-BF16 instructions (x86) or BF16 (Arm) it emulates it more slowly
    than float32, so those flags are required too (read from
    ``/proc/cpuinfo``; other systems answer False).
    """
    try:
        if not bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):  # pragma: no cover - old/odd builds
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            words = set(f.read().split())
    except OSError:  # pragma: no cover - not Linux
        return False
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(precision, device):
    """
    The numeric precision to run in on ``device``: 'fp32', 'bf16' or 'fp16'.

    Parameters
    ----------
    precision : {'auto', 'fp32', 'bf16', 'fp16', 'int8'}
        Also the aliases 'float32', 'bfloat16', 'float16', 'half'. ``'auto'``:
        see the module's docstring ('int8', the CPU only, is chosen by the
        classifier itself where it has an int8 copy of bundled weights).
    device : str or `torch.device`
        A device as `resolve_device` returns it.

    Examples
    --------
    >>> from astro_clustercls.runtime import resolve_precision
    >>> resolve_precision('float32', 'cpu')
    'fp32'
    """
    if not isinstance(precision, str):
        raise TypeError(f"'precision' must be one of {PRECISIONS}, got "
                        f"{precision!r}")
    name = precision.strip().lower()
    name = _PRECISION_ALIASES.get(name, name)
    name = validate_choice("precision", name, PRECISIONS)
    device = str(device)
    if name == "int8" and device.split(":")[0] != "cpu":
        raise ValueError(f"'precision' 'int8' runs on the CPU only, not on {device!r}; "
                         "use precision='auto'")
    if name != "auto":
        return name
    kind = device.split(":")[0]
    if kind == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if kind == "cuda":
        index = torch.device(device).index or 0
        try:
            bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # pragma: no cover - older torch
            bf16 = torch.cuda.is_bf16_supported()
        if bf16:
            return "bf16"
        if torch.cuda.get_device_capability(index) >= (7, 0):
            return "fp16"  # tensor cores (Volta, Turing)
    return "fp32"


def autocast_dtype(precision):
    """The autocast dtype of a resolved precision (None for 'fp32')."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast(device_type, precision):
    """
    The autocast context for ``precision`` on ``device_type`` ('cpu', 'cuda').

    'fp32' gives a context that changes nothing.
    """
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def tta_probabilities(logits_of, x, *, temperature=1.0, tta=True):
    """
    Class probabilities of a batch, with or without test-time augmentation.

    Parameters
    ----------
    logits_of : callable
        ``logits_of(batch) -> (N, K)`` float tensor of logits.
    x : `torch.Tensor` (N, B, S, S)
        The normalised cutouts.
    temperature : float, optional
        Logits are divided by it before the softmax.
    tta : bool, optional
        If True, the mean over the 8 rotations/flips of ``softmax(logits / T)``
        (the package's TTA convention); if False, ``softmax(logits(x) / T)``.

    Returns
    -------
    `torch.Tensor` (N, K), float32

    Examples
    --------
    >>> import torch
    >>> from astro_clustercls.runtime import tta_probabilities
    >>> x = torch.zeros(2, 1, 3, 3)
    >>> x[0, 0, 0, 0] = 1.0  # a corner pixel: its position changes with the view
    >>> def logits_of(b):
    ...     return torch.stack([b[:, 0, 0, 0], torch.zeros(len(b))], dim=1) * 10
    >>> p = tta_probabilities(logits_of, x)  # 2 of the 8 views put it at (0, 0)
    >>> [round(v, 3) for v in p[0].tolist()]  # (2 * 1.0 + 6 * 0.5) / 8
    [0.625, 0.375]
    >>> # averaging the logits instead would give softmax([2.5, 0]) = [0.924, 0.076]
    """
    temperature = float(temperature)
    if not tta:
        return torch.softmax(logits_of(x).float() / temperature, dim=1)
    probs = 0
    for k in range(N_TTA_VIEWS):
        probs = probs + torch.softmax(logits_of(dihedral(x, k)).float() / temperature,
                                      dim=1)
    return probs / float(N_TTA_VIEWS)
