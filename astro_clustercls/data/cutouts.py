# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Vectorised, WCS-aware multi-band cutouts: `make_cutouts` and `CutoutStack`.

Each cutout is pixel-identical to ``astropy.nddata.Cutout2D(data, (x, y), size,
mode='partial', fill_value=fill_value)`` of the same band, except that masked
pixels (mask, DQ, zero drizzle weight) are also set to ``fill_value``. All
objects of a band are gathered at once (strided window views, fancy indexing
near the edges), so no Python code runs per object, and memory-mapped images
are read only where cutouts fall.
"""

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..utils._parameters import validate_choice, validate_positive_int
from ..utils._progress_bars import add_progress_bar
from .flags import FLAGS
from .images import bands_of
from .positions import resolve_positions

__all__ = ["CutoutStack", "make_cutouts"]

_CHUNK = 4096  # objects gathered at once: bounds temporary memory


@dataclass
class CutoutStack:
    """
    Cutouts of N objects in B bands.

    Attributes
    ----------
    data : ndarray, shape (N, B, S, S), float32
        The cutouts, indexed ``[object, band, y, x]``; pixels off the image and
        masked pixels hold ``fill_value``.
    flags : ndarray, shape (N,), int32
        Bit mask of `~astro_clustercls.data.flags.FLAGS`: the OR over bands of
        ``band_flags`` plus ``BAD_POSITION`` and ``CENTER_BAD``.
    band_flags : ndarray, shape (N, B), int32
        The per-band part of ``flags`` (``PARTIAL_OFF_IMAGE``, ``OFF_IMAGE``,
        ``NONFINITE``, ``MASKED``).
    positions : ndarray, shape (N, 2), float64
        0-based ``(x, y)`` pixel positions used (NaN for bad positions).
    bands : tuple of str
        Band names, in the order of axis 1.
    size : int
        Side of the square cutouts, in pixels.
    corners : ndarray, shape (N, 2), int64
        ``(x, y)`` image pixel of each cutout's ``[0, 0]`` pixel, as
        ``Cutout2D`` computes it (``ceil(position - size / 2)``); the minimum
        int64 for ``BAD_POSITION`` rows (clipped to +-2**62 far off the image).
    fill_value : float
        The value of pixels off the image or masked.
    meta : dict
        Provenance, e.g. ``meta['positions']`` says which columns were used.
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
        """Rows with at least one pixel on the image (not off image, position good)."""
        return (self.flags & (FLAGS.OFF_IMAGE | FLAGS.BAD_POSITION)) == 0


def _bad_from_values(kind, values, ignore):
    """Boolean "bad pixel" array from gathered mask / DQ / weight values."""
    if kind == "mask":
        return values.astype(bool, copy=False)
    if kind == "dq":
        if values.dtype.kind not in "iu":
            values = values.astype(np.int64)
        if not ignore:
            return values != 0
        # keep the DQ dtype (no int64 temporary): a mask of the bits that count
        nbits = 8 * values.dtype.itemsize
        keep = np.array((~int(ignore)) & ((1 << nbits) - 1),
                        dtype=f"u{values.dtype.itemsize}").view(values.dtype)
        return (values & keep) != 0
    return ~(values > 0)  # weight map: no data where weight <= 0 (or NaN)


