# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Output: tables and DS9/CRTF region files (`astro_clustercls.io.export`), and
figures (`astro_clustercls.io.visualization`; matplotlib is imported on use).
"""

from .export import DEFAULT_COLORS, read_table, to_regions, write_table
from .visualization import (
    make_rgb,
    plot_confusion_matrix,
    plot_cutout_gallery,
    plot_reliability_diagram,
)

__all__ = ["DEFAULT_COLORS", "read_table", "to_regions", "write_table", "make_rgb",
           "plot_confusion_matrix", "plot_cutout_gallery", "plot_reliability_diagram"]
