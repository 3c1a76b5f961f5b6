# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Warning classes of astro_clustercls (all subclass astropy's)."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "ClusterClsWarning",
    "CutoutWarning",
    "BandWarning",
    "WeightsWarning",
]


class ClusterClsWarning(AstropyUserWarning):
    """Base class of every warning emitted by astro_clustercls."""


class CutoutWarning(ClusterClsWarning):
    """Some cutouts could not be made in full; the rows are kept and flagged."""


class BandWarning(ClusterClsWarning):
    """A band is missing, extra or substituted; work goes on."""


class WeightsWarning(ClusterClsWarning):
    """Something about network weights deserves attention (e.g. not pretrained)."""
