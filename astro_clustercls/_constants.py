# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Constants shared across the package: bands, classes, pixel scale."""

import numpy as np

__all__ = ["DEFAULT_BANDS", "CLASSES", "CLASS_NAMES", "N_CLASSES", "PIXEL_SCALE"]

#: The five PHANGS-HST / LEGUS bands, blue to red (WFC3/UVIS names).
DEFAULT_BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")

#: Class labels, as in Wei et al. 2020 and the PHANGS-HST / LEGUS catalogs.
CLASSES = np.array([1, 2, 3, 4])
N_CLASSES = 4

#: Short human-readable names of the four classes (index = class - 1).
CLASS_NAMES = (
    "compact symmetric cluster",
    "compact asymmetric cluster",
    "compact multi-peaked association",
    "not a cluster",
)

#: Pixel scale of PHANGS-HST / LEGUS drizzled mosaics, arcsec per pixel.
PIXEL_SCALE = 0.03962
