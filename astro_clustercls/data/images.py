# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Multi-band images on one pixel grid: `BandImages`.

A `BandImages` is an ordered, read-only mapping from a band name (``'F275W'``,
...) to a `~astropy.nddata.CCDData`. All bands must share one pixel grid (the
same shape and, within a tolerance, the same WCS), as HST drizzled products of
one field do. Bad pixels come from each band's ``mask``, from an HST data
quality (``DQ``) array or from a drizzle weight map (``WHT`` = 0: no data); they
are kept lazily (memory-mapped) and applied per cutout.
"""

import bz2
import gzip
import lzma
import re
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning

from ..utils._files import atomic_write_all
from ..utils.exceptions import ClusterClsWarning

__all__ = ["BandImages", "normalize_band_name", "parse_bunit"]

#: keywords searched (in order) for the filter name of an HST image
FILTER_KEYWORDS = ("FILTER", "FILTER1", "FILTER2", "FILTNAM1", "FILTNAM2")

_BUNIT_ALIASES = {
    "ELECTRONS/S": u.electron / u.s,
    "ELECTRONS/SEC": u.electron / u.s,
    "ELECTRON/S": u.electron / u.s,
    "E/S": u.electron / u.s,
    "E-/S": u.electron / u.s,
    "ELECTRONS": u.electron,
    "ELECTRON": u.electron,
    "COUNTS/S": u.count / u.s,
    "COUNTS": u.count,
    "DN/S": u.adu / u.s,
    "DN": u.adu,
    "UNITLESS": u.dimensionless_unscaled,
}


def normalize_band_name(name):
    """
    Return the canonical (upper-case, stripped) form of a band name.

    Parameters
    ----------
    name : str
        A filter name such as ``'f555w'`` or ``' F555W '``.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``name`` is not a string.

    Examples
    --------
    >>> from astro_clustercls.data.images import normalize_band_name
    >>> normalize_band_name('f555w')
    'F555W'
    """
    if not isinstance(name, str):
        raise TypeError(f"band names must be strings, got {name!r}")
    norm = name.strip().upper()
    if not norm:
        raise ValueError("band names must not be empty")
    return norm


def parse_bunit(bunit):
    """
    Convert a FITS ``BUNIT`` string, including HST variants, to a unit.

    Parameters
    ----------
    bunit : str or None
        For example ``'ELECTRONS/S'``, ``'electron/s'``, ``'COUNTS/S'``.

    Returns
    -------
    `~astropy.units.UnitBase` or None
        None when ``bunit`` is empty or cannot be parsed (a warning is emitted
        in that case by the caller).

    Examples
    --------
    >>> from astro_clustercls.data.images import parse_bunit
    >>> parse_bunit('ELECTRONS/S')
    Unit("electron / s")
    """
    if bunit is None:
        return None
    key = str(bunit).strip()
    if not key:
        return None
    if key.upper() in _BUNIT_ALIASES:
        return _BUNIT_ALIASES[key.upper()]
    try:
        return u.Unit(key, parse_strict="raise")
    except ValueError:
        try:
            return u.Unit(key.lower(), parse_strict="raise")
        except ValueError:
            return None


def _bunit_string(unit):
    """A BUNIT value that `parse_bunit` reads back (HST spelling for e-/s)."""
    if unit is None:
        return ""
    for text, alias in _BUNIT_ALIASES.items():
        if unit == alias:
            return text
    try:
        return unit.to_string("fits")
    except ValueError:
        return unit.to_string()


def _as_ccddata(band, value, wcs, unit):
    """Turn one band's value into CCDData without copying its data."""
    if isinstance(value, CCDData):
        return value
    if isinstance(value, NDData):
        if value.unit is not None:
            unit = value.unit
        return CCDData(value.data, unit=unit or u.dimensionless_unscaled,
                       wcs=value.wcs if value.wcs is not None else wcs,
                       mask=value.mask, uncertainty=value.uncertainty,
                       meta=value.meta, copy=False)
    if isinstance(value, u.Quantity):
        return CCDData(value.value, unit=value.unit, wcs=wcs, copy=False)
    if isinstance(value, np.ndarray):
        return CCDData(value, unit=unit or u.dimensionless_unscaled, wcs=wcs,
                       copy=False)
    raise TypeError(f"images[{band!r}] must be a CCDData, NDData, Quantity or 2D "
                    f"numpy array, got {type(value).__name__}")


