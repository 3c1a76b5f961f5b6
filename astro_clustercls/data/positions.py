# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Source positions from arrays, SkyCoord or tables, with an explicit choice of columns.

Pixel positions follow astropy's convention: 0-based, the centre of the first
pixel at 0.0. 1-based catalogs are converted with ``origin=1``.

Which columns are used is decided by the arguments and the table's column
names only (never by the values), so the same call always reads the same
columns:

1. ``xcol``/``ycol`` if given, else ``skycol`` if given;
2. otherwise the first pixel pair found among `PIXEL_COLUMNS`
   (photutils 3 ``x_centroid``/``y_centroid``, photutils 2 ``xcentroid``/
   ``ycentroid``, ``x_peak``/``y_peak``, ``xcenter``/``ycenter``);
3. otherwise the first sky column found among `SKY_COLUMNS`.

Rows whose position is masked (``MaskedColumn``, `~astropy.utils.masked.Masked`
quantities, masked SkyCoord), NaN or infinite, or cannot be converted through
the WCS (e.g. the far side of a TAN projection, diverging SIP inversion) are
kept and marked bad (`~astro_clustercls.data.flags.FLAGS` ``BAD_POSITION`` in
`~astro_clustercls.make_cutouts`), never dropped. Pixel columns may carry the
unit ``pix`` (or none); other units are refused. RA/Dec columns without units
are in degrees.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Row, Table
from astropy.utils.masked import Masked
from astropy.wcs import NoConvergence

__all__ = ["PIXEL_COLUMNS", "SKY_COLUMNS", "ResolvedPositions", "resolve_positions"]

#: pixel column pairs searched in order when none is named
PIXEL_COLUMNS = (
    ("x_centroid", "y_centroid"),
    ("xcentroid", "ycentroid"),
    ("x_peak", "y_peak"),
    ("xcenter", "ycenter"),
)
#: sky columns searched in order when no pixel pair is found
SKY_COLUMNS = ("sky_centroid", "sky_center", "skycoord")


@dataclass
class ResolvedPositions:
    """Pixel positions (0-based), which rows are unusable, and where they came from."""

    xy: np.ndarray        #: (N, 2) float64, x then y; NaN where ``bad``
    bad: np.ndarray       #: (N,) bool: masked, NaN or not convertible
    source: str           #: e.g. "columns x_centroid/y_centroid" or "SkyCoord via WCS"


def _column_values(table, name, param):
    if not isinstance(name, str):
        raise TypeError(f"{param!r} must be a column name (str), got {name!r}")
    if name not in table.colnames:
        raise ValueError(f"{param}={name!r} is not a column of the table; columns: "
                         f"{table.colnames}")
    col = table[name]
    return col, _mask_of(col, len(table))


def _mask_of(col, n):
    """Boolean (N,) mask of a column (MaskedColumn, Masked quantity, SkyCoord...)."""
    mask = getattr(col, "mask", None)
    if mask is None or mask is np.ma.nomask:
        return np.zeros(n, bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 0:
        return np.full(n, bool(mask))
    if n == 0:  # reshape(0, -1) is ambiguous
        return np.zeros(0, bool)
    return np.array(mask.reshape(n, -1).any(axis=1), dtype=bool)


def _unmasked(values):
    """Plain ndarray of ``values`` (masked entries keep their underlying value)."""
    if isinstance(values, Masked):
        values = values.unmasked
    if np.ma.isMaskedArray(values):
        values = values.data
    return values


def _pixel_values(col, param):
    unit = getattr(col, "unit", None)
    if unit not in (None, ""):
        unit = u.Unit(unit)
        if unit not in (u.pix, u.dimensionless_unscaled):
            raise ValueError(f"{param} column has unit {unit}; pixel positions must "
                             "be in pixels (or have no unit)")
    values = _unmasked(col)
    values = getattr(values, "value", values)
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{param} column must hold numbers, got dtype "
                        f"{np.asarray(values).dtype}") from None
    if values.ndim != 1:
        raise ValueError(f"{param} column must be one-dimensional, got shape "
                         f"{values.shape}")
    return values


