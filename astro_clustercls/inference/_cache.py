# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The per-process cache of inference networks (package-internal).

A network is loaded once per process and per (model, weights, weights file,
meta, device, memory layout), turned into its inference form (BatchNorm folded
into the convolutions, small convolutions as matrix products) and shared by
every classifier, ensemble member and Dask task that asks for it. Used by
`~astro_clustercls.inference.classifier` and
`~astro_clustercls.inference.distributed`.
"""

import functools
import json
from pathlib import Path

import torch
from astropy.config import get_cache_dir

from ..models import (
    WeightsEnum,
    file_sha256,
    get_model,
    get_model_weights,
    int8_network,
    list_models,
)
from ..models._fusion import densify_small_convs, fold_batchnorm

__all__ = ["file_key", "bundled_sha256", "bundled_ood", "cached_network",
           "check_sha256", "clear_model_cache", "model_names", "weights_key",
           "cached_int8", "int8_cache_dir"]


def file_key(weights_path):
    """Cache key of a weights file: resolved path, size and modification time."""
    if weights_path is None:
        return None
    path = Path(weights_path).expanduser()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"'weights_path' file not found: {weights_path}") \
            from None
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def bundled_sha256(model, weights):
    """SHA-256 of the bundled weights ``weights`` resolves to now (None if none)."""
    try:
        return get_model_weights(model).verify(weights or "DEFAULT").sha256
    except (ValueError, TypeError):  # get_model raises the user-facing error
        return None


def bundled_ood(model, weights):
    """
    The ``meta['ood']`` of the bundled weights ``weights`` resolves to now.

    Read from the registry, not from a cached network: statistics refitted in
    this process replace the file a cached network's meta names.
    """
    try:
        return get_model_weights(model).verify(weights or "DEFAULT").meta.get("ood")
    except (ValueError, TypeError):  # get_model raises the user-facing error
        return None


@functools.lru_cache(maxsize=8)
def cached_network(model, weights, file_id, meta_json, device, channels_last=False,
                    bundled_sha256=None):
    # ``bundled_sha256`` only keys the cache: a registry that changes in the
    # process (a newly registered network becoming DEFAULT) is not served stale
    if file_id is None:
        net = get_model(model, weights="DEFAULT" if weights is None else weights,
                        device=device)
    else:
        meta = None if meta_json is None else json.loads(meta_json)
        net = get_model(model, weights_path=file_id[0], meta=meta, device=device)
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    # inference rewrites, the same function to float rounding: BatchNorm folded
    # into the convolutions (~5 % faster), and convolutions on inputs no larger
    # than their kernel as one GEMM (ResNet18's last stage at 51 px: ~25 %)
    fold_batchnorm(net)
    size = int(net.clustercls_meta["cutout_size"])
    densify_small_convs(net, (int(net.clustercls_meta["n_bands"]), size, size))
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net


def int8_cache_dir():
    """Where the int8 copies of networks are kept (one per weights and versions)."""
    return Path(get_cache_dir()) / "astro_clustercls" / "int8"


@functools.lru_cache(maxsize=4)
def cached_int8(model, weights, file_id, meta_json, bundled_sha256=None):
    """
    The int8 copy (ONNX Runtime) of a cached network, read from or written to
    `int8_cache_dir` (the first build calibrates and checks it on simulated
    cutouts: ~20 s).
    """
    net = cached_network(model, weights, file_id, meta_json, "cpu", False,
                         bundled_sha256)
    return int8_network(net, cache_dir=int8_cache_dir())


def check_sha256(path, expected):
    """Raise an OSError if the SHA-256 of ``path`` does not start with ``expected``."""
    if not isinstance(expected, str):
        raise TypeError(f"'weights_sha256' must be a hex string, got {expected!r}")
    expected = expected.strip().lower()
    if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError("'weights_sha256' must be a SHA-256 hex digest (or a prefix "
                         f"of at least 8 characters), got {expected!r}")
    got = file_sha256(path)
    if not got.startswith(expected):
        raise OSError(f"SHA-256 mismatch for 'weights_path' {path}: expected "
                      f"{expected}, got {got}; the file is corrupt, modified or not "
                      "the one meant")


def clear_model_cache():
    """
    Forget the networks loaded by `ClusterClassifier` in this process.

    Networks are cached per process, keyed by model name, weights, weights file
    (path, size, modification time) and device, so building many classifiers
    loads each network once.
    """
    cached_network.cache_clear()
    cached_int8.cache_clear()


def model_names():
    return tuple(list_models())


def weights_key(weights):
    """A hashable, registry-independent key for ``weights`` ('Enum.MEMBER' or name)."""
    if weights is None or isinstance(weights, str):
        return weights
    if isinstance(weights, WeightsEnum):
        return repr(weights)
    raise TypeError("'weights' must be None, a member name such as 'DEFAULT' or "
                    f"'SIM_V1', or a weights enum member, got {type(weights).__name__}")