class _Gather:
    """Where the cutouts of one chunk of objects fall in the image."""

    def __init__(self, x0, y0, interior, partial, size, shape):
        ny, nx = shape
        self.size = size
        self.ee = np.flatnonzero(partial)    # partly off: clipped fancy indexing
        # every row is first read through a strided window view of the image
        # (one block copy per row, the fast path); corners are clipped into the
        # image so partial and off rows read valid memory, then are redone
        self.windows = ny >= size and nx >= size
        if self.windows:
            self.yw = np.clip(y0, 0, ny - size)
            self.xw = np.clip(x0, 0, nx - size)
        elif np.any(interior):  # pragma: no cover - interior needs a large image
            raise AssertionError("interior cutouts on an image smaller than a cutout")
        offs = np.arange(size)
        rows = y0[self.ee, None] + offs
        cols = x0[self.ee, None] + offs
        # pixels off the image are read from the nearest edge pixel (which is
        # part of the same cutout, so flags are unaffected) and filled later
        self.inside = (((rows >= 0) & (rows < ny))[:, :, None]
                       & ((cols >= 0) & (cols < nx))[:, None, :])
        self.rows = np.clip(rows, 0, ny - 1)[:, :, None]
        self.cols = np.clip(cols, 0, nx - 1)[:, None, :]

    def into(self, array, out):
        """Copy the cutouts of ``array`` into ``out`` (n_chunk, S, S), no fill."""
        with np.errstate(over="ignore"):  # float64 beyond float32 range -> inf
            if self.windows:
                windows = sliding_window_view(array, (self.size, self.size))
                out[...] = windows[self.yw, self.xw]
            if self.ee.size:
                out[self.ee] = array[self.rows, self.cols]


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
        ``(x, y)`` 0-based pixel positions (``origin=0``: the centre of the
        first pixel is 0.0), sky positions (through the images' WCS), or a
        table whose columns are chosen as described in
        `~astro_clustercls.data.positions.resolve_positions`.
    size : int
        Side of the square cutouts in pixels. The cutout's first pixel is
        ``ceil(position - size / 2)`` along each axis, exactly as in
        `~astropy.nddata.Cutout2D`: odd sizes centre the pixel holding the
        position; for even sizes the position is rounded up.
    mode : {'partial', 'strict'}, optional
        ``'partial'`` (default) fills pixels off the image with ``fill_value``
        and flags the row; ``'strict'`` raises a ValueError if any cutout with
        a valid position is not entirely inside the image (like Cutout2D's
        ``'strict'``). Rows with bad positions are flagged in both modes.
    fill_value : float, optional
        Value of pixels off the image and of masked pixels (default NaN).
    xcol, ycol, skycol, origin
        See `~astro_clustercls.data.positions.resolve_positions`.
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

    Notes
    -----
    Each cutout equals ``Cutout2D(data, (x, y), size, mode='partial',
    fill_value=fill_value).data`` cast to float32, except that masked pixels
    (``CCDData.mask``, a DQ array, drizzle weight 0) are also set to
    ``fill_value``. Objects fully inside the image are gathered through a
    strided window view of each band (no Python loop per object or band, no
    copy of the image), so memory-mapped images are only read where cutouts
    fall; temporary memory is bounded by chunks of 4096 objects.

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
    if isinstance(fill_value, (bool, np.bool_)):
        raise TypeError(f"'fill_value' must be a float, got {fill_value!r}")
    try:
        fill_value = float(fill_value)
    except (TypeError, ValueError):
        raise TypeError(f"'fill_value' must be a float, got {fill_value!r}") from None
    fill32 = np.float32(fill_value)

    pos = resolve_positions(positions, wcs=images.wcs, xcol=xcol, ycol=ycol,
                            skycol=skycol, origin=origin)
    n, nb = len(pos.xy), len(images)
    ny, nx = images.shape

    bad = np.asarray(pos.bad, bool)
    with np.errstate(invalid="ignore"):
        x0f = np.ceil(pos.xy[:, 0] - size / 2.0)
        y0f = np.ceil(pos.xy[:, 1] - size / 2.0)
        # as astropy.nddata.utils.overlap_slices (NoOverlapError), in floats
        off = bad | (x0f + size <= 0) | (x0f >= nx) | (y0f + size <= 0) | (y0f >= ny)
    lim = 2.0**62
    corners = np.column_stack([np.clip(x0f, -lim, lim), np.clip(y0f, -lim, lim)])
    corners = np.where(bad[:, None], np.iinfo(np.int64).min,
                       np.nan_to_num(corners)).astype(np.int64)
    x0 = np.where(off, 0, corners[:, 0])
    y0 = np.where(off, 0, corners[:, 1])
    interior = ~off & (x0 >= 0) & (y0 >= 0) & (x0 + size <= nx) & (y0 + size <= ny)
    partial = ~off & ~interior
    if mode == "strict":
        outside = np.flatnonzero(partial | (off & ~bad))
        if outside.size:
            raise ValueError(
                f"mode='strict' but {outside.size} cutouts are not entirely inside "
                f"the {ny}x{nx} image (rows {outside[:10].tolist()}"
                f"{'...' if outside.size > 10 else ''}); use mode='partial'")

    data = np.empty((n, nb, size, size), dtype=np.float32)
    band_flags = np.zeros((n, nb), dtype=np.int32)
    center_ok = np.ones(n, dtype=bool)
    c0 = max(size // 2 - 1, 0)
    csl = slice(c0, min(c0 + 3, size))
    sources = [images.bad_pixel_source(band) for band in images.bands]
    arrays = [images[band].data for band in images.bands]
    nonfinite_bit, masked_bit = FLAGS.NONFINITE.bit, FLAGS.MASKED.bit

    chunks = range(0, n, _CHUNK)
    for start in add_progress_bar(chunks, desc="cutouts", progress_bar=progress_bar,
                                  total=len(chunks)):
        sl = slice(start, min(start + _CHUNK, n))
        plan = _Gather(x0[sl], y0[sl], interior[sl], partial[sl], size, (ny, nx))
        oo = np.flatnonzero(off[sl])
        cut = ~off[sl]
        for b in range(nb):
            out = data[sl, b]          # a view: gathered in place
            plan.into(arrays[b], out)
            out[oo] = fill32
            centre = np.ones(out.shape[0], bool)
            badpix = None
            source = sources[b]
            if source is not None:
                kind, array, ignore = source
                values = np.empty((out.shape[0], size, size),
                                  dtype=array.dtype.newbyteorder("="))
                plan.into(array, values)
                badpix = _bad_from_values(kind, values, ignore)
                badpix[oo] = False
                masked = badpix.any(axis=(1, 2))
                band_flags[sl, b] |= np.where(masked, masked_bit, 0).astype(np.int32)
                centre &= ~badpix[:, csl, csl].any(axis=(1, 2))
            # NaN/inf: a non-finite float32 sum flags candidates, checked exactly;
            # masked pixels do not count (they are replaced by fill_value)
            with np.errstate(over="ignore", invalid="ignore"):
                cand = np.flatnonzero(cut & ~np.isfinite(out.sum(axis=(1, 2))))
            nonfinite = np.zeros(out.shape[0], bool)
            if cand.size:
                bad_values = ~np.isfinite(out[cand])
                if badpix is not None:
                    bad_values &= ~badpix[cand]
                nonfinite[cand] = bad_values.any(axis=(1, 2))
                centre[cand] &= ~bad_values[:, csl, csl].any(axis=(1, 2))
            band_flags[sl, b] |= np.where(nonfinite, nonfinite_bit, 0).astype(np.int32)
            if badpix is not None:
                rows = np.flatnonzero(masked)
                if rows.size:
                    block = out[rows]
                    block[badpix[rows]] = fill32
                    out[rows] = block
            if plan.ee.size:
                block = out[plan.ee]
                block[~plan.inside] = fill32
                out[plan.ee] = block
                centre[plan.ee] &= plan.inside[:, csl, csl].all(axis=(1, 2))
            center_ok[sl] &= centre

    band_flags |= np.where(partial, FLAGS.PARTIAL_OFF_IMAGE.bit, 0).astype(
        np.int32)[:, None]
    band_flags |= np.where(off & ~bad, FLAGS.OFF_IMAGE.bit, 0).astype(np.int32)[:, None]
    flags = (np.bitwise_or.reduce(band_flags, axis=1) if nb
             else np.zeros(n, np.int32)).astype(np.int32)
    flags |= np.where(bad, FLAGS.BAD_POSITION.bit, 0).astype(np.int32)
    flags |= np.where(~center_ok & ~off, FLAGS.CENTER_BAD.bit, 0).astype(np.int32)
    return CutoutStack(data=data, flags=flags, band_flags=band_flags,
                       positions=pos.xy, bands=images.bands, size=size,
                       corners=corners, fill_value=fill_value,
                       meta={"positions": pos.source})
