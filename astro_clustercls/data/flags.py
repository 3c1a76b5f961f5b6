# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The quality flags of cutouts and classifications.

Every output row carries one integer bit mask (``CutoutStack.flags`` and the
``classify_flags`` column of a classified table). Each bit is one
`ClusterFlag`; `FLAGS` is the registry that names, decodes and documents them.

=====  =======================  ==============================================
 bit   name                     meaning
=====  =======================  ==============================================
   1   ``PARTIAL_OFF_IMAGE``    the cutout extends beyond the image; the missing
                                pixels are filled with ``fill_value``
   2   ``OFF_IMAGE``            the cutout does not overlap the image at all
   4   ``NONFINITE``            the cutout holds NaN or infinite pixels that are
                                inside the image and not masked (chip gaps, bad
                                pixels); they are kept, as in ``Cutout2D``
   8   ``MASKED``               the cutout holds masked pixels (``CCDData.mask``,
                                a DQ array, drizzle weight 0); they are set to
                                ``fill_value``
  16   ``BAD_POSITION``         the position is masked, NaN or infinite, or
                                cannot be converted to pixels through the WCS
  32   ``BAND_MISSING``         a band the model expects was not given; it was
                                substituted (see `ClusterClassifier`)
  64   ``CENTER_BAD``           the central 3x3 pixels are not all valid in
                                every band (the object itself is affected)
 128   ``LOW_CONFIDENCE``       the classifier's highest probability is below
                                its confidence threshold
 256   ``NOT_CLASSIFIED``       no class could be given (``cluster_class`` is
                                masked): off the image, bad position or no
                                valid pixel at all
 512   ``OUT_OF_DISTRIBUTION``  the object is unlike the network's training
                                data: its ``ood_score`` is above 1 (see
                                `astro_clustercls.models.FeatureStatistics`);
                                its class means little
=====  =======================  ==============================================

Examples
--------
>>> from astro_clustercls.data.flags import FLAGS
>>> FLAGS.decode(1 | 4)
('PARTIAL_OFF_IMAGE', 'NONFINITE')
>>> int(FLAGS.OFF_IMAGE)
2
>>> print(FLAGS)  # doctest: +ELLIPSIS
 bit  name                 description
----  -------------------  -----------
   1  PARTIAL_OFF_IMAGE    cutout partly beyond the image edge, filled
   2  OFF_IMAGE            cutout does not overlap the image
...
 512  OUT_OF_DISTRIBUTION  unlike the training data (ood_score > 1)
"""

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

__all__ = ["ClusterFlag", "FlagRegistry", "FLAGS", "decode_flags"]


@dataclass(frozen=True)
class ClusterFlag:
    """One bit of the quality mask."""

    bit: int
    name: str
    description: str

    def __int__(self):
        return self.bit

    def __index__(self):
        return self.bit

    def __or__(self, other):
        return int(self) | int(other)

    __ror__ = __or__


class FlagRegistry:
    """An ordered collection of `ClusterFlag` with decoding helpers."""

    def __init__(self, flags):
        self._flags = tuple(flags)
        bits = [f.bit for f in self._flags]
        if len(set(bits)) != len(bits) or any(b & (b - 1) for b in bits):
            raise ValueError("flag bits must be distinct powers of two")
        for flag in self._flags:
            setattr(self, flag.name, flag)

    def __iter__(self):
        return iter(self._flags)

    def __len__(self):
        return len(self._flags)

    def __str__(self):
        """The flags as a text table (bit, name, description)."""
        width = max((len(f.name) for f in self._flags), default=4)
        rule = f"{'-' * 4}  {'-' * width}  {'-' * 11}"
        lines = [f"{'bit':>4}  {'name':<{width}}  description", rule]
        lines += [f"{f.bit:>4}  {f.name:<{width}}  {f.description}"
                  for f in self._flags]
        return "\n".join(lines)

    def __repr__(self):
        return f"<FlagRegistry of {len(self)} flags>\n{self}"

    def __getitem__(self, name):
        for flag in self._flags:
            if flag.name == name:
                return flag
        raise KeyError(f"no flag named {name!r}; known flags: {self.names}")

    @property
    def names(self):
        """The flag names in bit order."""
        return tuple(f.name for f in self._flags)

    def decode(self, value):
        """Return the names of the bits set in the integer ``value``."""
        value = int(value)
        unknown = value & ~sum(f.bit for f in self._flags)
        if unknown:
            raise ValueError(f"flag value {value} has unknown bits {unknown}")
        return tuple(f.name for f in self._flags if value & f.bit)

    def to_mask(self, values, names):
        """
        Boolean array: which of ``values`` have any of the flags ``names`` set.

        Examples
        --------
        >>> import numpy as np
        >>> from astro_clustercls.data.flags import FLAGS
        >>> FLAGS.to_mask(np.array([0, 1, 2, 3]), ['OFF_IMAGE'])
        array([False, False,  True,  True])
        """
        if isinstance(names, str):
            names = [names]
        bits = 0
        for name in names:
            bits |= self[name].bit
        return (np.asarray(values) & bits) != 0

    def to_table(self):
        """The registry as an astropy Table (bit, name, description)."""
        return Table(rows=[(f.bit, f.name, f.description) for f in self._flags],
                     names=("bit", "name", "description"))


FLAGS = FlagRegistry([
    ClusterFlag(1, "PARTIAL_OFF_IMAGE", "cutout partly beyond the image edge, filled"),
    ClusterFlag(2, "OFF_IMAGE", "cutout does not overlap the image"),
    ClusterFlag(4, "NONFINITE", "unmasked NaN or infinite pixels inside the image"),
    ClusterFlag(8, "MASKED", "masked pixels (mask, DQ or zero weight) in the cutout"),
    ClusterFlag(16, "BAD_POSITION", "position masked, NaN or not convertible"),
    ClusterFlag(32, "BAND_MISSING", "a band the model expects was substituted"),
    ClusterFlag(64, "CENTER_BAD", "central 3x3 pixels not all valid in every band"),
    ClusterFlag(128, "LOW_CONFIDENCE", "highest class probability below threshold"),
    ClusterFlag(256, "NOT_CLASSIFIED", "no class could be given"),
    ClusterFlag(512, "OUT_OF_DISTRIBUTION", "unlike the training data (ood_score > 1)"),
])


def decode_flags(value):
    """Return the names of the flags set in ``value`` (see `FLAGS`)."""
    return FLAGS.decode(value)
