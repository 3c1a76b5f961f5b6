# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
int8 inference on CPUs: static post-training quantization with ONNX Runtime.

`quantize_network` turns a float network (BatchNorm folded or not) and a few
hundred normalised calibration cutouts into an `Int8Network`: the
convolutions run in int8 (weights per output channel, 7 bits; activations per
tensor, 8 bits, ranges from the calibration cutouts' minima and maxima), the
fully connected head stays float32, all in ONNX Runtime's CPU kernels (MLAS).
Rows whose int8 logits leave the best two classes closer than ``margin`` --
the near-ties where int8 rounding could change the label -- are recomputed
in float32 by ONNX Runtime from the same exported graph (the *guard*).
The margin is chosen per network (``margin='auto'``): the smallest of
`MARGIN_GRID` with which the labels of independent validation cutouts agree
with float32 for at least `MIN_AGREEMENT` of them. `simulated_calibration`
makes the calibration and validation cutouts from the simulation, from fixed
seeds, so `int8_network` -- the package's settings in one call -- is a pure
function of the weights and the versions and can be cached on disk
(`Int8Network.save` / `Int8Network.load`). `int8_support` tells where int8
is expected to be the faster path.

Measured with ``benchmarks/bench_int8.py`` (bundled ResNet18 ``SIM_V2``,
51x51 px, batch 256, on a 2-core AMD EPYC with AVX2 only -- no AVX512, no
VNNI, no native bf16 -- shared with other jobs, load average 3-9;
onnxruntime 1.32, torch 2.14), in ratios to the plain float32 torchvision
forward (NCHW, BatchNorm not folded) timed in the same rounds:

* speed, one thread: 2.5-2.8x with the guard (margin 0.2, 5-7 % of the rows
  recomputed), 3.0-3.3x without it, 2.1-2.2x end to end with the cutouts
  and their normalisation done serially; two threads: 3.2x (3.1x end to
  end). The folded ``channels_last`` float32 forward gets 1.4-1.7x, which is
  already ~0.9 of the measured float32 matrix-product throughput
  (``torch.mm`` 2048^3), so only int8 gets past 2x on this CPU; the int8
  path runs at ~1.7x that float32 limit and ~0.85 of ONNX Runtime's int8
  matrix-product throughput (``MatMulInteger`` 2048^3);
* labels: 99.85-100 % agree with the float32 network on the objects of
  simulated fields (1000, 1500, 2000 objects: 0, 2, 3 differ), 99.9 % on
  4000 simulated training-set objects (half of them of the held-out
  galaxy); 98.8-99.2 % without the guard; logits of the rows kept in int8
  differ by 0.045 (median), probabilities by 0.10 at most. VGG19-BN: 2.5x,
  all 800 labels of a field agree;
* every row's result is bit-identical whatever the batch size and the row's
  place in the batch (int8 products are exact integer sums, and ONNX
  Runtime's float32 kernels were found batch-invariant too: batch sizes 1,
  2, 3, 7, 16, 64, 256 and shifted windows checked), so labels and
  probabilities do not depend on ``batch_size``.

Alternatives measured and not taken: PyTorch's FX static quantization with
the ``x86`` backend (fbgemm kernels) reached 3.0x the plain forward (ONNX
Runtime's int8 without the guard: 3.0-4.9x across runs) and 98.0 % label
agreement with its default settings (99.2 % with 8-bit activations, 7-bit
weights and a float head); but ``torch.ao.quantization`` is deprecated (its
own warning announces its removal), and its kernels return batch-size
dependent float32 logits (the float head's matrix product differs in the
last bit at batch size 1). The PT2E ``X86InductorQuantizer`` was not timed:
it needs ``torch.compile`` (a C++ compiler at run time, and a compilation
longer than classifying a field). ONNX Runtime float32 alone is no faster
than the folded ``channels_last`` torch forward. The 7-bit weights used here
(``reduce_range``) keep the ``vpmaddubsw`` sums of CPUs without VNNI from
saturating, so the int8 products are exact on every x86 CPU.

The exported graphs (int8 and float32) also output the pooled features of
every stage of the network (`~astro_clustercls.models.network_stages`), for
the out-of-distribution score: the nodes that only compute them stay
float32, so the logits' graph is quantized exactly as without them, and the
score costs the int8 path about what it costs the float32 one
(``benchmarks/bench_ood.py``; the classifier recomputes in float32 the
stage features of rows whose score is near its threshold).

ONNX Runtime is an optional dependency: ``onnxruntime`` to run, plus ``onnx``
to quantize; both are imported on use, with an ImportError naming them.
"""

import copy
import functools
import importlib.util
import io
import json
import os
import platform
import tempfile
import warnings
import zipfile

import numpy as np
import torch
from torch import nn

from ..utils._parameters import validate_positive_int
from ..utils.exceptions import ClusterClsWarning
from ._fusion import fold_batchnorm
from ._ood import network_stages

__all__ = ["Int8Network", "quantize_network", "int8_network",
           "simulated_calibration", "int8_support", "int8_expected_faster",
           "DEFAULT_MARGIN", "MARGIN_GRID", "MIN_AGREEMENT", "CALIBRATION_SEED",
           "CALIBRATION_SIZE", "VALIDATION_SIZE"]

# doctests that need the optional packages (pytest-doctestplus)
__doctest_requires__ = {("quantize_network", "int8_network"): ["onnxruntime", "onnx"]}

#: logit gap between the best two classes below which a row is recomputed
#: in float32
DEFAULT_MARGIN = 0.2
#: margins ``margin='auto'`` tries, smallest first
MARGIN_GRID = (0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: label agreement with float32 that ``margin='auto'`` asks of the validation set
MIN_AGREEMENT = 0.998
#: seed of the simulated calibration cutouts (`simulated_calibration`); the
#: validation cutouts of the classifier use the next one
CALIBRATION_SEED = 1559
#: number of simulated calibration cutouts
CALIBRATION_SIZE = 256
#: number of simulated validation cutouts (seed ``CALIBRATION_SEED + 1``)
VALIDATION_SIZE = 512

_CALIBRATION_BATCH = 64
_OPSET = 17
_INPUT, _OUTPUT = "x", "logits"
# format 2: the graphs also output the pooled stage features (the OOD score's)
_FORMAT_VERSION = 2
# operators quantized (None: all ONNX Runtime can, but the head)
_OP_TYPES = None
_INSTALL_HINT = ("int8 inference needs the optional packages onnxruntime and onnx: "
                 "pip install onnxruntime onnx")


# ---------------------------------------------------------------------------
# where int8 pays
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _cpu_flags():
    """The CPU feature flags of ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:  # pragma: no cover - not Linux
        pass
    return frozenset()


def _has_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        return False


def int8_support(device="cpu", *, native_bf16=None):
    """
    Whether int8 inference is expected to be the fastest path here, and why.

    int8 is chosen on x86-64 CPUs with AVX2 that do not compute bfloat16
    natively, when onnxruntime and onnx are installed: there it was measured
    at 2.5-2.8x the plain float32 forward on one thread, 3.2x on two (AVX2
    without VNNI; CPUs with VNNI have faster int8 instructions still), where
    float32 cannot pass ~1.7x. On CPUs with native bfloat16 (AVX512-BF16,
    AMX) the classifier's bf16 path (2.1x the plain forward, 2.4x end to end,
    measured) stays the choice: int8 was not measured there. Other CPUs and
    devices keep their float paths.

    Parameters
    ----------
    device : str or `torch.device`, optional
        The device inference runs on; only ``'cpu'`` can run int8.
    native_bf16 : bool, optional
        Whether the CPU computes bfloat16 natively (the classifier knows);
        default: read from the CPU flags (``avx512_bf16``, ``amx_bf16``).

    Returns
    -------
    ok : bool
        True where `quantize_network` is expected to be faster than float.
    reason : str
        Why not (empty when ``ok``), for messages and provenance.

    Examples
    --------
    >>> from astro_clustercls.models._quantize import int8_support
    >>> ok, reason = int8_support("cuda")
    >>> ok, reason
    (False, 'int8 inference runs on the CPU only')
    """
    kind = str(device).split(":")[0].strip().lower()
    if kind != "cpu":
        return False, "int8 inference runs on the CPU only"
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "x64"):
        return False, f"int8 is measured on x86-64 CPUs only, this is {machine!r}"
    capability = ""
    try:
        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    except (AttributeError, RuntimeError):  # pragma: no cover - old torch
        pass
    if "AVX2" not in capability and "AVX512" not in capability and \
            "avx2" not in _cpu_flags():
        return False, "int8 needs a CPU with AVX2"
    if native_bf16 is None:
        native_bf16 = bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    if native_bf16:
        return False, ("the CPU computes bfloat16 natively: bf16 is the measured "
                       "fast path there")
    missing = [m for m in ("onnxruntime", "onnx") if not _has_module(m)]
    if missing:
        return False, f"{' and '.join(missing)} not installed ({_INSTALL_HINT})"
    return True, ""


def int8_expected_faster(device="cpu", *, native_bf16=None):
    """True where int8 inference is expected to be the fastest (`int8_support`)."""
    return int8_support(device, native_bf16=native_bf16)[0]


def _import_onnxruntime(quantization=False):
    """onnxruntime (and its quantization tools), or an ImportError naming them."""
    try:
        import onnxruntime
        if quantization:
            import onnx  # noqa: F401 - needed by onnxruntime.quantization
            import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from None
    return onnxruntime


# ---------------------------------------------------------------------------
# calibration cutouts
# ---------------------------------------------------------------------------
def simulated_calibration(meta, n=CALIBRATION_SIZE, seed=CALIBRATION_SEED):
    """
    Normalised simulated cutouts to calibrate a network's int8 ranges.

    Parameters
    ----------
    meta : dict
        The network's meta (``net.clustercls_meta``): ``'bands'``,
        ``'cutout_size'`` and ``'normalization'`` are used.
    n : int, optional
        Number of cutouts (default `CALIBRATION_SIZE`).
    seed : int, optional
        Simulation seed (default `CALIBRATION_SEED`): the same seed gives the
        same cutouts, so the same quantized network.

    Returns
    -------
    cutouts : `~numpy.ndarray` (n, B, S, S) float32
        Training-set-like cutouts (observing conditions varied across blocks
        of objects) normalised with the network's recipe.
    """
    from ..preprocessing import normalize
    from ..simulation import make_training_set

    if not hasattr(meta, "get"):
        raise TypeError(f"'meta' must be a network's meta dict, got "
                        f"{type(meta).__name__}")
    n = validate_positive_int("n", n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"'seed' must be an int, got {seed!r}")
    missing = [k for k in ("bands", "cutout_size") if meta.get(k) is None]
    if missing:
        raise ValueError(f"'meta' lacks {missing}: the calibration cutouts need the "
                         "network's bands and cutout size")
    ts = make_training_set(n, int(meta["cutout_size"]), seed=int(seed),
                           bands=tuple(meta["bands"]), vary_conditions=True)
    return normalize(ts.data, meta.get("normalization", "asinh-v1"))


def _as_cutouts(name, value):
    """``value`` as a C-contiguous float32 (N, B, S, S) array of finite values."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be an array (N, bands, size, size) of "
                        f"normalised cutouts, got {type(value).__name__}") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype,
                                                                   np.integer)):
        raise TypeError(f"'{name}' must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[0] < 1:
        raise ValueError(f"'{name}' must have shape (N >= 1, bands, size, size), got "
                         f"{arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"'{name}' must be finite (normalised cutouts); it has "
                         f"{int(np.count_nonzero(~np.isfinite(arr)))} non-finite "
                         "value(s)")
    return arr


def _validate_margin(margin, allow_auto=False):
    if allow_auto and isinstance(margin, str) and margin.strip().lower() == "auto":
        return "auto"
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.floating,
                                                           np.integer)):
        what = " or 'auto'" if allow_auto else ""
        raise TypeError(f"'margin' must be a number >= 0 (a logit gap){what}, got "
                        f"{margin!r}")
    margin = float(margin)
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"'margin' must be finite and >= 0, got {margin!r}")
    return margin


# ---------------------------------------------------------------------------
# export and quantization
# ---------------------------------------------------------------------------
class _WithStages(nn.Module):
    """A network of ours returning its logits and pooled stage features."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits, stages = network_stages(self.net, x)
        return (logits, *stages)


def _n_stages(net, example):
    """Pooled stage outputs of a ResNet18/VGG19-BN of ours (0 for other networks)."""
    if not (hasattr(net, "layer4") or hasattr(net, "features")):
        return 0
    with torch.no_grad():
        return len(network_stages(net, example)[1])


def _stage_names(n_stages):
    return [f"stage{i}" for i in range(n_stages)]


def _export_onnx(net, example, path, n_stages=0):
    """
    Write ``net`` (float32, CPU, eval) as ONNX with a dynamic batch axis; with
    ``n_stages``, its pooled stage features are outputs too.
    """
    outputs = [_OUTPUT, *_stage_names(n_stages)]
    if n_stages:
        net = _WithStages(net)
    axes = {name: {0: "batch"} for name in [_INPUT, *outputs]}
    with warnings.catch_warnings(), torch.no_grad():
        # the exporters' deprecation notices and tracer warnings are theirs
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (example,), path, dynamo=False,
                              input_names=[_INPUT], output_names=outputs,
                              dynamic_axes=axes,
                              opset_version=_OPSET, do_constant_folding=True)
            return
        except (TypeError, RuntimeError, ImportError, NotImplementedError) as exc:
            legacy_error = exc  # the TorchScript exporter is gone: try torch.export
        try:
            torch.onnx.export(net, (example,), path, dynamo=True, verbose=False,
                              input_names=[_INPUT], output_names=outputs,
                              dynamic_shapes=({0: torch.export.Dim("batch")},),
                              opset_version=max(_OPSET, 18), external_data=False)
        except Exception as exc:
            raise RuntimeError(
                "could not export the network to ONNX for int8 inference "
                f"(TorchScript exporter: {legacy_error!r}; torch.export-based "
                f"exporter, which needs onnxscript: {exc!r})") from exc


