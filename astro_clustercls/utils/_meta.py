# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Provenance metadata for output tables."""

import time
from importlib.metadata import PackageNotFoundError, version

from .._version import version as _package_version

__all__ = ["get_meta"]

_DEPS = ("numpy", "astropy", "photutils", "torch", "torchvision")


def get_meta(**extra):
    """
    Return a dict of provenance: date, versions of this package and its main deps.

    Examples
    --------
    >>> from astro_clustercls.utils._meta import get_meta
    >>> meta = get_meta(model='resnet18')
    >>> sorted(meta)[:3]
    ['date', 'model', 'version']
    """
    versions = {"astro_clustercls": _package_version}
    for dep in _DEPS:
        try:
            versions[dep] = version(dep)
        except PackageNotFoundError:  # pragma: no cover
            versions[dep] = None
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
            "version": versions}
    meta.update(extra)
    return meta