def _angle_values(col, param):
    unit = getattr(col, "unit", None)
    unit = u.Unit(unit) if unit not in (None, "") else u.deg
    if unit.physical_type != "angle":
        raise ValueError(f"{param} column has unit {unit}; sky coordinates must be "
                         "angles (or have no unit: degrees)")
    values = _unmasked(col)
    values = getattr(values, "value", values)
    try:
        return np.asarray(values, dtype=float), unit
    except (TypeError, ValueError):
        raise TypeError(f"{param} column must hold numbers") from None


def _sky_to_pixel(coords, wcs, bad):
    """Pixel positions of ``coords`` through ``wcs``; rows that fail become bad."""
    if wcs is None:
        raise ValueError("positions are sky coordinates but the images have no WCS: "
                         "give pixel positions (xcol/ycol) or images with a WCS")
    coords = coords if not coords.isscalar else coords.reshape((1,))
    bad = bad | _mask_of(coords, len(coords))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            x, y = wcs.world_to_pixel(coords)
        except NoConvergence as exc:
            # SIP/lookup-table distortion: keep the converged rows, flag the rest
            best = np.atleast_2d(exc.best_solution)
            x, y = best[:, 0].copy(), best[:, 1].copy()
            for rows in (exc.divergent, exc.slow_conv):
                if rows is not None:
                    x[rows] = np.nan
        except Exception as exc:  # noqa: BLE001 - WCS raises assorted errors
            raise ValueError(f"cannot convert the sky positions to pixels: {exc}") \
                from None
    x = np.atleast_1d(np.asarray(_unmasked(x), dtype=float))
    y = np.atleast_1d(np.asarray(_unmasked(y), dtype=float))
    xy = np.column_stack([x, y])
    return xy, bad | ~np.all(np.isfinite(xy), axis=1)


