# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Write classified tables: DS9/CRTF region files coloured by class, and ECSV.

`to_regions` turns a classified table into a `regions.Regions` of circles, one
per source, coloured by ``cluster_class`` and labelled with it, and can write
it as a DS9 or CASA (CRTF) region file. `write_table` writes the table as ECSV
(which keeps ``meta``, units, masks and the ``(N, 4)`` ``class_prob`` column)
atomically: an interrupted write leaves no partial file behind.
"""

import re
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table
from astropy.table.meta import get_header_from_yaml
from astropy.wcs.utils import proj_plane_pixel_scales

from .._constants import CLASSES, PIXEL_SCALE
from ..data.positions import PIXEL_COLUMNS, SKY_COLUMNS
from ..utils._files import atomic_write
from ..utils._parameters import validate_choice
from ..utils.exceptions import ClusterClsWarning

__all__ = ["DEFAULT_COLORS", "UNCLASSIFIED_COLOR", "to_regions", "write_table",
           "read_table"]

#: region colour of each class
DEFAULT_COLORS = {1: "green", 2: "cyan", 3: "magenta", 4: "red"}
#: region colour of rows without a class (masked ``cluster_class``)
UNCLASSIFIED_COLOR = "gray"


def _find_sky_column(table, skycol):
    if skycol is not None:
        if skycol not in table.colnames:
            raise ValueError(f"skycol={skycol!r} is not a column of the table; "
                             f"columns: {table.colnames}")
        if not isinstance(table[skycol], SkyCoord):
            raise ValueError(f"skycol={skycol!r} is not a SkyCoord column")
        return skycol
    return next((c for c in SKY_COLUMNS if c in table.colnames
                 and isinstance(table[c], SkyCoord)), None)


def _find_pixel_columns(table, xcol, ycol):
    if (xcol is None) != (ycol is None):
        raise ValueError("give both 'xcol' and 'ycol', or neither")
    if xcol is not None:
        for name, col in (("xcol", xcol), ("ycol", ycol)):
            if col not in table.colnames:
                raise ValueError(f"{name}={col!r} is not a column of the table; "
                                 f"columns: {table.colnames}")
        return xcol, ycol
    for cx, cy in PIXEL_COLUMNS:
        if cx in table.colnames and cy in table.colnames:
            return cx, cy
    return None


def _pixel_to_sky(table, xcol, ycol, wcs):
    """Sky positions of the table's pixel columns through ``wcs`` (NaN: none)."""
    pair = _find_pixel_columns(table, xcol, ycol)
    if pair is None:
        raise ValueError("the table has neither a SkyCoord column nor pixel "
                         "position columns to convert with 'wcs'")
    x = _values(table[pair[0]])
    y = _values(table[pair[1]])
    good = np.isfinite(x) & np.isfinite(y)
    coords = SkyCoord.from_pixel(np.where(good, x, 0.0), np.where(good, y, 0.0),
                                 wcs, origin=0)
    nan = np.where(good, 0.0, np.nan)
    return SkyCoord(coords.spherical.lon + nan * u.deg,
                    coords.spherical.lat + nan * u.deg, frame=coords.frame.name)


def _values(col):
    values = getattr(col, "value", col)
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def _radius(radius, *, sky, pixel_scale):
    """The circle radius: pixels (float) for pixel regions, an angle for sky ones."""
    scale = u.Quantity(pixel_scale, u.arcsec) if not isinstance(
        pixel_scale, u.Quantity) else pixel_scale.to(u.arcsec)
    if isinstance(radius, u.Quantity):
        if radius.unit.physical_type == "angle":
            angle = radius.to(u.arcsec)
            return angle if sky else float((angle / scale).decompose().value)
        if radius.unit in (u.pix, u.dimensionless_unscaled):
            radius = radius.value
        else:
            raise ValueError(f"'radius' must be in pixels or an angle, got unit "
                             f"{radius.unit}")
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        raise TypeError(f"'radius' must be a number of pixels or an angular Quantity, "
                        f"got {radius!r}") from None
    if not radius > 0 or not np.isfinite(radius):
        raise ValueError(f"'radius' must be positive and finite, got {radius!r}")
    return radius * scale if sky else radius


