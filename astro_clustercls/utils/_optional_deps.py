# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Lazily resolved ``HAS_<PKG>`` flags for the optional dependencies.

>>> from astro_clustercls.utils._optional_deps import HAS_TQDM
>>> isinstance(HAS_TQDM, bool)
True
"""

import importlib.util

_OPTIONAL = {"matplotlib": "matplotlib", "dask": "dask", "distributed": "distributed",
             "tqdm": "tqdm", "reproject": "reproject", "galsim": "galsim",
             "onnxruntime": "onnxruntime", "onnx": "onnx"}

__all__ = [f"HAS_{name.upper()}" for name in _OPTIONAL]


def __getattr__(name):
    if name in __all__:
        module = _OPTIONAL[name[4:].lower()]
        return importlib.util.find_spec(module) is not None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
