# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reading and writing network weights safely.

Weights are written as safetensors (fp16 by default, with the model's meta as
JSON in the header). They are read from safetensors or, for checkpoints made
elsewhere, with ``torch.load(weights_only=True)``: plain tensors only, so a
pickle that would run code is refused before any of it runs. Files can be
checked against a SHA-256, and a state dict is compared with the network
(architecture, band count, class count) before it is loaded.
"""

import hashlib
import json
import os
import pickle
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..utils._files import atomic_write

__all__ = [
    "save_weights",
    "load_state_dict_file",
    "read_weights_meta",
    "file_sha256",
]

_META_KEY = "astro_clustercls_meta"
_ZIP_MAGIC = b"PK\x03\x04"


def file_sha256(path):
    """
    SHA-256 hex digest of a file, read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astro_clustercls.models import file_sha256
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / 'x.txt'
    ...     _ = p.write_bytes(b'abc')
    ...     file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_value") and hasattr(obj, "unit"):  # astropy Quantity
        return obj.to_value().tolist() if np.ndim(obj) else float(obj.to_value())
    raise TypeError(f"meta value {obj!r} of type {type(obj).__name__} is not "
                    "JSON serialisable")


def _meta_to_json(meta):
    if not isinstance(meta, Mapping):
        raise TypeError(f"'meta' must be a dict, got {type(meta).__name__}")
    return json.dumps(dict(meta), default=_json_default, sort_keys=True)


def _tensors_of(model, fp16):
    if isinstance(model, torch.nn.Module):
        state = model.state_dict()
    elif isinstance(model, Mapping):
        state = model
    else:
        raise TypeError("'model' must be a torch.nn.Module or a state dict, got "
                        f"{type(model).__name__}")
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state dict entry {key!r} is not a tensor")
        t = value.detach().to("cpu")
        if fp16 and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[key] = t.contiguous().clone()
    return tensors


def save_weights(model, path, meta, *, fp16=True):
    """
    Write a network's weights as safetensors with its meta in the header.

    The file is written to a temporary name in the same directory and renamed
    into place, so an interrupted call leaves no partial file.

    Parameters
    ----------
    model : `torch.nn.Module` or dict of str to `torch.Tensor`
        The network (its ``state_dict()`` is written) or a state dict.
    path : str or `~pathlib.Path`
        Output file (conventionally ``*.safetensors``); overwritten.
    meta : dict
        JSON-serialisable description (architecture, bands, cutout_size,
        normalization, categories, ...), stored as one JSON string under the
        key ``'astro_clustercls_meta'`` of the safetensors ``__metadata__``;
        `read_weights_meta` reads it back. A ``'sha256'`` entry is dropped (a
        file cannot contain its own hash).
    fp16 : bool, optional
        Store floating-point tensors as float16 (half the size); they are
        read back as float32 by `load_state_dict_file`.

    Returns
    -------
    sha256 : str
        SHA-256 hex digest of the written file.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from astro_clustercls.models import save_weights, read_weights_meta
    >>> net = torch.nn.Linear(3, 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     digest = save_weights(net, pathlib.Path(d) / 'w.safetensors',
    ...                           meta={'architecture': 'demo'})
    ...     read_weights_meta(pathlib.Path(d) / 'w.safetensors')
    {'architecture': 'demo'}
    >>> len(digest)
    64
    """
    meta = {k: v for k, v in dict(meta).items() if k != "sha256"} \
        if isinstance(meta, Mapping) else meta
    header = {_META_KEY: _meta_to_json(meta), "format": "pt"}
    tensors = _tensors_of(model, fp16)
    path = atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    return file_sha256(path)