def to_regions(table, *, filename=None, format="ds9", radius=5, colors=None,
               unclassified_color=UNCLASSIFIED_COLOR, use_sky=None, xcol=None,
               ycol=None, skycol=None, pixel_scale=None, wcs=None,
               overwrite=False):
    """
    Circles around the sources of a classified table, coloured by class.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A table with a ``cluster_class`` column (as returned by
        `~astro_clustercls.ClusterClassifier`) and positions.
    filename : path-like, optional
        If given, write the regions there (atomically).
    format : {'ds9', 'crtf'}, optional
        Region file format (default ``'ds9'``); CRTF needs sky positions.
    radius : float or `~astropy.units.Quantity`, optional
        Circle radius: pixels (default 5) or an angle.
    colors : dict, optional
        Colour of each class, merged over `DEFAULT_COLORS`
        (1 green, 2 cyan, 3 magenta, 4 red).
    unclassified_color : str, optional
        Colour of rows with a masked class (default ``'gray'``).
    use_sky : bool, optional
        Sky regions (`~regions.CircleSkyRegion`) from the SkyCoord column, or
        pixel regions (`~regions.CirclePixelRegion`) from the pixel columns.
        Default: sky when the table has a SkyCoord column (``sky_centroid``)
        or ``wcs`` is given, else pixel.
    xcol, ycol, skycol : str, optional
        Position columns (default: the photutils names, as in
        `~astro_clustercls.data.positions.resolve_positions`). Pixel positions are
        0-based; region files are written 1-based, as DS9 expects.
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Arcsec per pixel, to convert ``radius`` between pixels and angles
        (default: that of ``wcs`` when given, else 0.03962, the PHANGS-HST
        mosaics).
    wcs : `~astropy.wcs.WCS`, optional
        The images' WCS (e.g. ``images.wcs``): sky regions (in the WCS's
        frame, ``icrs`` or ``fk5``) from the pixel columns of a table that has
        no SkyCoord column, so the file overlays any image of the field in DS9.
    overwrite : bool, optional
        Replace an existing ``filename`` (default False: OSError).

    Returns
    -------
    `~regions.Regions`
        One circle per row with a valid position, in table order. Each carries
        its class as ``meta['text']`` (DS9) or ``meta['label']`` (CRTF), ``'?'``
        when unclassified, and a tag ``class<N>``. Rows without a valid
        position are left out (with a warning).

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, or when the table lacks the class or position
        columns.
    OSError
        If ``filename`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> from astropy.table import QTable, MaskedColumn
    >>> from astro_clustercls.io.export import to_regions
    >>> t = QTable({'x_centroid': [10.0, 20.0], 'y_centroid': [5.0, 7.0],
    ...             'cluster_class': MaskedColumn([1, 0], mask=[False, True])})
    >>> regs = to_regions(t)
    >>> print(regs.serialize(format='ds9'))  # 1-based pixels, as DS9 reads them
    # Region file format: DS9 astropy/regions
    image
    circle(11.00000000,6.00000000,5.00000000) # text={1} tag={class1} color=green
    circle(21.00000000,8.00000000,5.00000000) # text={?} tag={unclassified} color=gray
    <BLANKLINE>
    """
    from regions import (
        CirclePixelRegion,
        CircleSkyRegion,
        PixCoord,
        RegionMeta,
        Regions,
        RegionVisual,
    )

    if not isinstance(table, Table):
        raise TypeError(f"'table' must be an astropy Table, got {type(table).__name__}")
    format = validate_choice("format", format, ("ds9", "crtf"))
    if "cluster_class" not in table.colnames:
        raise ValueError("'table' has no 'cluster_class' column: classify it first "
                         f"(columns: {table.colnames})")
    palette = dict(DEFAULT_COLORS)
    if colors is not None:
        if not isinstance(colors, dict):
            raise TypeError(f"'colors' must be a dict class -> colour, got {colors!r}")
        for key, value in colors.items():
            if int(key) not in CLASSES:
                raise ValueError(f"'colors' has key {key!r}; classes are "
                                 f"{CLASSES.tolist()}")
            palette[int(key)] = str(value)

    sky_name = _find_sky_column(table, skycol)
    if use_sky is None:
        use_sky = (sky_name is not None or wcs is not None) and xcol is None
    if use_sky:
        if sky_name is not None:
            coords = table[sky_name]
        elif wcs is not None:
            coords = _pixel_to_sky(table, xcol, ycol, wcs)
        else:
            raise ValueError("use_sky=True but the table has no SkyCoord column "
                             f"({list(SKY_COLUMNS)} or skycol=) and no 'wcs' is "
                             "given")
        if coords.isscalar:
            coords = coords.reshape((1,))
        lon = coords.spherical.lon.deg
        lat = coords.spherical.lat.deg
        good = np.isfinite(lon) & np.isfinite(lat)
    else:
        if format == "crtf":
            raise ValueError("format='crtf' needs sky positions (a SkyCoord column, "
                             "use_sky=True); write pixel regions with format='ds9'")
        pair = _find_pixel_columns(table, xcol, ycol)
        if pair is None:
            raise ValueError("the table has no pixel position columns: expected one of "
                             f"{[p[0] + '/' + p[1] for p in PIXEL_COLUMNS]}; name "
                             "them with xcol=/ycol= or use sky positions")
        x = _values(table[pair[0]])
        y = _values(table[pair[1]])
        good = np.isfinite(x) & np.isfinite(y)
    if pixel_scale is None:
        pixel_scale = PIXEL_SCALE
        if wcs is not None and getattr(wcs, "celestial", None) is not None \
                and wcs.has_celestial:
            pixel_scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial))
                                * 3600.0)
    r = _radius(radius, sky=use_sky, pixel_scale=pixel_scale)

    cls_col = table["cluster_class"]
    cls_mask = np.ma.getmaskarray(cls_col)
    cls_val = np.ma.filled(np.ma.asarray(cls_col), 0).astype(int)
    text_key = "label" if format == "crtf" else "text"

    regions = []
    for i in np.flatnonzero(good):
        known = not cls_mask[i] and cls_val[i] in palette
        text = str(cls_val[i]) if known else "?"
        meta = RegionMeta({text_key: text,
                           "tag": [f"class{cls_val[i]}" if known else "unclassified"]})
        visual = RegionVisual({"color": palette[cls_val[i]] if known
                               else str(unclassified_color)})
        if use_sky:
            regions.append(CircleSkyRegion(coords[i], r, meta=meta, visual=visual))
        else:
            regions.append(CirclePixelRegion(PixCoord(x[i], y[i]), r, meta=meta,
                                             visual=visual))
    n_bad = int(np.count_nonzero(~good))
    if n_bad:
        warnings.warn(f"{n_bad} row(s) without a valid position are not in the "
                      "regions", ClusterClsWarning)
    result = Regions(regions)
    if filename is not None:
        atomic_write(filename, lambda tmp: result.write(tmp, format=format,
                                                         overwrite=True),
                      overwrite=overwrite)
    return result


