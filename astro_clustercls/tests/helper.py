# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Helpers shared by the package's tests (no torch)."""

from astro_clustercls._constants import CLASS_NAMES, DEFAULT_BANDS

__all__ = ["random_weights_meta"]


def random_weights_meta(**extra):
    """
    The meta of untrained bundled weights (5 bands, 15 px), updated by ``extra``.

    Examples
    --------
    >>> from astro_clustercls.tests.helper import random_weights_meta
    >>> meta = random_weights_meta(cutout_size=21)
    >>> meta["cutout_size"], len(meta["bands"]), meta["notes"]
    (21, 5, 'random weights, test only')
    """
    return {"bands": list(DEFAULT_BANDS), "cutout_size": 15,
            "normalization": "asinh-v1", "categories": list(CLASS_NAMES),
            "label_set": "truth", "training_data": "none: random weights",
            "simulator_version": "n/a", "metrics": {}, "recipe": {},
            "notes": "random weights, test only"} | extra