def _sniff(path):
    """'torch' (zip or pickle), 'safetensors' or None, from the first bytes."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors first: an 8-byte little-endian header length, then '{'. Its
    # first byte may well be 0x80 (a header of 128 mod 256 bytes), so the
    # pickle signature alone cannot decide.
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n <= size - 8:
            return "safetensors"
    if head[:4] == _ZIP_MAGIC or head[:1] == b"\x80":
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"  # truncated: the header reader says so
    return None


def _read_safetensors_header(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise OSError(f"weights file {path} is truncated or not a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise OSError(f"weights file {path} is truncated or corrupt: its "
                          f"safetensors header claims {n} bytes, the file has "
                          f"{size - 8} after the length field")
        try:
            return json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as exc:
            raise OSError(f"weights file {path} is corrupt: unreadable safetensors "
                          f"header ({exc})") from None


def read_weights_meta(path):
    """
    The meta stored in a safetensors file written by `save_weights`.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A weights file.

    Returns
    -------
    meta : dict
        The stored meta; empty for files without one (torch ``.pt`` files,
        safetensors from other tools).

    Raises
    ------
    OSError
        If the file is missing, truncated or corrupt.
    """
    path = _existing(path)
    if _sniff(path) != "safetensors":
        return {}
    header = _read_safetensors_header(path)
    raw = (header.get("__metadata__") or {}).get(_META_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        raise OSError(f"weights file {path} has a corrupt meta entry "
                      f"{_META_KEY!r} in its header") from None
    return meta if isinstance(meta, dict) else {}


def _existing(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"weights path must be a str or os.PathLike, got "
                        f"{type(path).__name__}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist or is not a file")
    return path


def _unwrap(obj, path):
    """The tensor dict inside a loaded checkpoint (plain or nested)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(
                    isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ValueError(f"weights file {path} does not hold a state dict (a mapping "
                         "of names to tensors, possibly under 'state_dict' or 'model')")
    if obj and all(k.startswith("module.") for k in obj):  # nn.DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_state_dict_file(path, *, sha256=None, map_location="cpu"):
    """
    Read a state dict from safetensors or a torch file, never running pickled code.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A safetensors file, or a ``torch.save`` file (``.pt``/``.pth``, zip or
        legacy format) read with ``torch.load(weights_only=True)``; the format
        is recognised from the file's first bytes. A torch file may hold the
        state dict itself or a checkpoint dict with it under ``'state_dict'``,
        ``'model_state_dict'`` or ``'model'``; a ``'module.'`` prefix
        (``nn.DataParallel``) is removed.
    sha256 : str, optional
        Expected SHA-256 hex digest of the file (or a prefix of at least 8
        characters); checked before the file is parsed.
    map_location : str or `torch.device`, optional
        Where to put the tensors.

    Returns
    -------
    state_dict : dict of str to `torch.Tensor`
        Floating-point tensors are float32 (fp16/bf16 files are upcast).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    OSError
        On a hash mismatch (the file is corrupt or modified), a truncated or
        corrupt file, an unknown format, or a pickle holding anything but
        tensors and plain containers (refused, its code never runs).
    ValueError
        If the file holds something other than a state dict, or ``sha256`` is
        not a hex digest.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from astro_clustercls.models import save_weights, load_state_dict_file
    >>> net = torch.nn.Linear(3, 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / 'w.safetensors'
    ...     digest = save_weights(net, p, meta={})
    ...     sd = load_state_dict_file(p, sha256=digest)
    >>> sorted(sd), sd['weight'].dtype
    (['bias', 'weight'], torch.float32)
    """
    path = _existing(path)
    if sha256 is not None:
        expected = str(sha256).lower()
        if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
            raise ValueError(f"'sha256' must be a hex digest (>= 8 characters), got "
                             f"{sha256!r}")
        got = file_sha256(path)
        if not got.startswith(expected):
            raise OSError(f"SHA-256 mismatch for weights file {path}: expected "
                          f"{expected}, got {got}. The file is corrupt or has been "
                          "modified; reinstall the package or re-download/re-create "
                          "the file.")
    kind = _sniff(path)
    if kind == "safetensors":
        state = _load_safetensors(path, map_location)
    elif kind == "torch":
        state = _load_torch(path, map_location)
    else:
        raise OSError(f"weights file {path} is neither safetensors nor a torch.save "
                      "file (or it is empty/corrupt)")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def _load_safetensors(path, map_location):
    _read_safetensors_header(path)  # clear errors for truncated headers
    device = str(torch.device(map_location))
    try:
        return load_file(path, device=device)
    except (SafetensorError, RuntimeError, ValueError, OSError) as exc:
        raise OSError(f"weights file {path} is truncated or corrupt: {exc}") from None


def _load_torch(path, map_location):
    try:
        # a file object: torch.load would hand a '*.safetensors' *name* to safetensors
        with open(path, "rb") as f, warnings.catch_warnings():
            # torch warns about some legacy pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise OSError(
            f"refusing to load weights file {path}: it contains pickled Python "
            "objects other than tensors and plain containers, and unpickling them "
            "could run arbitrary code (torch.load(weights_only=True) rejected it: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
            "Re-save the state dict only (torch.save(model.state_dict(), ...)) or "
            "convert it to safetensors.") from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error) as exc:
        raise OSError(f"weights file {path} is truncated or corrupt: {exc}") from None
    return _unwrap(obj, path)
