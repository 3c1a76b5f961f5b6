# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
astro-clustercls: star-cluster candidate classification in HST images.

Implements and extends Wei et al. 2020 (MNRAS 493, 3178): multi-band cutouts of
cluster candidates are classified into four morphological classes (1 compact
symmetric cluster, 2 compact asymmetric cluster, 3 compact multi-peaked
association, 4 not a cluster) by ResNet18 / VGG19-BN networks.

Importing the package is light: the public names below are loaded on first use
(PEP 562), so ``import astro_clustercls`` and the data layer
(`astro_clustercls.data`) and simulator (`astro_clustercls.simulation`) never
load torch; ``astro_clustercls.ClusterClassifier`` does.
"""

import importlib

from ._config import Conf, conf
from ._version import version as __version__

# public name -> the module (relative to this package) that defines it
_LAZY = {
    "BandImages": "data.images",
    "CutoutStack": "data.cutouts",
    "make_cutouts": "data.cutouts",
    "FLAGS": "data.flags",
    "decode_flags": "data.flags",
    "ClusterClassifier": "inference.classifier",
    "ClusterEnsemble": "inference.ensemble",
    "classify_sources": "inference.api",
    "list_models": "models",
    "get_model": "models",
}

__all__ = ["__version__", "conf", "Conf", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
