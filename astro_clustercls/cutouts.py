# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Vectorised, WCS-aware multi-band cutouts: `make_cutouts` and `CutoutStack`.

Each cutout is pixel-identical to ``astropy.nddata.Cutout2D(data, (x, y), size,
mode='partial', fill_value=fill_value)`` of the same band, except that masked
pixels (mask, DQ, zero drizzle weight) are also set to ``fill_value``. All
objects of a band are gathered with one fancy-indexing operation, so no Python
code runs per object, and memory-mapped images are read only where cutouts
fall.
"""

from dataclasses import dataclass, field

import numpy as np

from .flags import FLAGS
from .images import bands_of
from .positions import resolve_positions
from .utils._parameters import validate_choice, validate_positive_int
from .utils._progress_bars import add_progress_bar

__all__ = ["CutoutStack", "make_cutouts"]

_CHUNK = 2048  # objects gathered at once: bounds temporary memory


@dataclass
class CutoutStack:
    """
    Cutouts of N objects in B bands.

    Attributes
    ----------
    data : ndarray, shape (N, B, S, S), float32
        The cutouts; pixels off the image and masked pixels hold ``fill_value``.
    flags : ndarray, shape (N,), int32
        Bit mask of `~astro_clustercls.flags.FLAGS` (OR over bands).
    band_flags : ndarray, shape (N, B), int32
        The per-band part of ``flags`` (``PARTIAL_OFF_IMAGE``, ``OFF_IMAGE``,
        ``NONFINITE``, ``MASKED``).
    positions : ndarray, shape (N, 2)
        0-based ``(x, y)`` pixel positions used (NaN for bad positions).
    bands : tuple of str
        Band names, in the order of axis 1.
    size : int
        Side of the square cutouts, in pixels.
    corners : ndarray, shape (N, 2), int64
        ``(x, y)`` image pixel of each cutout's ``[0, 0]`` pixel.
    fill_value : float
        The value of pixels off the image or masked.
    """

    data: np.ndarray
    flags: np.ndarray
    band_flags: np.ndarray
    positions: np.ndarray
    bands: tuple
    size: int
    corners: np.ndarray
    fill_value: float = np.nan
    meta: dict = field(default_factory=dict)

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, index):
        """Rows ``index`` (int, slice, mask or index array) as a new stack."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return CutoutStack(self.data[index], self.flags[index], self.band_flags[index],
                           self.positions[index], self.bands, self.size,
                           self.corners[index], self.fill_value, dict(self.meta))

    def __repr__(self):
        return (f"<CutoutStack n={len(self)} bands={list(self.bands)} "
                f"size={self.size} flagged={int(np.count_nonzero(self.flags))}>")

    @property
    def usable(self):
        """Rows with at least one valid pixel in some band (not off image/bad)."""
        return (self.flags & (FLAGS.OFF_IMAGE | FLAGS.BAD_POSITION)) == 0


def _corner(pos, size):
    """Cutout2D's first pixel index along one axis (``np.ceil(pos - size / 2)``)."""
    return np.ceil(pos - size / 2.0)


def _bad_pixels(source, rows, cols):
    kind, array, ignore = source
    values = array[rows[:, :, None], cols[:, None, :]]
    if kind == "mask":
        return values.astype(bool, copy=False)
    if kind == "dq":
        return (values.astype(np.int64) & ~int(ignore)) != 0
    return ~(values > 0)  # weight map: no data where weight <= 0 (or NaN)