def _wcs_mismatch(wcs_ref, wcs, shape, tolerance):
    """Largest pixel offset between two WCS at the corners and centre of the grid."""
    ny, nx = shape
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    try:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if wcs_ref.wcs.lngtyp != wcs.wcs.lngtyp or wcs_ref.wcs.lattyp != \
                    wcs.wcs.lattyp:
                return np.inf
            world = wcs_ref.pixel_to_world_values(x, y)
            x2, y2 = wcs.world_to_pixel_values(*world)
        dist = np.hypot(np.asarray(x2, float) - x, np.asarray(y2, float) - y)
    except Exception:  # noqa: BLE001 - an unusable WCS is a mismatch
        return np.inf
    return float(np.max(dist)) if np.all(np.isfinite(dist)) else np.inf


class BandImages(Mapping):
    """
    An ordered mapping band name → `~astropy.nddata.CCDData` on one pixel grid.

    Parameters
    ----------
    images : mapping of str to CCDData, NDData, Quantity or ndarray
        One image per band, in the order to be used. Band names are normalised
        with `normalize_band_name` (``'f555w'`` → ``'F555W'``).
    wcs : `~astropy.wcs.WCS`, optional
        WCS for bands given without one (arrays, Quantities).
    unit : unit-like, optional
        Unit for bands given as bare arrays (default: dimensionless).
    check_grid : bool, optional
        Check that all bands share the shape and WCS of the first one
        (default True).
    wcs_tolerance : float, optional
        Largest allowed difference between two bands' WCS, in pixels, measured
        at the grid corners and centre (default 0.01).

    Raises
    ------
    TypeError
        If ``images`` is not a mapping or a band is of an unsupported type.
    ValueError
        If no band is given, two names normalise to the same band, an image is
        not 2D, or the bands do not share one pixel grid (the message names the
        band that differs and suggests reprojecting it first, e.g. with
        ``reproject``).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls import BandImages
    >>> images = BandImages({'f555w': np.zeros((50, 60)), 'F814W': np.ones((50, 60))})
    >>> images.bands
    ('F555W', 'F814W')
    >>> images.shape
    (50, 60)
    """

    def __init__(self, images, *, wcs=None, unit=None, check_grid=True,
                 wcs_tolerance=0.01):
        inherited_badpix = {}
        if isinstance(images, BandImages):
            inherited_badpix = dict(images._badpix)
            images = dict(images._images)
        if not isinstance(images, Mapping):
            raise TypeError("'images' must be a mapping of band name to image "
                            f"(e.g. a dict), got {type(images).__name__}")
        if len(images) == 0:
            raise ValueError("'images' must hold at least one band")
        unit = u.Unit(unit) if unit is not None else None
        self._images = {}
        self._badpix = {}
        for band, value in images.items():
            name = normalize_band_name(band)
            if name in self._images:
                raise ValueError(f"band {band!r} given twice in 'images' (as {name!r})")
            ccd = _as_ccddata(name, value, wcs, unit)
            if ccd.data.ndim != 2:
                raise ValueError(f"images[{band!r}] must be a 2D image, got shape "
                                 f"{ccd.data.shape}")
            if ccd.mask is not None and np.shape(ccd.mask) != ccd.data.shape:
                raise ValueError(f"images[{band!r}] has a mask of shape "
                                 f"{np.shape(ccd.mask)} for data of shape "
                                 f"{ccd.data.shape}")
            self._images[name] = ccd
            if name in inherited_badpix:
                self._badpix[name] = inherited_badpix[name]
            elif ccd.mask is not None and np.any(ccd.mask):
                self._badpix[name] = ("mask", np.asarray(ccd.mask, bool), 0)
        self.wcs_tolerance = float(wcs_tolerance)
        if check_grid:
            self._check_grid()

    # -- Mapping interface -------------------------------------------------
    def __getitem__(self, band):
        key = normalize_band_name(band) if isinstance(band, str) else band
        try:
            return self._images[key]
        except KeyError:
            raise KeyError(f"no band {band!r}; bands are {self.bands}") from None

    def __iter__(self):
        return iter(self._images)

    def __len__(self):
        return len(self._images)

    def __repr__(self):
        return (f"<BandImages bands={list(self.bands)} shape={self.shape} "
                f"wcs={'yes' if self.wcs is not None else 'no'}>")

    # -- properties --------------------------------------------------------
    @property
    def bands(self):
        """The band names, in order."""
        return tuple(self._images)

    @property
    def shape(self):
        """The common ``(ny, nx)`` shape of the images."""
        return next(iter(self._images.values())).data.shape

    @property
    def wcs(self):
        """The WCS of the first band that has one (all agree), or None."""
        for ccd in self._images.values():
            if ccd.wcs is not None:
                return ccd.wcs
        return None

    @property
    def unit(self):
        """The unit of the first band."""
        return next(iter(self._images.values())).unit

    def bad_pixel_source(self, band):
        """
        How bad pixels of ``band`` are known: ``(kind, array, ignore_bits)`` or None.

        ``kind`` is ``'mask'`` (True = bad), ``'dq'`` (bits other than
        ``ignore_bits`` = bad) or ``'weight'`` (<= 0 = no data).
        """
        return self._badpix.get(normalize_band_name(band))

    # -- grid checks -------------------------------------------------------
    def _check_grid(self):
        ref_band = self.bands[0]
        ref = self._images[ref_band]
        with_wcs = [b for b, c in self._images.items() if c.wcs is not None]
        if with_wcs and len(with_wcs) != len(self):
            missing = [b for b in self.bands if b not in with_wcs]
            raise ValueError(f"bands {missing} have no WCS while {with_wcs} do: give "
                             "every band a WCS (or none), e.g. with the 'wcs' argument")
        for band, ccd in self._images.items():
            if ccd.data.shape != ref.data.shape:
                raise ValueError(
                    f"band {band!r} has shape {ccd.data.shape} but band {ref_band!r} "
                    f"has {ref.data.shape}: all bands must share one pixel grid. "
                    "Reproject it first, e.g. with reproject.reproject_interp(..., "
                    f"output_projection=images[{ref_band!r}].wcs, "
                    f"shape_out={ref.data.shape}).")
        ref_wcs = self.wcs
        if ref_wcs is None:
            return
        ref_wcs_band = with_wcs[0]
        for band in with_wcs[1:]:
            offset = _wcs_mismatch(ref_wcs, self._images[band].wcs, ref.data.shape,
                                   self.wcs_tolerance)
            if not offset <= self.wcs_tolerance:
                raise ValueError(
                    f"band {band!r} has a WCS that differs from band {ref_wcs_band!r} "
                    f"by up to {offset:.3g} pixels (wcs_tolerance="
                    f"{self.wcs_tolerance}): all bands must share one pixel grid. "
                    "Reproject it onto the reference band first, e.g. with "
                    "reproject.reproject_interp.")

    # -- selection ---------------------------------------------------------
    def select(self, bands):
        """
        Return a new `BandImages` with only ``bands``, in the given order.

        Examples
        --------
        >>> import numpy as np
        >>> from astro_clustercls import BandImages
        >>> images = BandImages({'F555W': np.zeros((5, 5)), 'F814W': np.ones((5, 5))})
        >>> images.select(['F814W']).bands
        ('F814W',)
        """
        if isinstance(bands, str):
            bands = [bands]
        names = [normalize_band_name(b) for b in bands]
        if len(set(names)) != len(names):
            raise ValueError(f"'bands' names a band twice: {list(bands)}")
        missing = [b for b in names if b not in self._images]
        if missing:
            raise ValueError(f"'bands' asks for {missing}, which are not among the "
                             f"images' bands {self.bands}")
        new = BandImages.__new__(BandImages)
        new._images = {b: self._images[b] for b in names}
        new._badpix = {b: self._badpix[b] for b in names if b in self._badpix}
        new.wcs_tolerance = self.wcs_tolerance
        return new

    def window(self, yslice, xslice):
        """
        A `BandImages` over a rectangular window of the grid (views: nothing read).

        Data, masks, DQ and weight maps are sliced alike, and each band's WCS
        is sliced too, so sky positions stay right in the window.

        Parameters
        ----------
        yslice, xslice : slice
            Python slices (step 1) along the y (rows) and x (columns) axes.

        Examples
        --------
        >>> import numpy as np
        >>> from astro_clustercls import BandImages
        >>> images = BandImages({'F555W': np.arange(20.0).reshape(4, 5)})
        >>> images.window(slice(1, 3), slice(2, 5))['F555W'].data
        array([[ 7.,  8.,  9.],
               [12., 13., 14.]])
        """
        for name, sl in (("yslice", yslice), ("xslice", xslice)):
            if not isinstance(sl, slice) or sl.step not in (None, 1):
                raise TypeError(f"{name!r} must be a slice with step 1, got {sl!r}")
        images = {}
        for band, ccd in self._images.items():
            wcs = ccd.wcs[yslice, xslice] if ccd.wcs is not None else None
            images[band] = CCDData(ccd.data[yslice, xslice], unit=ccd.unit, wcs=wcs,
                                   meta=ccd.meta, copy=False)
        new = BandImages(images, check_grid=False, wcs_tolerance=self.wcs_tolerance)
        new._badpix = {b: (kind, array[yslice, xslice], ignore)
                       for b, (kind, array, ignore) in self._badpix.items()}
        return new

    # -- output ------------------------------------------------------------
    def write(self, directory, *, pattern="{band}.fits", overwrite=False):
        """
        Write one FITS file per band (image, unit as BUNIT, WCS, FILTER keyword).

        Parameters
        ----------
        directory : path-like
            Existing directory to write into.
        pattern : str, optional
            File name pattern; ``{band}`` is the lower-case band name
            (default ``'{band}.fits'``).
        overwrite : bool, optional
            Replace existing files (default False: OSError if one exists,
            before anything is written).

        Returns
        -------
        dict
            Band → path written, ready for `from_files`.

        Notes
        -----
        All or nothing: every band is written to a temporary file next to its
        target, and the files are moved into place only when all are written,
        so an error or an interrupt leaves no partial file (and no new file).

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from astro_clustercls import BandImages
        >>> images = BandImages({'F555W': np.ones((4, 4))}, unit='electron/s')
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     paths = images.write(tmp)
        ...     BandImages.from_files(paths).bands
        ('F555W',)
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise OSError(f"'directory' {directory} is not an existing directory")
        paths, writes = {}, {}
        for band, ccd in self._images.items():
            path = directory / pattern.format(band=band.lower())
            header = ccd.wcs.to_header() if ccd.wcs is not None else fits.Header()
            header["FILTER"] = band
            header["BUNIT"] = _bunit_string(ccd.unit)
            hdu = fits.PrimaryHDU(np.asarray(ccd.data), header)
            if path in writes:
                raise ValueError(f"'pattern' {pattern!r} gives the same file {path} "
                                 "to several bands; include '{band}'")
            writes[path] = lambda tmp, hdu=hdu: hdu.writeto(tmp, overwrite=True)
            paths[band] = path
        atomic_write_all(writes, overwrite=overwrite)
        return paths

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_files(cls, files, *, hdu=None, memmap=True, dq_ignore=0,
                   use_weight=True, **kwargs):
        """
        Read one FITS file per band.

        HST drizzled (``drc``/``drz``: SCI, WHT, CTX) and calibrated
        (``flt``/``flc``: SCI, ERR, DQ) products are understood: the ``SCI``
        extension (or the first HDU with 2D data) is the image; ``ERR`` becomes
        the uncertainty; ``DQ`` (bits not in ``dq_ignore``) and ``WHT`` = 0 mark
        bad pixels, applied lazily per cutout. ``BUNIT`` variants such as
        ``ELECTRONS/S`` are understood. Data stay memory-mapped (big-endian
        FITS data are converted per cutout, never as a whole image).

        Parameters
        ----------
        files : mapping of str to path-like, or sequence of path-like
            Band name → file. A sequence is keyed by each file's filter keyword
            (FILTER, FILTER1/FILTER2 skipping CLEAR, FILTNAM1).
        hdu : int, str or (str, int), optional
            The extension holding the image: index, name, or ``(name, EXTVER)``
            such as ``('SCI', 2)`` for the second chip of an ``flt`` file
            (default: the first ``'SCI'`` if present, else the first HDU with
            2D data). ``ERR``, ``DQ`` and ``WHT`` of the same ``EXTVER`` are
            used.
        memmap : bool, optional
            Memory-map the files (default True).
        dq_ignore : int, optional
            DQ bits that do not make a pixel bad (default 0: any DQ bit does).
        use_weight : bool, optional
            Treat pixels with drizzle weight ``WHT <= 0`` as bad (default True).
        **kwargs
            Passed to `BandImages` (``check_grid``, ``wcs_tolerance``).

        Raises
        ------
        OSError
            If a file is missing, unreadable or holds no 2D image.
        ValueError
            If two files have the same filter, or a filter cannot be found.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> from astro_clustercls import BandImages
        >>> folder = Path(tempfile.mkdtemp())
        >>> paths = []
        >>> for band in ('F555W', 'F814W'):
        ...     primary = fits.PrimaryHDU(header=fits.Header({'FILTER': band}))
        ...     sci = fits.ImageHDU(np.zeros((8, 8), '>f4'), name='SCI',
        ...                         header=fits.Header({'BUNIT': 'ELECTRONS/S'}))
        ...     dq = fits.ImageHDU(np.zeros((8, 8), np.int16), name='DQ')
        ...     paths.append(folder / f'{band.lower()}_flt.fits')
        ...     fits.HDUList([primary, sci, dq]).writeto(paths[-1])
        >>> images = BandImages.from_files(paths)  # keyed by their FILTER keyword
        >>> images.bands, str(images.unit)
        (('F555W', 'F814W'), 'electron / s')
        >>> import shutil
        >>> del images
        >>> shutil.rmtree(folder, ignore_errors=True)
        """
        if isinstance(files, (str, Path)):
            raise TypeError("'files' must be a mapping band -> path or a list of "
                            f"paths, got the single path {str(files)!r}")
        if isinstance(files, Mapping):
            items = [(normalize_band_name(b), p) for b, p in files.items()]
        else:
            items = []
            for path in files:
                band = _filter_from_file(path)
                items.append((band, path))
        images, badpix = {}, {}
        for band, path in items:
            if band in images:
                raise ValueError(f"two files in 'files' have band {band!r}")
            ccd, bad = _read_band(path, hdu=hdu, memmap=memmap, dq_ignore=dq_ignore,
                                  use_weight=use_weight)
            images[band] = ccd
            if bad is not None:
                badpix[band] = bad
        new = cls(images, **kwargs)
        new._badpix.update(badpix)
        return new

    @classmethod
    def from_collection(cls, collection, *, bands=None, **kwargs):
        """
        Build from a ccdproc `~ccdproc.ImageFileCollection`, one file per filter.

        Files are keyed by their FILTER (or FILTER1/FILTER2 skipping CLEAR, or
        FILTNAM1) keyword.

        Parameters
        ----------
        collection : `~ccdproc.ImageFileCollection`
        bands : sequence of str, optional
            Keep only these bands, in this order (default: all, sorted by
            wavelength as in the filter name).
        **kwargs
            Passed to `from_files` (``hdu``, ``memmap``, ``dq_ignore``, ...).

        Raises
        ------
        TypeError
            If ``collection`` is not an ImageFileCollection.
        ValueError
            If it holds no file, two files share a filter, a file has no
            filter keyword, or ``bands`` asks for a filter it does not hold.
        OSError
            If a file cannot be read.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> from ccdproc import ImageFileCollection
        >>> from astro_clustercls import BandImages
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name, keys in [('wfc3', {'FILTER': 'F336W'}),
        ...                    ('acs', {'FILTER1': 'CLEAR1L', 'FILTER2': 'F814W'})]:
        ...     fits.HDUList([fits.PrimaryHDU(header=fits.Header(keys)),
        ...                   fits.ImageHDU(np.zeros((8, 8), np.float32), name='SCI')]
        ...                  ).writeto(folder / f'{name}_drc.fits')
        >>> BandImages.from_collection(ImageFileCollection(folder)).bands
        ('F336W', 'F814W')
        >>> import shutil
        >>> shutil.rmtree(folder, ignore_errors=True)
        """
        from ccdproc import ImageFileCollection

        if not isinstance(collection, ImageFileCollection):
            raise TypeError("'collection' must be a ccdproc.ImageFileCollection, got "
                            f"{type(collection).__name__}")
        paths = collection.files_filtered(include_path=True)
        if len(paths) == 0:
            raise ValueError("'collection' holds no FITS files "
                             f"({collection.location})")
        mapping = {}
        for path in paths:
            band = _filter_from_file(path)
            if band in mapping:
                raise ValueError(f"'collection' has two files for band {band!r}: "
                                 f"{mapping[band]} and {path}; filter it first "
                                 "(ImageFileCollection.filter)")
            mapping[band] = path
        if bands is None:
            order = sorted(mapping, key=_band_wavelength)
        else:
            order = [normalize_band_name(b) for b in bands]
            missing = [b for b in order if b not in mapping]
            if missing:
                raise ValueError(f"'bands' asks for {missing} but 'collection' has "
                                 f"{sorted(mapping)}")
        return cls.from_files({b: mapping[b] for b in order}, **kwargs)


def _band_wavelength(band):
    match = re.search(r"(\d{3,4})", band)
    return int(match.group(1)) if match else 10**6


def _filter_from_header(header):
    for key in FILTER_KEYWORDS:
        value = header.get(key)
        if isinstance(value, str) and value.strip() and not value.upper().startswith(
                ("CLEAR", "N/A")):
            return normalize_band_name(value)
    return None


def _filter_from_file(path):
    if not Path(path).is_file():
        raise FileNotFoundError(f"FITS file not found: {path}")
    try:
        with fits.open(path) as hdul, warnings.catch_warnings():
            warnings.simplefilter("error", VerifyWarning)
            for hdu in hdul:
                band = _filter_from_header(hdu.header)
                if band:
                    return band
    except (OSError, ValueError, TypeError, IndexError, VerifyWarning) as exc:
        raise OSError(f"cannot read FITS file {path}: {exc}") from None
    raise ValueError(f"no filter keyword ({', '.join(FILTER_KEYWORDS)}) in {path}; "
                     "name the band explicitly: a mapping {band: path} in Python, "
                     "BAND=FILE on the command line")


def _is_2d_image(hdu):
    return hdu.is_image and hdu.header.get("NAXIS", 0) == 2


def _find_ext(hdul, name, ver=None):
    """Index of the first 2D image extension ``name`` (and ``EXTVER`` ``ver``)."""
    for i, hdu in enumerate(hdul):
        if hdu.name.upper() != name or not _is_2d_image(hdu):
            continue
        if ver is None or hdu.header.get("EXTVER", 1) == ver:
            return i
    return None


def _select_hdu(hdul, hdu, path):
    names = [f"{h.name},{h.header.get('EXTVER', 1)}" for h in hdul]
    if hdu is None:
        idx = _find_ext(hdul, "SCI")
        if idx is None:
            idx = next((i for i, h in enumerate(hdul) if _is_2d_image(h)), None)
        if idx is None:
            raise OSError(f"{path} has no 2D image extension (extensions: {names})")
        return idx
    if isinstance(hdu, tuple) and len(hdu) == 2 and isinstance(hdu[0], str):
        idx = _find_ext(hdul, hdu[0].strip().upper(), int(hdu[1]))
        if idx is None:
            raise OSError(f"{path} has no 2D extension {hdu!r} (extensions: {names})")
        return idx
    if isinstance(hdu, str):
        idx = _find_ext(hdul, hdu.strip().upper())
        if idx is None:
            raise OSError(f"{path} has no 2D extension named {hdu!r} "
                          f"(extensions: {names})")
        return idx
    if isinstance(hdu, (int, np.integer)) and not isinstance(hdu, bool):
        idx = int(hdu)
        if not -len(hdul) <= idx < len(hdul) or not _is_2d_image(hdul[idx]):
            raise OSError(f"extension {hdu} of {path} is not a 2D image "
                          f"(extensions: {names})")
        return idx % len(hdul)
    raise TypeError("'hdu' must be an extension index (int), name (str) or "
                    f"(name, version) tuple, got {hdu!r}")


#: first bytes of the compressed files astropy opens, and their readers
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "lzma"))


def _check_compressed_stream(path):
    """
    Read a compressed file to its end; raise an OSError if the stream is cut.

    astropy stops silently where a truncated gzip/bzip2/xz stream ends, so the
    extensions after the cut would just be missing (or partly zero).
    """
    with open(path, "rb") as f:
        head = f.read(6)
    kind = next((k for magic, k in _COMPRESSED if head.startswith(magic)), None)
    if kind is None:
        return
    opener = {"gzip": gzip.open, "bz2": bz2.open, "lzma": lzma.open}[kind]
    try:
        with opener(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise OSError(f"cannot read FITS file {path}: its {kind} stream is truncated "
                      f"or corrupt ({exc})") from None


def _read_band(path, *, hdu, memmap, dq_ignore, use_weight):
    """Read one band: CCDData (memmapped) and its bad-pixel source."""
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"FITS file not found: {path}")
    _check_compressed_stream(path)
    try:
        with warnings.catch_warnings():
            # a truncated or corrupt file only warns: make it an error here
            warnings.simplefilter("error", VerifyWarning)
            warnings.filterwarnings("error", message="File may have been truncated",
                                    category=AstropyUserWarning)
            hdul = fits.open(path, memmap=memmap)
    except (OSError, ValueError, TypeError, IndexError, AstropyUserWarning) as exc:
        raise OSError(f"cannot read FITS file {path}: {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", VerifyWarning)
            warnings.filterwarnings("error", message="File may have been truncated",
                                    category=AstropyUserWarning)
            hdul.readall()
    except (OSError, ValueError, TypeError, IndexError, AstropyUserWarning) as exc:
        hdul.close()
        raise OSError(f"cannot read FITS file {path}: {exc}") from None
    try:
        return _read_hdul(hdul, path, hdu=hdu, dq_ignore=dq_ignore,
                          use_weight=use_weight)
    finally:
        # memory-mapped arrays stay valid after close: astropy keeps the map
        # open while they are referenced (and no file handle is leaked)
        hdul.close()


def _read_hdul(hdul, path, *, hdu, dq_ignore, use_weight):
    idx = _select_hdu(hdul, hdu, path)
    sci = hdul[idx]
    header = hdul[0].header.copy() if idx != 0 else fits.Header()
    header.extend(sci.header, update=True)
    try:
        data = sci.data
    except (OSError, ValueError, TypeError) as exc:
        raise OSError(f"cannot read the data of {path}[{idx}]: {exc}") from None
    if data is None or data.ndim != 2:
        raise OSError(f"{path}[{idx}] holds no 2D image")
    wcs = None
    if sci.header.get("CTYPE1"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            try:
                wcs = WCS(sci.header, hdul)
            except Exception as exc:  # noqa: BLE001 - WCS raises assorted errors
                raise OSError(f"cannot read the WCS of {path}[{idx}]: {exc}") \
                    from None
        if not wcs.has_celestial:
            wcs = None
    unit = parse_bunit(header.get("BUNIT"))
    if unit is None:
        if header.get("BUNIT"):
            warnings.warn(f"cannot parse BUNIT={header['BUNIT']!r} in {path}; "
                          "using dimensionless", ClusterClsWarning)
        unit = u.dimensionless_unscaled
    ver = sci.header.get("EXTVER", 1) if sci.name.upper() == "SCI" else None

    def companion(name):
        i = _find_ext(hdul, name, ver)
        if i is None or hdul[i].data.shape != data.shape:
            return None
        return hdul[i].data

    uncertainty = None
    err = companion("ERR")
    if err is not None:
        uncertainty = StdDevUncertainty(err, copy=False)
    bad = None
    dq = companion("DQ")
    if dq is not None:
        bad = ("dq", dq, int(dq_ignore))
    elif use_weight:
        wht = companion("WHT")
        if wht is not None:
            bad = ("weight", wht, 0)
    meta = fits.Header(header)
    meta["FILENAME"] = path
    meta["EXTNAME"] = sci.name
    ccd = CCDData(data, unit=unit, wcs=wcs, uncertainty=uncertainty, meta=meta,
                  copy=False)
    return ccd, bad


def bands_of(images, name="images"):
    """Validate ``images`` as BandImages (a dict is converted)."""
    if isinstance(images, BandImages):
        return images
    if isinstance(images, Mapping):
        return BandImages(images)
    raise TypeError(f"{name!r} must be a BandImages or a mapping band -> image, got "
                    f"{type(images).__name__}")