def write_table(table, filename, *, overwrite=False):
    """
    Write a (classified) table as ECSV, atomically.

    ECSV keeps ``meta`` (the classification provenance), units, masks, the
    SkyCoord column and the ``(N, 4)`` ``class_prob`` column. The table is
    written to a temporary file next to ``filename`` and moved into place, so
    an error or an interrupt (Ctrl-C) leaves no partial file.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table.
    filename : path-like
        Output file (ECSV whatever its extension; ``.ecsv`` is customary).
    overwrite : bool, optional
        Replace an existing file (default False: OSError).

    Returns
    -------
    `pathlib.Path`
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from astropy.table import QTable
    >>> from astro_clustercls.io.export import write_table
    >>> t = QTable({'class_prob': np.full((2, 4), 0.25, np.float32)})
    >>> t.meta['astro_clustercls'] = {'model': 'resnet18'}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = write_table(t, pathlib.Path(d) / 'out.ecsv')
    ...     back = QTable.read(path)
    >>> back['class_prob'].shape, back.meta['astro_clustercls']['model']
    ((2, 4), 'resnet18')
    """
    if not isinstance(table, Table):
        raise TypeError(f"'table' must be an astropy Table, got {type(table).__name__}")
    return atomic_write(
        filename, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True),
        overwrite=overwrite)