def make_cutouts(images, positions, size, *, mode="partial", fill_value=np.nan,
                 xcol=None, ycol=None, skycol=None, origin=0, bands=None,
                 progress_bar=False):
    """
    Cut square multi-band cutouts around many objects at once.

    Parameters
    ----------
    images : `~astro_clustercls.BandImages` or mapping of band to image
        The images, all on one pixel grid.
    positions : array-like (N, 2), `~astropy.coordinates.SkyCoord` or Table
        ``(x, y)`` 0-based pixel positions, sky positions (through the images'
        WCS), or a table whose columns are chosen as described in
        `~astro_clustercls.positions.resolve_positions`.
    size : int
        Side of the square cutouts in pixels. Odd sizes centre the object's
        pixel exactly; even sizes follow Cutout2D (the position is rounded up).
    mode : {'partial', 'strict'}, optional
        ``'partial'`` (default) fills pixels off the image with ``fill_value``
        and flags the row; ``'strict'`` raises a ValueError if any usable
        object's cutout is not fully inside the image.
    fill_value : float, optional
        Value of pixels off the image and of masked pixels (default NaN).
    xcol, ycol, skycol, origin
        See `~astro_clustercls.positions.resolve_positions`.
    bands : sequence of str, optional
        Bands to cut, in order (default: all bands of ``images``).
    progress_bar : bool, optional
        Show a tqdm progress bar over chunks of objects.

    Returns
    -------
    `CutoutStack`
        One row per input position, in input order; rows that could not be cut
        are kept (filled with ``fill_value``) and flagged.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments; the message names the parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls import BandImages, make_cutouts
    >>> image = np.arange(100.0).reshape(10, 10)
    >>> stack = make_cutouts(BandImages({'F555W': image}), [(5, 5), (0, 0)], 3)
    >>> stack.data.shape
    (2, 1, 3, 3)
    >>> stack.data[0, 0]
    array([[44., 45., 46.],
           [54., 55., 56.],
           [64., 65., 66.]], dtype=float32)
    >>> stack.flags.tolist()  # the second cutout is partly off the image
    [0, 65]
    """
    images = bands_of(images)
    if bands is not None:
        images = images.select(bands)
    size = validate_positive_int("size", size)
    mode = validate_choice("mode", mode, ("partial", "strict"))
    try:
        fill_value = float(fill_value)
    except (TypeError, ValueError):
        raise TypeError(f"'fill_value' must be a float, got {fill_value!r}") from None

    pos = resolve_positions(positions, wcs=images.wcs, xcol=xcol, ycol=ycol,
                            skycol=skycol, origin=origin)
    n, nb = len(pos.xy), len(images)
    ny, nx = images.shape

    with np.errstate(invalid="ignore"):
        x0 = _corner(pos.xy[:, 0], size)
        y0 = _corner(pos.xy[:, 1], size)
    far = 1e15  # positions beyond this are "off the image" (avoid int overflow)
    bad = pos.bad | ~(np.abs(x0) < far) | ~(np.abs(y0) < far)
    x0 = np.where(bad, -2 * size, x0).astype(np.int64)
    y0 = np.where(bad, -2 * size, y0).astype(np.int64)
    corners = np.column_stack([x0, y0])

    offs = np.arange(size)
    # overlap with the image, as in astropy.nddata.utils.overlap_slices
    off_image = (x0 + size <= 0) | (x0 >= nx) | (y0 + size <= 0) | (y0 >= ny) | bad
    partial = ~off_image & ((x0 < 0) | (y0 < 0) | (x0 + size > nx) | (y0 + size > ny))
    if mode == "strict" and np.any(partial):
        rows = np.flatnonzero(partial)
        raise ValueError(f"mode='strict' but {rows.size} cutouts are partly off the "
                         f"image (rows {rows[:10].tolist()}...); use mode='partial'")

    data = np.empty((n, nb, size, size), dtype=np.float32)
    band_flags = np.zeros((n, nb), dtype=np.int32)
    center_ok = np.ones(n, dtype=bool)
    c0 = size // 2 - 1 if size >= 3 else 0
    csl = slice(c0, min(c0 + 3, size))

    chunks = range(0, n, _CHUNK)
    for start in add_progress_bar(chunks, desc="cutouts", progress_bar=progress_bar):
        sl = slice(start, min(start + _CHUNK, n))
        rows = y0[sl, None] + offs            # (n_chunk, S)
        cols = x0[sl, None] + offs
        vrow = (rows >= 0) & (rows < ny)
        vcol = (cols >= 0) & (cols < nx)
        inside = vrow[:, :, None] & vcol[:, None, :]  # (n_chunk, S, S)
        rows_c = np.clip(rows, 0, ny - 1)
        cols_c = np.clip(cols, 0, nx - 1)
        for b, band in enumerate(images.bands):
            array = images[band].data
            values = array[rows_c[:, :, None], cols_c[:, None, :]]
            values = values.astype(np.float32, copy=False)
            finite = np.isfinite(values)
            valid = inside & finite
            bf = np.where(np.any(inside & ~finite, axis=(1, 2)), FLAGS.NONFINITE.bit, 0)
            source = images.bad_pixel_source(band)
            if source is not None:
                masked = _bad_pixels(source, rows_c, cols_c) & inside
                bf |= np.where(np.any(masked, axis=(1, 2)), FLAGS.MASKED.bit, 0)
                valid &= ~masked
                inside_ok = inside & ~masked
            else:
                inside_ok = inside
            data[sl, b] = np.where(inside_ok, values, np.float32(fill_value))
            center_ok[sl] &= np.all(valid[:, csl, csl], axis=(1, 2))
            band_flags[sl, b] = bf

    band_flags |= np.where(partial, FLAGS.PARTIAL_OFF_IMAGE.bit, 0)[:, None]
    band_flags |= np.where(off_image & ~bad, FLAGS.OFF_IMAGE.bit, 0)[:, None]
    flags = np.bitwise_or.reduce(band_flags, axis=1) if nb else np.zeros(n, np.int32)
    flags = flags.astype(np.int32)
    flags |= np.where(bad, FLAGS.BAD_POSITION.bit, 0).astype(np.int32)
    flags |= np.where(~center_ok & ~bad & ~off_image, FLAGS.CENTER_BAD.bit,
                      0).astype(np.int32)
    return CutoutStack(data=data, flags=flags, band_flags=band_flags,
                       positions=pos.xy, bands=images.bands, size=size,
                       corners=corners, fill_value=fill_value,
                       meta={"positions": pos.source})