def resolve_positions(positions, *, wcs=None, xcol=None, ycol=None, skycol=None,
                      origin=0, name="positions"):
    """
    Turn ``positions`` into 0-based pixel positions and a bad-row mask.

    Parameters
    ----------
    positions : array-like (N, 2), SkyCoord or Table
        ``(x, y)`` pixel pairs; sky coordinates (converted with ``wcs``); or a
        table (see the module docstring for which columns are used).
    wcs : `~astropy.wcs.WCS`, optional
        Needed for sky positions.
    xcol, ycol : str, optional
        Names of the pixel columns (both or neither).
    skycol : str or tuple of 2 str, optional
        A SkyCoord column, or the names of RA and Dec columns (degrees unless
        the columns carry angle units), e.g. ``('PHANGS_RA', 'PHANGS_DEC')``.
    origin : {0, 1}, optional
        Pixel convention of the input pixel positions: 1 for 1-based catalogs
        (FITS/IRAF/DS9 convention), converted to 0-based (default 0).
    name : str, optional
        The caller's name for ``positions``, used in error messages (e.g.
        ``'sources'``; default ``'positions'``).

    Returns
    -------
    `ResolvedPositions`

    Raises
    ------
    TypeError
        If ``positions`` is of an unsupported type.
    ValueError
        If named columns are missing, no position column can be found, pixel
        columns have non-pixel units, or sky positions come without a WCS.

    Examples
    --------
    >>> from astropy.table import QTable
    >>> from astro_clustercls.data.positions import resolve_positions
    >>> t = QTable({'x_centroid': [1.0, 2.5], 'y_centroid': [3.0, float('nan')]})
    >>> res = resolve_positions(t)
    >>> res.xy[0].tolist(), res.bad.tolist(), res.source
    ([1.0, 3.0], [False, True], 'columns x_centroid/y_centroid')
    """
    if origin not in (0, 1):
        raise ValueError(f"'origin' must be 0 or 1, got {origin!r}")
    if (xcol is None) != (ycol is None):
        raise ValueError("give both 'xcol' and 'ycol', or neither")
    if xcol is not None and skycol is not None:
        raise ValueError("give either 'xcol'/'ycol' or 'skycol', not both")

    if isinstance(positions, SkyCoord):
        n = 1 if positions.isscalar else len(positions)
        xy, bad = _sky_to_pixel(positions, wcs, np.zeros(n, bool))
        return ResolvedPositions(np.where(bad[:, None], np.nan, xy), bad,
                                 "SkyCoord via WCS")

    if isinstance(positions, Table):
        table = positions
        if xcol is None and skycol is None:
            for cx, cy in PIXEL_COLUMNS:
                if cx in table.colnames and cy in table.colnames:
                    xcol, ycol = cx, cy
                    break
            else:
                skycol = next((c for c in SKY_COLUMNS if c in table.colnames), None)
                if skycol is None:
                    raise ValueError(
                        "the sources table has no position columns: expected one of "
                        f"{[p[0] + '/' + p[1] for p in PIXEL_COLUMNS]} or "
                        f"{list(SKY_COLUMNS)}; name yours with xcol=/ycol= or "
                        f"skycol= (columns: {table.colnames})")
        if xcol is not None:
            colx, maskx = _column_values(table, xcol, "xcol")
            coly, masky = _column_values(table, ycol, "ycol")
            x = _pixel_values(colx, "xcol")
            y = _pixel_values(coly, "ycol")
            xy = np.column_stack([x, y]) - origin
            bad = maskx | masky | ~np.isfinite(x) | ~np.isfinite(y)
            return ResolvedPositions(np.where(bad[:, None], np.nan, xy), bad,
                                     f"columns {xcol}/{ycol}")
        if isinstance(skycol, str):
            col, mask = _column_values(table, skycol, "skycol")
            if not isinstance(col, SkyCoord):
                raise ValueError(f"skycol={skycol!r} is not a SkyCoord column; name "
                                 "RA and Dec columns as skycol=('RA', 'DEC')")
            coords = col
            source = f"column {skycol} via WCS"
        else:
            if len(skycol) != 2:
                raise ValueError("'skycol' must be a SkyCoord column name or a pair "
                                 f"(ra, dec) of column names, got {skycol!r}")
            ra, mra = _column_values(table, skycol[0], "skycol")
            dec, mdec = _column_values(table, skycol[1], "skycol")
            ra_v, ra_u = _angle_values(ra, "skycol")
            de_v, de_u = _angle_values(dec, "skycol")
            mask = mra | mdec | ~np.isfinite(ra_v) | ~np.isfinite(de_v)
            mask |= ~(np.abs(np.where(mask, 0, de_v) * de_u) <= 90 * u.deg)
            coords = SkyCoord(np.where(mask, 0, ra_v) * ra_u,
                              np.where(mask, 0, de_v) * de_u)
            source = f"columns {skycol[0]}/{skycol[1]} via WCS"
        xy, bad = _sky_to_pixel(coords, wcs, np.asarray(mask, bool))
        return ResolvedPositions(np.where(bad[:, None], np.nan, xy), bad, source)

    if xcol is not None or skycol is not None:
        raise ValueError("'xcol', 'ycol' and 'skycol' apply to table positions only")
    expected = (f"{name!r} must be an (N, 2) array of (x, y), a SkyCoord or a Table, "
                f"got {type(positions).__name__}")
    if isinstance(positions, Row):
        raise TypeError(f"{expected}: for one row, pass a one-row table, "
                        "table[[i]] rather than table[i]")
    if isinstance(positions, np.ndarray) and positions.dtype.names:
        raise TypeError(f"{expected} with fields {positions.dtype.names}: wrap it in a "
                        "table first, Table(array)")
    if isinstance(positions, (str, bytes, dict)) or positions is None:
        raise TypeError(expected)
    if isinstance(positions, u.Quantity) and positions.unit not in (
            u.pix, u.dimensionless_unscaled):
        raise ValueError(f"{name!r} has unit {positions.unit}; pixel positions must "
                         "be in pixels")
    extra_mask = None
    if isinstance(positions, Masked):
        extra_mask = np.asarray(positions.mask, bool)
        positions = positions.unmasked
    if isinstance(positions, u.Quantity):
        positions = positions.value
    try:
        arr = np.ma.asarray(positions, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(expected) from None
    if extra_mask is not None:
        arr = np.ma.masked_where(np.broadcast_to(extra_mask, arr.shape), arr)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim == 1 and arr.shape[0] == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name!r} must have shape (N, 2) as (x, y) pairs, got "
                         f"shape {arr.shape}")
    xy = np.ma.filled(arr, np.nan) - origin
    bad = ~np.all(np.isfinite(xy), axis=1)
    return ResolvedPositions(np.where(bad[:, None], np.nan, xy), bad, "array (x, y)")
