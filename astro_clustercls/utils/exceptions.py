# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Warning classes of astro_clustercls (all subclass astropy's)."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "ClusterClsWarning",
    "CutoutWarning",
    "BandWarning",
    "WeightsWarning",
    "InputColumnWarning",
]


class ClusterClsWarning(AstropyUserWarning):
    """Base class of every warning emitted by astro_clustercls."""


class CutoutWarning(ClusterClsWarning):
    """
    Some cutouts could not be made in full; the rows are kept and flagged.

    Emitted once per classification (with the number of rows per flag) when
    rows have cutout flags (``PARTIAL_OFF_IMAGE``, ``OFF_IMAGE``,
    ``NONFINITE``, ``MASKED``, ``BAD_POSITION``, ``CENTER_BAD``).
    """


class BandWarning(ClusterClsWarning):
    """A band is missing, extra or substituted; work goes on."""


class WeightsWarning(ClusterClsWarning):
    """
    Something about network weights deserves attention.

    Emitted when a classifier loads weights whose meta marks them as
    undertrained (``meta['undertrained']`` or notes that say so), such as
    the bundled VGG19-BN.
    """


class InputColumnWarning(ClusterClsWarning):
    """
    An input column had the name of an output column; it was kept, renamed.

    For example a labelled catalog's ``cluster_class`` becomes
    ``cluster_class_input``; the new names are in
    ``meta['astro_clustercls']['renamed_columns']``.
    """
