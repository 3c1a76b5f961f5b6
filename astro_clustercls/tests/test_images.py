# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""BandImages: construction, grid checks, FITS files (written and real HST ones)."""

import gc
import mmap
import warnings
from pathlib import Path

import astropy
import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty

from astro_clustercls import BandImages, make_cutouts
from astro_clustercls.data.images import normalize_band_name, parse_bunit
from astro_clustercls.utils.exceptions import ClusterClsWarning

ASTROPY = Path(astropy.__file__).parent
ACS_FLT = ASTROPY / "wcs" / "tests" / "data" / "j94f05bgq_flt.fits"      # real ACS/WFC
DIST_LOOKUP = ASTROPY / "wcs" / "tests" / "data" / "dist_lookup.fits.gz"  # real SCI
WFPC2 = ASTROPY / "io" / "fits" / "tests" / "data" / "test0.fits"         # real WFPC2


def is_memmapped(array):
    """True if ``array`` is a view of a memory map."""
    while array is not None:
        if isinstance(array, np.memmap | mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False


# -- names and units ----------------------------------------------------------------
def test_normalize_band_name():
    assert normalize_band_name(" f555w ") == "F555W"
    with pytest.raises(TypeError, match="strings"):
        normalize_band_name(555)
    with pytest.raises(ValueError, match="empty"):
        normalize_band_name("  ")


@pytest.mark.parametrize("bunit, unit", [
    ("ELECTRONS/S", u.electron / u.s), ("electrons/s", u.electron / u.s),
    ("ELECTRONS", u.electron), ("COUNTS/S", u.count / u.s), ("UNITLESS", u.one),
    ("electron / s", u.electron / u.s), ("erg/(s cm2 Angstrom)",
                                         u.erg / u.s / u.cm**2 / u.AA),
    ("", None), (None, None), ("NOT A UNIT", None)])
def test_parse_bunit(bunit, unit):
    assert parse_bunit(bunit) == unit


# -- construction -------------------------------------------------------------------
def test_from_dict_of_kinds(arrays, wcs_factory):
    wcs = wcs_factory((48, 64))
    a = arrays["F336W"]
    images = BandImages({
        "f336w": a,
        "F438W": CCDData(a * 2, unit="electron/s", wcs=wcs),
        "F555W": NDData(a * 3, unit=u.electron / u.s, wcs=wcs,
                        uncertainty=StdDevUncertainty(np.ones_like(a))),
        "F814W": (a * 4) * (u.electron / u.s),
    }, wcs=wcs, unit="electron/s")
    assert images.bands == ("F336W", "F438W", "F555W", "F814W")
    assert list(images) == list(images.bands) and len(images) == 4
    assert images.shape == (48, 64) and images.unit == u.electron / u.s
    for k, band in enumerate(images.bands):
        ccd = images[band]
        assert isinstance(ccd, CCDData) and ccd.unit == u.electron / u.s
        np.testing.assert_array_equal(ccd.data, a * (k + 1))
        assert ccd.wcs is not None
    assert np.shares_memory(images["F336W"].data, a)  # no copy of bare arrays
    assert images["f555w"] is images["F555W"]
    assert "F336W" in images and "F275W" not in images
    assert "wcs=yes" in repr(images)
    with pytest.raises(KeyError, match="F275W.*bands are"):
        images["F275W"]
    sel = images.select(["f814w", "F336W"])
    assert sel.bands == ("F814W", "F336W") and sel["F814W"] is images["F814W"]
    with pytest.raises(ValueError, match=r"'bands' asks for \['F275W'\]"):
        images.select(["F275W"])
    with pytest.raises(ValueError, match="'bands' names a band twice"):
        images.select(["F555W", "f555w"])
    assert images.select("F555W").bands == ("F555W",)


def test_nddata_units_and_defaults():
    a = np.zeros((4, 5))
    images = BandImages({"F555W": NDData(a), "F814W": a})
    assert images["F555W"].unit == u.one and images.wcs is None
    assert BandImages({"F555W": a}, unit="adu").unit == u.adu


@pytest.mark.parametrize("images, error, match", [
    ([np.zeros((3, 3))], TypeError, "'images' must be a mapping"),
    ({}, ValueError, "at least one band"),
    ({"F555W": np.zeros((3, 3)), "f555w": np.zeros((3, 3))}, ValueError,
     "'f555w' given twice"),
    ({"F555W": [[1, 2], [3, 4]]}, TypeError, r"images\['F555W'\] must be"),
    ({"F555W": np.zeros((2, 3, 3))}, ValueError, r"images\['F555W'\] must be a 2D"),
    ({5: np.zeros((3, 3))}, TypeError, "band names must be strings"),
])
def test_invalid_input(images, error, match):
    with pytest.raises(error, match=match):
        BandImages(images)


def test_mismatched_shapes_name_the_band():
    with pytest.raises(ValueError, match=r"band 'F814W' has shape \(10, 11\).*"
                                         r"'F555W'.*reproject"):
        BandImages({"F555W": np.zeros((10, 10)), "f814w": np.zeros((10, 11))})


def test_mismatched_wcs_name_the_band(wcs_factory):
    shape = (40, 50)
    a = np.zeros(shape)
    ref = CCDData(a, unit="adu", wcs=wcs_factory(shape))
    close = CCDData(a, unit="adu", wcs=wcs_factory(shape, shift=(0.001, 0)))
    off = CCDData(a, unit="adu", wcs=wcs_factory(shape, shift=(0.5, 0)))
    rotated = wcs_factory(shape)
    rotated.wcs.cdelt = [rotated.wcs.cdelt[0] * 1.01, rotated.wcs.cdelt[1]]
    BandImages({"F555W": ref, "F814W": close})  # within the default 0.01 px
    with pytest.raises(ValueError, match=r"band 'F814W' has a WCS that differs "
                       r"from band 'F555W' by up to 0\.5 pixels.*reproject"):
        BandImages({"F555W": ref, "F814W": off})
    with pytest.raises(ValueError, match="'F336W'"):
        BandImages({"F555W": ref, "F336W": CCDData(a, unit="adu", wcs=rotated)})
    galactic = wcs_factory(shape)
    galactic.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    with pytest.raises(ValueError, match="'F336W' has a WCS that differs"):
        BandImages({"F555W": ref, "F336W": CCDData(a, unit="adu", wcs=galactic)})
    assert BandImages({"F555W": ref, "F814W": off}, wcs_tolerance=0.6).bands == (
        "F555W", "F814W")
    assert len(BandImages({"F555W": ref, "F814W": off}, check_grid=False)) == 2
    with pytest.raises(ValueError, match=r"bands \['F814W'\] have no WCS"):
        BandImages({"F555W": ref, "F814W": a})


# -- FITS files written here ----------------------------------------------------------
def test_from_files_flt(tmp_path, hst_writer, wcs_factory, arrays):
    wcs = wcs_factory((48, 64))
    err = np.full((48, 64), 0.5, np.float32)
    paths = {}
    for band, data in arrays.items():
        paths[band] = hst_writer(tmp_path / f"{band.lower()}_flt.fits", band,
                                 data.astype(">f4"), kind="flt", wcs=wcs, err=err)
    images = BandImages.from_files(list(paths.values()))  # keyed by FILTER
    assert images.bands == ("F336W", "F555W", "F814W")
    ccd = images["F555W"]
    assert ccd.unit == u.electron / u.s
    assert ccd.data.dtype == np.dtype(">f4") and is_memmapped(ccd.data)
    assert isinstance(ccd.uncertainty, StdDevUncertainty)
    np.testing.assert_array_equal(ccd.uncertainty.array, err)
    assert ccd.meta["FILTER"] == "F555W" and ccd.meta["FILENAME"] == str(
        paths["F555W"])
    assert images.bad_pixel_source("F555W")[0] == "dq"
    assert images.wcs.wcs.compare(wcs.wcs, tolerance=1e-12)
    # cutouts of the big-endian memmapped data equal those of the arrays
    xy = np.array([[10.2, 5.7], [0, 0], [63, 47], [30.5, 20.5]])
    np.testing.assert_array_equal(make_cutouts(images, xy, 7).data,
                                  make_cutouts(arrays, xy, 7).data)
    loaded = BandImages.from_files(paths, memmap=False)
    assert not is_memmapped(loaded["F814W"].data)
    np.testing.assert_array_equal(loaded["F814W"].data, arrays["F814W"])
    # a copy keeps the DQ arrays
    assert BandImages(images).bad_pixel_source("F336W")[0] == "dq"


def test_from_files_drizzled_and_integer(tmp_path, hst_writer):
    data = np.arange(30 * 40, dtype=np.int32).reshape(30, 40)
    p1 = hst_writer(tmp_path / "a_drc.fits", "F438W", data, kind="drc")
    p2 = hst_writer(tmp_path / "b_drz.fits", "F555W", data.astype(np.int16) % 300,
                    kind="drc", bunit="COUNTS/S")
    p3 = hst_writer(tmp_path / "c.fits", "F275W", data.astype(np.float64),
                    kind="simple", bunit="electrons")
    images = BandImages.from_files({"F438W": p1, "F555W": p2, "f275w": p3})
    assert images.bands == ("F438W", "F555W", "F275W")
    assert images["F438W"].data.dtype.kind == "i"
    assert images["F555W"].unit == u.count / u.s and images["F275W"].unit == u.electron
    assert images.bad_pixel_source("F438W")[0] == "weight"
    assert images.bad_pixel_source("F275W") is None
    stack = make_cutouts(images, [(10, 10)], 3)
    np.testing.assert_array_equal(stack.data[0, 0], data[9:12, 9:12])
    np.testing.assert_array_equal(stack.data[0, 1], data[9:12, 9:12] % 300)


def test_from_files_hdu_selection(tmp_path):
    chip1 = np.ones((10, 12), np.float32)
    chip2 = np.full((10, 12), 2.0, np.float32)
    dq2 = np.zeros((10, 12), np.int16)
    dq2[3, 3] = 8
    hdus = [fits.PrimaryHDU(header=fits.Header({"FILTER1": "F606W",
                                                "FILTER2": "CLEAR2L"}))]
    for ver, (sci, dq) in enumerate([(chip1, np.zeros_like(dq2)), (chip2, dq2)], 1):
        hdus.append(fits.ImageHDU(sci, fits.Header({"EXTVER": ver}), name="SCI"))
        hdus.append(fits.ImageHDU(dq, fits.Header({"EXTVER": ver}), name="DQ"))
    path = tmp_path / "two_chips_flt.fits"
    fits.HDUList(hdus).writeto(path)
    assert BandImages.from_files([path]).bands == ("F606W",)
    for hdu, value in [(None, 1), ("SCI", 1), ("sci", 1), (1, 1), (3, 2), (-2, 2),
                       (("SCI", 2), 2)]:
        ccd = BandImages.from_files({"F606W": path}, hdu=hdu)["F606W"]
        assert ccd.data[0, 0] == value
    second = BandImages.from_files({"F606W": path}, hdu=("SCI", 2))
    assert make_cutouts(second, [(3, 3)], 1).flags[0] != 0  # DQ of chip 2 is used
    first = BandImages.from_files({"F606W": path}, hdu=("SCI", 1))
    assert make_cutouts(first, [(3, 3)], 1).flags[0] == 0
    with pytest.raises(OSError, match="no 2D extension named 'WHT'.*SCI,1"):
        BandImages.from_files({"F606W": path}, hdu="WHT")
    with pytest.raises(OSError, match=r"no 2D extension \('SCI', 3\)"):
        BandImages.from_files({"F606W": path}, hdu=("SCI", 3))
    for index in (0, 9):
        with pytest.raises(OSError, match=f"extension {index} of .* is not a 2D image"):
            BandImages.from_files({"F606W": path}, hdu=index)
    with pytest.raises(TypeError, match="'hdu'"):
        BandImages.from_files({"F606W": path}, hdu=1.5)


def test_from_files_errors(tmp_path, hst_writer):
    good = hst_writer(tmp_path / "good.fits", "F555W", np.zeros((5, 5), np.float32),
                      kind="flt")
    with pytest.raises(OSError, match="FITS file not found.*missing.fits"):
        BandImages.from_files({"F555W": tmp_path / "missing.fits"})
    with pytest.raises(OSError, match="FITS file not found"):
        BandImages.from_files([tmp_path / "missing.fits"])
    text = tmp_path / "notes.fits"
    text.write_text("this is not a FITS file\n" * 10)
    with pytest.raises(OSError, match="cannot read FITS file .*notes.fits"):
        BandImages.from_files({"F555W": text})
    with pytest.raises(OSError, match="cannot read FITS file"):
        BandImages.from_files([text])
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(Path(good).read_bytes()[:4000])
    with pytest.raises(OSError, match="truncated.fits"):
        BandImages.from_files({"F555W": truncated})
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    with pytest.raises(OSError, match="has no 2D image extension"):
        BandImages.from_files({"F555W": empty})
    with pytest.raises(OSError, match="FITS file not found"):
        BandImages.from_files({"F555W": tmp_path})  # a directory
    with pytest.raises(TypeError, match="single path"):
        BandImages.from_files(str(good))
    nofilter = tmp_path / "nofilter.fits"
    fits.PrimaryHDU(np.zeros((5, 5))).writeto(nofilter)
    with pytest.raises(ValueError, match="no filter keyword.*mapping"):
        BandImages.from_files([nofilter])
    with pytest.raises(ValueError, match="two files in 'files' have band 'F555W'"):
        BandImages.from_files([good, good])
    odd = hst_writer(tmp_path / "odd.fits", "F814W", np.zeros((5, 5), np.float32),
                     kind="flt", bunit="furlongs per fortnight")
    with pytest.warns(ClusterClsWarning, match="cannot parse BUNIT"):
        assert BandImages.from_files([odd]).unit == u.one
    other = hst_writer(tmp_path / "other.fits", "F814W", np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match="band 'F814W' has shape"):
        BandImages.from_files([good, other])


# -- real HST files shipped with astropy -------------------------------------------
@pytest.mark.skipif(not ACS_FLT.exists(), reason="astropy test data not installed")
def test_real_acs_flt_file():
    images = BandImages.from_files([ACS_FLT])  # FILTER1='F606W', FILTER2='CLEAR2L'
    assert images.bands == ("F606W",) and images.shape == (1, 1)
    ccd = images["F606W"]
    assert ccd.unit == u.electron and ccd.meta["INSTRUME"] == "ACS"
    assert images.wcs.sip is not None and images.wcs.has_celestial
    assert images.bad_pixel_source("F606W") is None  # its DQ holds no data


@pytest.mark.skipif(not ACS_FLT.exists(), reason="astropy test data not installed")
def test_file_built_from_real_acs_headers(tmp_path):
    """A small image with the real ACS/WFC primary + SCI headers (SIP distortion)."""
    with fits.open(ACS_FLT) as hdul:
        primary = hdul[0].header.copy()
        sci_header = hdul[1].header.copy()
    rng = np.random.default_rng(4)
    data = rng.normal(size=(60, 80)).astype(">f4")
    dq = np.zeros((60, 80), np.int16)
    dq[30, 40] = 256
    sci_header["EXTVER"] = 1
    path = tmp_path / "acs_flt.fits"
    fits.HDUList([fits.PrimaryHDU(header=primary),
                  fits.ImageHDU(data, sci_header, name="SCI"),
                  fits.ImageHDU(np.ones((60, 80), np.float32), name="ERR"),
                  fits.ImageHDU(dq, name="DQ")]).writeto(path)
    images = BandImages.from_files([path])
    assert images.bands == ("F606W",) and images.shape == (60, 80)
    assert images.wcs.sip is not None
    xy = np.array([[10.2, 20.3], [40.1, 30.4], [-3.3, 5.2], [79.4, 59.3]])
    sky = images.wcs.pixel_to_world(xy[:, 0], xy[:, 1])  # through SIP
    from_sky = make_cutouts(images, sky, 9)
    from_pix = make_cutouts(images, xy, 9)
    np.testing.assert_allclose(from_sky.positions, xy, atol=1e-4)  # SIP inversion
    np.testing.assert_array_equal(from_sky.data, from_pix.data)
    assert from_pix.flags[1] & 8 and from_pix.flags[0] == 0


@pytest.mark.skipif(not DIST_LOOKUP.exists(), reason="astropy test data not installed")
def test_real_lookup_table_distortion_file():
    images = BandImages.from_files({"F555W": DIST_LOOKUP})  # no filter keyword
    assert images.shape == (100, 100) and images.unit == u.electron
    assert images.wcs.cpdis1 is not None  # WCSDVARR tables read from the file
    xy = np.array([[20.3, 40.2], [50.1, 60.4]])
    sky = images.wcs.pixel_to_world(xy[:, 0], xy[:, 1])
    np.testing.assert_allclose(make_cutouts(images, sky, 5).positions, xy, atol=1e-5)


@pytest.mark.skipif(not WFPC2.exists(), reason="astropy test data not installed")
def test_real_wfpc2_file():
    images = BandImages.from_files([WFPC2], hdu=("SCI", 3))  # FILTNAM1='F673N'
    assert images.bands == ("F673N",) and images.shape == (40, 40)
    ccd = images["F673N"]
    assert ccd.data.dtype.kind == "i" and ccd.meta["INSTRUME"] == "WFPC2"
    assert ccd.meta["DETECTOR"] == 3
    assert images.wcs.has_celestial and images.wcs.wcs.ctype[0] == "RA---TAN"
    with fits.open(WFPC2) as hdul:
        np.testing.assert_array_equal(make_cutouts(images, [(20, 20)], 5).data[0, 0],
                                      hdul["SCI", 3].data[18:23, 18:23])


# -- ImageFileCollection -----------------------------------------------------------
def test_from_collection(tmp_path, hst_writer, wcs_factory, arrays):
    ccdproc = pytest.importorskip("ccdproc")
    wcs = wcs_factory((48, 64))
    hst_writer(tmp_path / "wfc3_f336w_drc.fits", "F336W", arrays["F336W"], kind="drc",
               wcs=wcs)
    hst_writer(tmp_path / "acs_f814w_drc.fits", "F814W", arrays["F814W"], kind="drc",
               wcs=wcs, keyword="FILTER1/2")
    hst_writer(tmp_path / "wfc3_f555w_drc.fits", "F555W", arrays["F555W"], kind="drc",
               wcs=wcs)
    collection = ccdproc.ImageFileCollection(tmp_path)
    images = BandImages.from_collection(collection)
    assert images.bands == ("F336W", "F555W", "F814W")  # blue to red
    np.testing.assert_array_equal(images["F814W"].data, arrays["F814W"])
    assert images["F814W"].meta["FILTER1"] == "CLEAR1L"
    assert BandImages.from_collection(collection, bands=["f814w", "F336W"]).bands == (
        "F814W", "F336W")
    with pytest.raises(ValueError, match=r"'bands' asks for \['F275W'\]"):
        BandImages.from_collection(collection, bands=["F275W"])
    hst_writer(tmp_path / "again_f555w.fits", "F555W", arrays["F555W"], kind="drc",
               wcs=wcs)
    with pytest.raises(ValueError, match="two files for band 'F555W'.*filter it"):
        BandImages.from_collection(ccdproc.ImageFileCollection(tmp_path))
    with pytest.raises(TypeError, match="ImageFileCollection"):
        BandImages.from_collection(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.warns(UserWarning, match="no FITS files"):
        empty_collection = ccdproc.ImageFileCollection(empty)
    with pytest.raises(ValueError, match="no FITS files"):
        BandImages.from_collection(empty_collection)


def test_files_stay_usable_after_gc(tmp_path, hst_writer):
    """The FITS files are closed after reading; the memory maps stay valid."""
    path = hst_writer(tmp_path / "a.fits", "F555W", np.ones((8, 8), np.float32),
                      kind="flt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = BandImages.from_files([path])
        gc.collect()
        assert float(images["F555W"].data.sum()) == 64.0
        assert is_memmapped(images["F555W"].data)
        del images
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_window_keeps_bad_pixels_and_wcs(tmp_path):
    from astropy.wcs import WCS

    from astro_clustercls import make_cutouts

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [20.0, 15.0]
    wcs.wcs.cdelt = [-1.1e-5, 1.1e-5]
    data = np.arange(30 * 40, dtype=np.float32).reshape(30, 40)
    mask = np.zeros_like(data, dtype=bool)
    mask[12, 25] = True
    images = BandImages({"F555W": CCDData(data, unit="electron/s", wcs=wcs, mask=mask)})
    win = images.window(slice(10, 20), slice(20, 35))
    assert win.shape == (10, 15)
    np.testing.assert_array_equal(win["F555W"].data, data[10:20, 20:35])
    # the same sky position maps to the same pixel, shifted by the window corner
    sky = images.wcs.pixel_to_world(26.0, 13.0)
    x, y = win.wcs.world_to_pixel(sky)
    assert abs(float(x) - 6.0) < 1e-6 and abs(float(y) - 3.0) < 1e-6
    # a cutout over the masked pixel is flagged MASKED in both, with equal pixels
    full = make_cutouts(images, [(25.0, 12.0)], 3)
    part = make_cutouts(win, [(5.0, 2.0)], 3)
    np.testing.assert_array_equal(full.data, part.data)
    assert full.flags[0] == part.flags[0] and full.flags[0] & 8
    with pytest.raises(TypeError, match="'xslice'"):
        images.window(slice(0, 5), slice(0, 10, 2))