_MULTIDIM = re.compile(r"^([a-z]+[0-9]*)\[([0-9,]+)\]$")


def read_table(filename):
    """
    Read a table written by `write_table` (ECSV) as a QTable.

    The same as ``QTable.read(filename, format='ascii.ecsv')``, except that a
    table with no rows and a multidimensional column (e.g. the ``(0, 4)``
    ``class_prob`` of an empty classification), which astropy 8.0 fails to
    read ("shape mismatch"), is read too.

    Parameters
    ----------
    filename : path-like
        An ECSV file.

    Returns
    -------
    `~astropy.table.QTable`

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from astropy.table import QTable
    >>> from astro_clustercls.io.export import read_table, write_table
    >>> empty = QTable({'class_prob': np.zeros((0, 4), np.float32)})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     back = read_table(write_table(empty, pathlib.Path(d) / 'empty.ecsv'))
    >>> back['class_prob'].shape
    (0, 4)
    """
    try:
        return QTable.read(filename, format="ascii.ecsv")
    except ValueError as exc:
        if "shape mismatch" not in str(exc):
            raise
        table = _read_empty_multidim(filename)
        if table is None:
            raise
        return table


def _read_empty_multidim(filename):
    """Work around astropy's failure on 0-row ECSV tables with multidim columns."""
    lines = Path(filename).read_text(encoding="utf-8").splitlines()
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    if len(body) != 1:  # only the line of column names: no data rows
        return None
    header = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines
              if ln.startswith("#")][1:]  # drop "%ECSV 1.0"
    spec = get_header_from_yaml(header)
    shapes = {}
    for col in spec.get("datatype", []):
        match = _MULTIDIM.match(str(col.get("subtype", "")))
        if col.get("datatype") == "string" and match:
            shapes[col["name"]] = (match.group(1),
                                   tuple(int(v) for v in match.group(2).split(",")))
    if not shapes:
        return None
    fixed = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        i += 1
        name = next((n for n in shapes
                     if ln.startswith("# - {") and f"name: {n}," in ln), None)
        if name is None:
            fixed.append(ln)
            continue
        # a long entry (e.g. with a description) is folded over several lines
        while (not ln.rstrip().endswith("}") and i < len(lines)
               and lines[i].startswith("#  ")):
            ln = f"{ln.rstrip()} {lines[i][1:].strip()}"
            i += 1
        ln = ln.replace("datatype: string", f"datatype: {shapes[name][0]}", 1)
        fixed.append(re.sub(r",\s*subtype: '?[a-z0-9]+\[[0-9,]+\]'?", "", ln))
    table = QTable.read("\n".join(fixed) + "\n", format="ascii.ecsv")
    for name, (dtype, shape) in shapes.items():
        old = table[name]
        table.replace_column(name, np.zeros((0, *shape), dtype=dtype))
        table[name].unit = getattr(old, "unit", None)
        table[name].description = getattr(getattr(old, "info", None), "description",
                                          None)
    return table
