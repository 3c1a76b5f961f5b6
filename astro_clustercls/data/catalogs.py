# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Read human-labelled star-cluster catalogs into standard tables.

`read_legus` reads the LEGUS ``.tab`` catalogs (Calzetti et al. 2015; Adamo et
al. 2017) and `read_phangs` the PHANGS-HST cluster catalogs (Whitmore et al.
2021; Hannon et al. 2023). Both return a `~astropy.table.QTable` with the same
standard columns, so the tables can be stacked, classified with
`~astro_clustercls.ClusterClassifier` and used to fine-tune or
evaluate a network:

=========================  ==========================================================
column                     content
=========================  ==========================================================
``id``                     the catalog's source id
``x_centroid``             x pixel position, **0-based** (astropy convention)
``y_centroid``             y pixel position, **0-based**
``sky_centroid``           `~astropy.coordinates.SkyCoord` (ICRS)
``cluster_class``          masked int 1..4: catalog codes >= 4 are all class 4 (not a
                           cluster); 0 (not inspected) and unknown codes are masked
``class_code_original``    the catalog's code, unchanged (int, -1 where NaN)
=========================  ==========================================================

`map_classes` is the code-to-class rule shared by both readers.
"""

import re
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table, vstack

from .._constants import DEFAULT_BANDS
from ..utils._meta import get_meta
from ..utils._parameters import validate_table_columns

__all__ = ["map_classes", "read_legus", "read_legus_directory", "read_phangs",
           "legus_layout",
           "LEGUS_CLASS_COLUMNS", "LEGUS_EXTRA_POSITION_FIELDS", "LEGUS_SENTINELS"]

#: 1-based class column of the LEGUS fields where it is not column 34.
LEGUS_CLASS_COLUMNS = {"ngc3351": 35, "ngc4242": 35, "ngc45": 35,
                       "ngc1313-e": 36, "ngc1313-w": 36}
#: LEGUS fields whose files carry two extra columns (x, y in a second pixel
#: frame) after columns 2-3; every later column moves right by two.
LEGUS_EXTRA_POSITION_FIELDS = ("ngc1313-e", "ngc1313-w")
#: LEGUS magnitude sentinels: 66.666 outside the footprint, 99.999 not detected.
LEGUS_SENTINELS = (66.666, 99.999)

_LEGUS_DEFAULT_CLASS_COL = 34
_FILE_RE = re.compile(r"hlsp_legus_hst_(?P<inst>[a-z0-9-]+)_(?P<field>[a-z0-9-]+)"
                      r"_multiband", re.IGNORECASE)


def map_classes(codes, *, max_code=19):
    """
    Map catalog class codes to the four network classes.

    Codes 1, 2 and 3 are kept; codes 4 to ``max_code`` (PHANGS-HST uses 4-19
    for the kinds of non-cluster: star, pair, galaxy, artefact, ...) become 4;
    everything else -- 0 (not inspected), negative, non-integer, NaN, masked
    and codes above ``max_code`` -- is masked.

    Parameters
    ----------
    codes : array-like
        Catalog codes (int or float, may be masked).
    max_code : int, optional
        Largest code that still means "class 4" (default 19, PHANGS-HST; use
        4 for LEGUS, where 5 means "not inspected" in some fields).

    Returns
    -------
    `numpy.ma.MaskedArray` of int64
        Classes 1..4; masked where the code is not a class. Masked entries
        hold 0.

    Examples
    --------
    >>> from astro_clustercls.data.catalogs import map_classes
    >>> map_classes([1, 2, 3, 4, 7, 19, 0, 20, float('nan'), 2.5]).tolist()
    [1, 2, 3, 4, 4, 4, None, None, None, None]
    >>> map_classes([4, 5, 50], max_code=4).tolist()
    [4, None, None]
    """
    arr = np.ma.masked_invalid(np.ma.asarray(codes, dtype=float))
    values = np.ma.filled(arr, np.nan)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(values) & (values == np.round(values))
        ok = integral & (values >= 1) & (values <= max_code)
    out = np.where(ok, np.minimum(np.where(ok, values, 0), 4), 0).astype(np.int64)
    return np.ma.MaskedArray(out, mask=~ok)


def _field_of(path):
    match = _FILE_RE.search(Path(path).name)
    return (match["field"].lower(), match["inst"].lower()) if match else (None, None)


def _read_manifest(path):
    """Return {file name: 1-based class column} from a MANIFEST.tsv, or {}."""
    manifest = Path(path).with_name("MANIFEST.tsv")
    if not manifest.is_file():
        return {}
    out = {}
    with open(manifest) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if "file" not in header or "class_col_1based" not in header:
            return {}
        i_file, i_col = header.index("file"), header.index("class_col_1based")
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) > max(i_file, i_col) and parts[i_col].strip().isdigit():
                out[parts[i_file].strip()] = int(parts[i_col])
    return out


def legus_layout(path, *, class_col=None, extra_position_columns=None):
    """
    Return the column layout used to read a LEGUS catalog file.

    The class column is, in order of precedence: ``class_col``; the
    ``class_col_1based`` entry of a ``MANIFEST.tsv`` next to the file; the
    known rules for the field named in the file name (`LEGUS_CLASS_COLUMNS`);
    column 34 (the LEGUS readme's). The two extra position columns of the
    ngc1313 files (`LEGUS_EXTRA_POSITION_FIELDS`) are recognised by file name
    unless ``extra_position_columns`` says otherwise.

    Parameters
    ----------
    path : str or path-like
        The catalog file (it need not exist to compute the layout).
    class_col : int, optional
        1-based class column.
    extra_position_columns : bool, optional
        Whether two extra x, y columns follow columns 2-3.

    Returns
    -------
    dict
        ``field``, ``instrument``, ``class_col`` (1-based), ``class_col_source``,
        ``offset`` (0 or 2), and the 1-based ``columns`` of each quantity.

    Examples
    --------
    >>> from astro_clustercls.data.catalogs import legus_layout
    >>> name = 'hlsp_legus_hst_wfc3_ngc1313-e_multiband_v1_padagb-mwext-avgapcor.tab'
    >>> layout = legus_layout(name)
    >>> layout['class_col'], layout['offset'], layout['columns']['CI']
    (36, 2, 18)
    """
    field, inst = _field_of(path)
    if class_col is not None:
        if isinstance(class_col, bool) or not isinstance(class_col, (int, np.integer)) \
                or class_col < 1:
            raise ValueError(f"'class_col' must be a 1-based column number, got "
                             f"{class_col!r}")
        col, source = int(class_col), "argument class_col"
    else:
        manifest = _read_manifest(path)
        if Path(path).name in manifest:
            col, source = manifest[Path(path).name], "MANIFEST.tsv"
        elif field in LEGUS_CLASS_COLUMNS:
            col, source = LEGUS_CLASS_COLUMNS[field], "known field rule"
        else:
            col, source = _LEGUS_DEFAULT_CLASS_COL, "LEGUS readme default"
    if extra_position_columns is None:
        extra_position_columns = field in LEGUS_EXTRA_POSITION_FIELDS
    off = 2 if extra_position_columns else 0
    cols = {"id": 1, "x": 2, "y": 3}
    if off:
        cols.update({"x_alt": 4, "y_alt": 5})
    cols.update({"ra": 4 + off, "dec": 5 + off})
    for i, band in enumerate(DEFAULT_BANDS):
        cols[f"{band}_mag"] = 6 + off + 2 * i
        cols[f"{band}_mag_err"] = 7 + off + 2 * i
    cols["CI"] = 16 + off
    for i, name in enumerate(("age", "age_max", "age_min", "mass", "mass_max",
                              "mass_min", "ebv", "ebv_max", "ebv_min")):
        cols[name] = 17 + off + i
    cols["sed_n_filters"] = 33 + off
    return {"field": field, "instrument": inst, "class_col": col,
            "class_col_source": source, "offset": off, "columns": cols}


def _legus_band_filters(inst):
    """Actual filters behind the standard band names, as far as the file tells."""
    acs = inst is not None and "acs" in inst
    return {"F275W": "F275W (WFC3/UVIS)", "F336W": "F336W (WFC3/UVIS)",
            "F438W": "F435W (ACS/WFC)" if acs else "F438W (WFC3/UVIS)",
            "F555W": ("F555W or F606W (ACS/WFC; the file does not say which)" if acs
                      else "F555W (WFC3/UVIS)"),
            "F814W": "F814W (ACS/WFC)" if acs else "F814W (WFC3/UVIS)"}


def _load_rows(path):
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            rows.append((lineno, text.split()))
    if not rows:
        raise ValueError(f"LEGUS catalog {str(path)!r} holds no rows")
    widths = {len(parts) for _, parts in rows}
    if len(widths) != 1:
        first = next(n for n, p in rows if len(p) != len(rows[0][1]))
        raise ValueError(f"LEGUS catalog {str(path)!r} has rows of different "
                         f"lengths {sorted(widths)} (first odd row: line {first})")
    try:
        return np.array([parts for _, parts in rows], dtype=float)
    except ValueError as exc:
        raise ValueError(f"LEGUS catalog {str(path)!r} holds non-numeric values: "
                         f"{exc}") from None


def _masked_sentinels(values, sentinels):
    bad = ~np.isfinite(values)
    for s in sentinels:
        bad |= np.abs(values - s) < 5e-4
    return bad


def read_legus(path, *, class_col=None, extra_position_columns=None,
               band_names=None):
    """
    Read a LEGUS cluster catalog (``.tab``) into a standard table.

    The files are whitespace-separated, read by column position (files have
    34-39 columns). See `legus_layout` for how the class column and the two
    extra position columns of the ngc1313 files are found.

    Parameters
    ----------
    path : str or path-like
        The ``hlsp_legus_hst_*.tab`` file.
    class_col : int, optional
        1-based column of the human class (default: from ``MANIFEST.tsv``
        next to the file, else the known per-field rules, else 34).
    extra_position_columns : bool, optional
        Whether two extra x, y columns follow columns 2-3 (default: True for
        the ngc1313-e/-w files, recognised by name).
    band_names : sequence of 5 str, optional
        Names of the five bands, blue to red, used in the magnitude column
        names. Default: the package's standard names ``F275W, F336W, F438W,
        F555W, F814W`` for every field, so that all LEGUS tables have the
        same columns and stack with `~astropy.table.vstack`. The actual
        filters (F435W on ACS fields; F555W or F606W) are recorded in
        ``meta['band_filters']``.

    Returns
    -------
    `~astropy.table.QTable`
        One row per catalog line, in file order, with columns ``id``,
        ``x_centroid``, ``y_centroid`` (0-based: LEGUS x, y are 1-based FITS
        pixels and 1 is subtracted), ``sky_centroid``, ``<band>_mag`` and
        ``<band>_mag_err`` (Vega mag, masked where the catalog holds 66.666,
        outside the footprint, or 99.999, not detected), ``<band>_in_footprint``
        (bool: False where the catalog holds 66.666), ``CI`` (mag; masked
        where ``|CI| >= 20``, values computed from a sentinel magnitude),
        ``age`` (yr), ``mass`` (solar masses), ``ebv`` (mag) with their
        ``_max``/``_min`` ranges (masked where the SED fit did not run: number
        of filters not 3-5), ``sed_n_filters``, ``cluster_class`` (masked int
        1..4; see `map_classes` with ``max_code=4``: 0 = not inspected, the
        class 5 of ngc4449 and the stray value 50 of ngc4242 are masked),
        ``class_code_original`` and ``class_mean`` (mean of the classifiers'
        classes; masked throughout in files where the column after the class
        column is not such a mean). ngc1313 files also get ``x_alt``,
        ``y_alt`` (0-based) for their second pixel frame. ``meta`` holds the
        source file, the layout (1-based columns) and provenance.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If the file is ragged, non-numeric, too narrow for the layout, or the
        RA/Dec columns of the layout do not hold sky coordinates.

    Notes
    -----
    ``class_mean`` is taken from the column right after the class column
    when that column is a mean of classes: every value in [0, 4], in [1, 4]
    for rows with a class, and at least one non-integer value. Files whose
    next column holds other things (flags, counts of classifiers) get a
    fully masked ``class_mean`` and ``meta['layout']['class_mean_col']`` is
    None.

    Examples
    --------
    >>> import tempfile, os
    >>> from astro_clustercls.data.catalogs import read_legus
    >>> row = ('1 101.0 51.0 10.0 -20.0 20.1 0.05 20.2 0.05 66.666 66.666 20.3 '
    ...        '0.04 20.0 0.03 1.6 1e7 2e7 5e6 1e4 2e4 5e3 0.1 0.2 0.0 '
    ...        '0 0 0 0 0 0 0 5 2 2.333')
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     name = os.path.join(tmp, 'cat.tab')
    ...     with open(name, 'w') as fh:
    ...         _ = fh.write(row + '\\n')
    ...     table = read_legus(name)
    >>> float(table['x_centroid'][0]), int(table['cluster_class'][0])
    (100.0, 2)
    >>> bool(table['F438W_mag'].mask[0])
    True
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LEGUS catalog {str(path)!r} not found")
    if band_names is None:
        band_names = DEFAULT_BANDS
    band_names = tuple(str(b) for b in band_names)
    if len(band_names) != 5:
        raise ValueError(f"'band_names' must name 5 bands, got {band_names!r}")
    layout = legus_layout(path, class_col=class_col,
                          extra_position_columns=extra_position_columns)
    data = _load_rows(path)
    n, ncol = data.shape
    cols = layout["columns"]
    needed = max(layout["class_col"], *cols.values())
    if ncol < needed:
        raise ValueError(f"LEGUS catalog {str(path)!r} has {ncol} columns but the "
                         f"layout needs column {needed} (check 'class_col' and "
                         "'extra_position_columns')")

    def c(name):
        return data[:, cols[name] - 1]

    ra, dec = c("ra"), c("dec")
    if not (np.all((ra >= 0) & (ra <= 360)) and np.all(np.abs(dec) <= 90)):
        raise ValueError(f"columns {cols['ra']}, {cols['dec']} of {str(path)!r} do not "
                         "hold RA/Dec in degrees; set 'extra_position_columns' to "
                         "match the file")

    table = QTable()
    table["id"] = c("id").astype(np.int64)
    table["x_centroid"] = (c("x") - 1.0)
    table["y_centroid"] = (c("y") - 1.0)
    table["sky_centroid"] = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    if "x_alt" in cols:
        table["x_alt"] = (c("x_alt") - 1.0)
        table["y_alt"] = (c("y_alt") - 1.0)
    for std, band in zip(DEFAULT_BANDS, band_names, strict=True):
        mag = c(f"{std}_mag")
        err = c(f"{std}_mag_err")
        bad = _masked_sentinels(mag, LEGUS_SENTINELS)
        table[f"{band}_mag"] = MaskedColumn(mag, mask=bad, unit=u.mag)
        table[f"{band}_mag_err"] = MaskedColumn(
            err, mask=bad | _masked_sentinels(err, LEGUS_SENTINELS), unit=u.mag)
        # a masked magnitude is either off the band's footprint or undetected
        table[f"{band}_in_footprint"] = ~_masked_sentinels(mag, LEGUS_SENTINELS[:1])
    ci = c("CI")
    table["CI"] = MaskedColumn(ci, mask=~(np.abs(ci) < 20), unit=u.mag)
    nfil = c("sed_n_filters")
    no_fit = ~np.isin(nfil, (3, 4, 5))
    units = {"age": u.yr, "mass": u.Msun, "ebv": u.mag}
    for qty in ("age", "mass", "ebv"):
        for suffix in ("", "_max", "_min"):
            table[qty + suffix] = MaskedColumn(c(qty + suffix), mask=no_fit,
                                               unit=units[qty])
    table["sed_n_filters"] = nfil.astype(np.int64)

    raw = data[:, layout["class_col"] - 1]
    classes = map_classes(raw, max_code=4)
    table["cluster_class"] = MaskedColumn(classes.data, mask=classes.mask)
    table["class_code_original"] = np.where(np.isfinite(raw), raw, -1).astype(np.int64)
    mean_col = layout["class_col"] + 1
    mean_ok = False
    if ncol >= mean_col:
        mean = data[:, mean_col - 1]
        has = ~classes.mask
        mean_ok = (np.all((mean >= 0) & (mean <= 4))
                   and np.all((mean[has] >= 1) & (mean[has] <= 4))
                   and np.any(mean != np.round(mean)))
    if mean_ok:
        table["class_mean"] = MaskedColumn(mean, mask=classes.mask)
    else:
        table["class_mean"] = MaskedColumn(np.zeros(n), mask=np.ones(n, bool))

    n_other = int(np.count_nonzero(classes.mask & (raw != 0)))
    layout = dict(layout, class_mean_col=mean_col if mean_ok else None,
                  n_unknown_codes=n_other)
    table.meta.update(get_meta(
        source_file=str(path), catalog="LEGUS", layout=layout,
        band_filters=dict(zip(band_names,
                              _legus_band_filters(layout["instrument"]).values(),
                              strict=True)),
        pixel_origin="0-based (LEGUS 1-based x, y minus 1)"))
    return table


def read_legus_directory(directory, *, pattern="hlsp_legus_*.tab", **kwargs):
    """
    Read every LEGUS catalog of a directory into one table.

    Parameters
    ----------
    directory : str or path-like
        Folder holding the ``.tab`` files (and possibly ``MANIFEST.tsv``).
    pattern : str, optional
        Glob pattern of the files (default ``'hlsp_legus_*.tab'``).
    **kwargs
        Passed to `read_legus` (not ``class_col``, which differs per file).

    Returns
    -------
    `~astropy.table.QTable`
        The `read_legus` tables stacked in file-name order, with a ``field``
        column (e.g. ``'ngc628-e'``); ``meta['files']`` lists each file with
        its layout.

    Raises
    ------
    OSError
        If no file matches.
    """
    if "class_col" in kwargs:
        raise TypeError("'class_col' differs per file: read the files one by one")
    files = sorted(Path(directory).glob(pattern))
    if not files:
        raise FileNotFoundError(f"no file matching {pattern!r} in {str(directory)!r}")
    tables, meta = [], []
    for path in files:
        table = read_legus(path, **kwargs)
        field = table.meta["layout"]["field"] or path.stem
        table["field"] = np.full(len(table), field)
        meta.append({"file": str(path), "field": field, "rows": len(table),
                     "layout": table.meta["layout"],
                     "band_filters": table.meta["band_filters"]})
        table.meta.clear()
        tables.append(table)
    out = vstack(tables, metadata_conflicts="silent")
    out.meta.update(get_meta(catalog="LEGUS", files=meta,
                             pixel_origin="0-based (LEGUS 1-based x, y minus 1)"))
    return out


def _column_array(table, name):
    col = table[name]
    values = np.ma.asarray(getattr(col, "value", col), dtype=float)
    return np.ma.filled(np.ma.masked_invalid(values), np.nan)


def read_phangs(path_or_table, *, origin=0, max_code=19, xcol="PHANGS_X",
                ycol="PHANGS_Y", racol="PHANGS_RA", deccol="PHANGS_DEC",
                class_col="PHANGS_CLUSTER_CLASS_HUMAN"):
    """
    Read a PHANGS-HST cluster catalog into a standard table.

    Parameters
    ----------
    path_or_table : str, path-like or `~astropy.table.Table`
        A FITS (or any astropy-readable) catalog, or a table already read.
    origin : {0, 1}, optional
        Pixel convention of ``PHANGS_X``/``PHANGS_Y``. The public catalogs'
        documentation does not state it; they are treated as 0-based
        (astropy/photutils convention, the default). Pass ``origin=1`` if
        your catalog is 1-based (FITS/DS9): 1 is then subtracted.
    max_code : int, optional
        Largest catalog code that means class 4 (default 19, see
        `map_classes`).
    xcol, ycol, racol, deccol, class_col : str, optional
        Column names (defaults: the PHANGS-HST ones). ``class_col`` is the
        label turned into ``cluster_class`` (the human class by default; use
        ``'PHANGS_CLUSTER_CLASS_ML_VGG'`` for the machine labels).

    Returns
    -------
    `~astropy.table.QTable`
        All input columns, plus ``x_centroid``, ``y_centroid`` (0-based,
        pixels), ``sky_centroid`` (ICRS), ``cluster_class`` (masked int
        1..4), ``class_code_original`` (int, -1 where the code is missing),
        and, when present in the input, ``class_ml_vgg`` (mapped like
        ``cluster_class``) and ``class_ml_vgg_qual`` (fraction of the 10
        networks that agree). ``meta`` records the source and conventions.

    Raises
    ------
    ValueError
        If a needed column is missing or ``origin`` is not 0 or 1.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from astro_clustercls.data.catalogs import read_phangs
    >>> cat = Table({'PHANGS_X': [10.0, 20.0], 'PHANGS_Y': [5.0, 6.0],
    ...              'PHANGS_RA': [150.0, 150.001], 'PHANGS_DEC': [2.0, 2.001],
    ...              'PHANGS_CLUSTER_CLASS_HUMAN': [1, 13]})
    >>> t = read_phangs(cat)
    >>> t['cluster_class'].tolist(), t['class_code_original'].tolist()
    ([1, 4], [1, 13])
    """
    if origin not in (0, 1) or isinstance(origin, bool):
        raise ValueError(f"'origin' must be 0 or 1, got {origin!r}")
    source = "table"
    if isinstance(path_or_table, Table):
        table = QTable(path_or_table, copy=True)
    else:
        source = str(path_or_table)
        if not Path(source).is_file():
            raise FileNotFoundError(f"PHANGS catalog {source!r} not found")
        table = QTable.read(source)
    validate_table_columns("path_or_table", table, [xcol, ycol, class_col])
    x = _column_array(table, xcol) - origin
    y = _column_array(table, ycol) - origin
    table["x_centroid"] = x
    table["y_centroid"] = y
    if racol in table.colnames and deccol in table.colnames:
        ra = _column_array(table, racol)
        dec = _column_array(table, deccol)
        table["sky_centroid"] = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    raw = _column_array(table, class_col)
    classes = map_classes(raw, max_code=max_code)
    table["cluster_class"] = MaskedColumn(classes.data, mask=classes.mask)
    with np.errstate(invalid="ignore"):
        table["class_code_original"] = np.where(np.isfinite(raw), raw, -1).astype(
            np.int64)
    if "PHANGS_CLUSTER_CLASS_ML_VGG" in table.colnames and \
            class_col != "PHANGS_CLUSTER_CLASS_ML_VGG":
        ml = map_classes(_column_array(table, "PHANGS_CLUSTER_CLASS_ML_VGG"),
                         max_code=max_code)
        table["class_ml_vgg"] = MaskedColumn(ml.data, mask=ml.mask)
    if "PHANGS_CLUSTER_CLASS_ML_VGG_QUAL" in table.colnames:
        qual = _column_array(table, "PHANGS_CLUSTER_CLASS_ML_VGG_QUAL")
        table["class_ml_vgg_qual"] = MaskedColumn(qual, mask=~np.isfinite(qual))
    table.meta.update(get_meta(
        source_file=source, catalog="PHANGS-HST", class_column=class_col,
        pixel_origin=(f"0-based; input {xcol}/{ycol} read with origin={origin}")))
    return table

