# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The output table of a classification (package-internal)."""

import warnings

from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table

from ..utils.exceptions import ClusterClsWarning

__all__ = ["OUTPUT_COLUMNS", "output_table"]

#: the columns added to the input table, in order
OUTPUT_COLUMNS = ("cluster_class", "class_prob", "class_prob_max", "classify_flags")


def output_table(sources, resolved):
    """A new QTable holding the input rows and columns (or positions)."""
    if isinstance(sources, Table):
        table = QTable(sources, copy=True)
        clash = [c for c in OUTPUT_COLUMNS if c in table.colnames]
        if clash:
            warnings.warn(f"the sources table already has column(s) {clash}; they "
                          "are replaced by the new classification", ClusterClsWarning)
            table.remove_columns(clash)
        return table
    if isinstance(sources, SkyCoord):
        coords = sources if not sources.isscalar else sources.reshape((1,))
        return QTable({"sky_centroid": coords})
    return QTable({"x_centroid": resolved.xy[:, 0], "y_centroid": resolved.xy[:, 1]})
