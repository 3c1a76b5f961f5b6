# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The data layer: images, positions, cutouts, catalogs, quality flags, detection.

Nothing here imports torch, the networks or the classifier: reading images,
cutting cutouts and reading catalogs work without them.
"""

from .catalogs import map_classes, read_legus, read_legus_directory, read_phangs
from .cutouts import CutoutStack, make_cutouts
from .flags import FLAGS, decode_flags
from .images import BandImages
from .positions import resolve_positions

__all__ = ["BandImages", "CutoutStack", "make_cutouts", "FLAGS", "decode_flags",
           "resolve_positions", "read_legus", "read_legus_directory", "read_phangs",
           "map_classes"]