def _float_nodes(path):
    """
    Names of the nodes of an ONNX model that stay float32: the fully connected
    ones (Gemm, MatMul) and those that only feed the stage outputs (the pooled
    statistics), so the logits' graph is quantized as without stage outputs.
    Unnamed nodes are named (the file is rewritten).
    """
    import onnx

    model = onnx.load(path, load_external_data=False)
    renamed = False
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"_node{i}"
            renamed = True
    if renamed:
        onnx.save(model, path)
    producer = {out: node for node in model.graph.node for out in node.output}
    needed, todo = set(), [_OUTPUT]
    while todo:
        node = producer.get(todo.pop())
        if node is not None and node.name not in needed:
            needed.add(node.name)
            todo.extend(node.input)
    return [node.name for node in model.graph.node
            if node.op_type in ("Gemm", "MatMul") or node.name not in needed]


class _Quiet:
    """
    Silence ONNX Runtime's quantization notices for a while: they go to the
    root logger, which `logging.warning` would otherwise give a stderr handler.
    """

    def __enter__(self):
        import logging

        self._root = logging.getLogger()
        self._level = self._root.level
        self._handler = logging.NullHandler()
        self._root.addHandler(self._handler)
        self._root.setLevel(logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        self._root.setLevel(self._level)
        self._root.removeHandler(self._handler)
        return False


def _quantize_onnx(float_path, int8_path, cutouts, op_types=None):
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        """The calibration cutouts in batches, in order (deterministic)."""

        def __init__(self):
            self._batches = iter(
                [{_INPUT: cutouts[i:i + _CALIBRATION_BATCH]}
                 for i in range(0, len(cutouts), _CALIBRATION_BATCH)])

        def get_next(self):
            return next(self._batches, None)

    with _Quiet():
        q.quantize_static(
            float_path, int8_path, Reader(),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            nodes_to_exclude=_float_nodes(float_path),  # head, stage statistics
            per_channel=True,
            reduce_range=True,  # 7-bit weights: exact products without VNNI
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax)


def _gap(logits):
    """Logit gap between the best two classes of each row."""
    top2 = np.partition(logits, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _guard_stats(raw, ref, margin):
    """Agreement of guarded int8 labels (int8 logits ``raw``) with ``ref``'s."""
    labels = ref.argmax(1)
    redo = _gap(raw) < margin
    same = (raw.argmax(1) == labels) | redo
    return {"agreement": float(np.mean(same)),
            "agreement_unguarded": float(np.mean(raw.argmax(1) == labels)),
            "recomputed": float(np.mean(redo)), "n_validation": int(len(ref)),
            "max_abs_dlogit": float(np.abs(np.where(redo[:, None], ref, raw)
                                           - ref).max())}


def quantize_network(net, calibration, *, margin=DEFAULT_MARGIN, validation=None,
                     num_threads=None):
    """
    An int8 copy of a float network, for CPU inference with ONNX Runtime.

    Parameters
    ----------
    net : `torch.nn.Module`
        The float network in evaluation mode (any device; it is copied, not
        changed). BatchNorm layers are folded into the convolutions first
        (`~astro_clustercls.models._fusion.fold_batchnorm`).
    calibration : array-like (N, B, S, S)
        Normalised cutouts whose activation ranges set the int8 scales, e.g.
        ``simulated_calibration(net.clustercls_meta)`` (256 are enough; their
        order is kept, so the result is deterministic).
    margin : float or 'auto', optional
        Rows whose int8 logits put the best two classes less than ``margin``
        apart are recomputed in float32 (default `DEFAULT_MARGIN`; 0 turns
        the guard off). ``'auto'``: the smallest of `MARGIN_GRID` with which
        the labels of the ``validation`` cutouts (or, without them, of the
        calibration cutouts) agree with float32 for at least
        `MIN_AGREEMENT` of them (the largest if none does): a network whose
        int8 rounding moves its logits more gets a wider guard.
    validation : array-like (M, B, S, S), optional
        Other normalised cutouts on which to measure the label agreement with
        the float32 network; ``info`` then holds ``'agreement'`` (guarded),
        ``'agreement_unguarded'``, ``'recomputed'`` (fraction of rows),
        ``'n_validation'`` and ``'max_abs_dlogit'``.
    num_threads : int, optional
        Threads of the ONNX Runtime sessions; default: ``torch.get_num_threads()``
        at each call.

    Returns
    -------
    `Int8Network`

    Raises
    ------
    TypeError, ValueError
        For an invalid ``net``, ``calibration``, ``validation``, ``margin`` or
        ``num_threads`` (the message names it).
    ImportError
        If onnxruntime or onnx is not installed.

    Examples
    --------
    A small network and random "cutouts" (use `simulated_calibration` for a
    real network):

    >>> import torch
    >>> from astro_clustercls.models._quantize import quantize_network
    >>> net = torch.nn.Sequential(
    ...     torch.nn.Conv2d(5, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    ...     torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    >>> q = quantize_network(net, torch.randn(16, 5, 15, 15).numpy())
    >>> q(torch.randn(3, 5, 15, 15)).shape
    torch.Size([3, 4])
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"'net' must be a torch.nn.Module, got {type(net).__name__}")
    if net.training:
        raise ValueError("'net' must be in evaluation mode (call .eval()) before it "
                         "is quantized")
    cutouts = _as_cutouts("calibration", calibration)
    margin = _validate_margin(margin, allow_auto=True)
    if validation is not None:
        validation = _as_cutouts("validation", validation)
        if validation.shape[1:] != cutouts.shape[1:]:
            raise ValueError(f"'validation' cutouts have shape {validation.shape[1:]} "
                             f"but the 'calibration' cutouts {cutouts.shape[1:]}")
    if num_threads is not None:
        num_threads = validate_positive_int("num_threads", num_threads)
    _import_onnxruntime(quantization=True)

    float_net = copy.deepcopy(net).float().cpu().eval()
    fold_batchnorm(float_net)
    example = torch.from_numpy(cutouts[:1])
    try:
        with torch.no_grad():
            out = float_net(example)
    except RuntimeError as exc:
        raise ValueError(f"'calibration' cutouts of shape {cutouts.shape[1:]} do not "
                         f"fit the network: {exc}") from None
    if out.ndim != 2:
        raise ValueError(f"'net' must return (N, classes) logits, got shape "
                         f"{tuple(out.shape)}")
    n_stages = _n_stages(float_net, example)
    with tempfile.TemporaryDirectory(prefix="astro_clustercls-int8-") as tmp:
        float_path = os.path.join(tmp, "float.onnx")
        int8_path = os.path.join(tmp, "int8.onnx")
        _export_onnx(float_net, example, float_path, n_stages)
        _quantize_onnx(float_path, int8_path, cutouts, _OP_TYPES)
        with open(float_path, "rb") as f:
            float_model = f.read()
        with open(int8_path, "rb") as f:
            int8_model = f.read()
    meta = getattr(net, "clustercls_meta", None) or {}
    import onnxruntime

    info = {"margin": margin, "n_calibration": int(len(cutouts)),
            "input_shape": [int(v) for v in cutouts.shape[1:]],
            "num_classes": int(out.shape[1]), "n_stages": n_stages,
            "weights_sha256": meta.get("sha256"),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "scheme": "static QDQ, convolutions int8 (weights per channel 7 bit, "
                      "activations per tensor 8 bit, MinMax), head float32"}
    qnet = Int8Network(int8_model, float_model,
                       margin=DEFAULT_MARGIN if margin == "auto" else margin,
                       info=info, num_threads=num_threads)
    if validation is None and margin != "auto":
        return qnet
    check = cutouts if validation is None else validation
    raw, ref = qnet._both(check)
    if margin == "auto":
        for margin in MARGIN_GRID:
            if _guard_stats(raw, ref, margin)["agreement"] >= MIN_AGREEMENT:
                break
        qnet.margin = qnet.info["margin"] = margin
        qnet.info["margin_from"] = ("validation" if validation is not None
                                    else "calibration")
    qnet.info.update(_guard_stats(raw, ref, qnet.margin))
    return qnet


def _cache_name(meta):
    """File name of a network's int8 copy: weights hash, settings, versions."""
    import onnxruntime

    torch_version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    return (f"{meta.get('architecture', 'net')}-{str(meta['sha256'])[:16]}"
            f"-c{CALIBRATION_SIZE}s{CALIBRATION_SEED}-v{VALIDATION_SIZE}"
            f"-a{MIN_AGREEMENT:g}-ort{onnxruntime.__version__}-torch{torch_version}"
            f"-f{_FORMAT_VERSION}.int8.zip")


def int8_network(net, *, cache_dir=None, num_threads=None):
    """
    The int8 copy of a network of ours, with the package's settings.

    Calibrated on `CALIBRATION_SIZE` simulated cutouts (seed
    `CALIBRATION_SEED`), its guard margin chosen (``margin='auto'``) on
    `VALIDATION_SIZE` others (the next seed), so the result depends only on
    the weights and the versions: the classifier can cache it on disk.

    Parameters
    ----------
    net : `torch.nn.Module`
        From `~astro_clustercls.models.get_model` (its ``clustercls_meta``
        gives the bands, cutout size, normalisation and weights hash).
    cache_dir : path-like, optional
        A directory to read the int8 copy from, or to write it to after
        building it (~20 s for ResNet18 at 51 px on one core; loading takes
        well under a second). Networks without a weights hash are not cached.
    num_threads : int, optional
        See `quantize_network`.

    Returns
    -------
    `Int8Network`
        Its ``info`` holds the validation agreement (``'agreement'``), which
        the classifier can require (>= 0.995) before choosing int8 itself.
    """
    meta = getattr(net, "clustercls_meta", None)
    if not isinstance(meta, dict):
        raise TypeError("'net' must be a network from get_model (with a "
                        "clustercls_meta dict)")
    _import_onnxruntime()  # onnx too, but only to build (quantize_network)
    path = None
    if cache_dir is not None and meta.get("sha256"):
        path = os.path.join(os.fspath(cache_dir), _cache_name(meta))
        if os.path.exists(path):
            try:
                return Int8Network.load(path, num_threads=num_threads)
            except OSError:  # unreadable: rebuilt and replaced below
                pass
    calibration = simulated_calibration(meta, CALIBRATION_SIZE, CALIBRATION_SEED)
    validation = simulated_calibration(meta, VALIDATION_SIZE, CALIBRATION_SEED + 1)
    qnet = quantize_network(net, calibration, margin="auto", validation=validation,
                            num_threads=num_threads)
    if path is not None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            qnet.save(path)
        except OSError as exc:  # a read-only cache: build again next time
            warnings.warn(f"could not cache the int8 network in {cache_dir}: {exc}",
                          ClusterClsWarning)
    return qnet


# ---------------------------------------------------------------------------
# the int8 network
# ---------------------------------------------------------------------------
class Int8Network(nn.Module):
    """
    A network quantized by `quantize_network`, run by ONNX Runtime on the CPU.

    Called like the float network: a float tensor or array (N, B, S, S), any
    memory layout, gives float32 logits (N, classes), a CPU tensor. Rows whose
    int8 logits leave the best two classes less than ``margin`` apart are
    recomputed in float32.
    Each row's logits are bit-identical whatever the batch size and the row's
    place in the batch.

    Parameters
    ----------
    int8_model, float_model : bytes
        The quantized and the float ONNX models (input ``'x'``, output
        ``'logits'``, then, for our ResNet18 and VGG19-BN, ``'stage0'``...
        the pooled stage features: ``info['n_stages']`` of them).
    margin : float, optional
        See `quantize_network`.
    info : dict, optional
        Provenance (calibration, versions, measured agreement), kept with the
        model by `save`.
    num_threads : int, optional
        ONNX Runtime threads; default ``torch.get_num_threads()`` at each call.
    block_rows : int, optional
        Rows per ONNX Runtime call (default 256): an input of any length is
        run in blocks of this many rows, its near-ties recomputed together
        at the end, so a whole chunk of cutouts can be passed at once (memory
        stays that of one block; results do not depend on it).

    Attributes
    ----------
    n_rows, n_recomputed : int
        Rows run and rows recomputed in float32 since creation (or
        `reset_counts`).
    """

    def __init__(self, int8_model, float_model, *, margin=DEFAULT_MARGIN, info=None,
                 num_threads=None, block_rows=256):
        super().__init__()
        for name, model in (("int8_model", int8_model), ("float_model", float_model)):
            if not isinstance(model, (bytes, bytearray)):
                raise TypeError(f"'{name}' must be the bytes of an ONNX model, got "
                                f"{type(model).__name__}")
        self.int8_model, self.float_model = bytes(int8_model), bytes(float_model)
        self.margin = _validate_margin(margin)
        self.info = dict(info or {})
        self.info["margin"] = self.margin
        self.num_threads = (None if num_threads is None else
                            validate_positive_int("num_threads", num_threads))
        self.block_rows = validate_positive_int("block_rows", block_rows)
        self._sessions = {}
        self.reset_counts()

    def reset_counts(self):
        """Set `n_rows` and `n_recomputed` to zero."""
        self.n_rows = 0
        self.n_recomputed = 0

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sessions"] = {}  # rebuilt on use (not picklable)
        return state

    def __repr__(self):
        return (f"<Int8Network margin={self.margin:g} "
                f"int8 {len(self.int8_model) / 2**20:.1f} MiB, "
                f"onnxruntime {self.info.get('onnxruntime', '?')}>")

    def _session(self, kind):
        threads = self.num_threads or max(int(torch.get_num_threads()), 1)
        key = (kind, threads)
        session = self._sessions.get(key)
        if session is None:
            ort = _import_onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            model = self.int8_model if kind == "int8" else self.float_model
            session = ort.InferenceSession(model, options,
                                           providers=["CPUExecutionProvider"])
            self._sessions[key] = session
        return session

    def run(self, x, kind="int8"):
        """Logits (N, classes) float32 numpy of ``x`` by one model, no guard."""
        return self._session(kind).run([_OUTPUT], {_INPUT: x})[0]

    @property
    def n_stages(self):
        """Number of pooled stage outputs (0: built without them)."""
        return int(self.info.get("n_stages", 0))

    def run_stages(self, x, kind="int8"):
        """Logits and pooled stage features (numpy) of ``x`` by one model, no guard."""
        out = self._session(kind).run([_OUTPUT, *_stage_names(self.n_stages)],
                                      {_INPUT: x})
        return out[0], out[1:]

    def forward_with_stages(self, x, kind="int8"):
        """
        Logits (guarded, as `forward`) and pooled stage features, CPU tensors.

        The stage features are those `~astro_clustercls.models.network_stages`
        computes, from the int8 network (``kind='int8'``, rows of near-tied
        logits recomputed in float32) or from the float32 one (``'float'``).
        """
        if not self.n_stages:
            raise ValueError("this int8 network was built without stage outputs; "
                             "build it again (int8_network) for the OOD score")
        x = self._input(x)
        block = self.block_rows
        parts = [self.run_stages(x[i:i + block], kind) for i in range(0, len(x), block)]
        if not parts:
            raise ValueError("forward_with_stages needs at least one row")
        logits = np.concatenate([p[0] for p in parts])
        stages = [np.concatenate([p[1][s] for p in parts])
                  for s in range(self.n_stages)]
        if kind == "int8":
            self._guard(x, logits)
        return torch.from_numpy(logits), [torch.from_numpy(s) for s in stages]

    def _input(self, x):
        if isinstance(x, torch.Tensor):
            if x.device.type != "cpu":
                raise ValueError(f"int8 inference runs on the CPU; the input is on "
                                 f"{x.device}")
            x = x.detach().to(torch.float32).contiguous().numpy()
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"input must have shape (N, bands, size, size), got "
                             f"{x.shape}")
        return x

    def forward(self, x):
        x = self._input(x)
        n_classes = int(self.info.get("num_classes", 0)) or None
        if x.shape[0] == 0:
            return torch.zeros((0, n_classes or 0), dtype=torch.float32)
        block = self.block_rows
        logits = np.concatenate([self.run(x[i:i + block], "int8")
                                 for i in range(0, len(x), block)])
        return torch.from_numpy(self._guard(x, logits))

    def _guard(self, x, logits):
        """Recompute in float32, in place, the rows of ``logits`` that near-tie."""
        block = self.block_rows
        self.n_rows += len(x)
        if self.margin > 0 and logits.shape[1] > 1:
            # the near-ties of the whole input together: small float32 batches
            # cost about twice as much per row as full ones
            redo = np.flatnonzero(_gap(logits) < self.margin)
            for i in range(0, redo.size, block):
                rows = redo[i:i + block]
                logits[rows] = self.run(np.ascontiguousarray(x[rows]), "float")
            self.n_recomputed += int(redo.size)
        return logits

    def _both(self, cutouts, batch_size=256):
        """int8 (unguarded) and float32 logits of ``cutouts``, numpy."""
        raw = [self.run(cutouts[i:i + batch_size], "int8")
               for i in range(0, len(cutouts), batch_size)]
        ref = [self.run(cutouts[i:i + batch_size], "float")
               for i in range(0, len(cutouts), batch_size)]
        return np.concatenate(raw), np.concatenate(ref)

    def agreement(self, cutouts):
        """
        Label agreement of this network with its float32 model on ``cutouts``.

        Returns
        -------
        dict
            ``'agreement'`` (fraction of rows with the float32 label, guard
            on), ``'agreement_unguarded'`` (guard off), ``'recomputed'``
            (fraction of rows the guard recomputes), ``'n_validation'``, and
            ``'max_abs_dlogit'`` (largest logit difference, guard on).
        """
        cutouts = _as_cutouts("cutouts", cutouts)
        return _guard_stats(*self._both(cutouts), self.margin)

    # -- caching -------------------------------------------------------------
    def save(self, path):
        """
        Write the two models and ``info`` to one zip file (written to a temporary
        name first, then renamed, so a reader never sees a partial file).
        """
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                self._write(f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def _write(self, fileobj):
        with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("int8.onnx", self.int8_model)
            z.writestr("float.onnx", self.float_model)
            z.writestr("info.json", json.dumps(
                {"format": _FORMAT_VERSION, "margin": self.margin,
                 "info": self.info}, sort_keys=True, default=str))

    @classmethod
    def load(cls, path, *, num_threads=None):
        """
        Read a file (path or binary file object) written by `save` or
        `to_bytes`; raises an OSError if it is not one.
        """
        try:
            source = path if hasattr(path, "read") else os.fspath(path)
            with zipfile.ZipFile(source) as z:
                header = json.loads(z.read("info.json"))
                int8_model, float_model = z.read("int8.onnx"), z.read("float.onnx")
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise OSError(f"'path' {path} is not an int8 network file: {exc}") \
                from None
        if header.get("format") != _FORMAT_VERSION:
            raise OSError(f"'path' {path} has int8 network format "
                          f"{header.get('format')!r}; this version reads "
                          f"{_FORMAT_VERSION}")
        return cls(int8_model, float_model, margin=header["margin"],
                   info=header.get("info"), num_threads=num_threads)

    def to_bytes(self):
        """The contents of the file `save` writes."""
        buf = io.BytesIO()
        self._write(buf)
        return buf.getvalue()
