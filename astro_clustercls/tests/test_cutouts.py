# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""make_cutouts against astropy's Cutout2D, positions of every kind, memory."""

import tracemalloc

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, Cutout2D, NoOverlapError
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.masked import Masked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as np_arrays

from astro_clustercls import BandImages, make_cutouts
from astro_clustercls.data import cutouts as cutouts_module
from astro_clustercls.data.flags import FLAGS

PARTIAL, OFF, BADPOS = (FLAGS.PARTIAL_OFF_IMAGE.bit, FLAGS.OFF_IMAGE.bit,
                        FLAGS.BAD_POSITION.bit)


def reference(image, x, y, size, fill_value=np.nan):
    """Cutout2D's answer and whether it overlaps (partly) the image."""
    try:
        cut = Cutout2D(image, (x, y), size, mode="partial", fill_value=fill_value)
    except NoOverlapError:
        return np.full((size, size), fill_value, np.float32), "off"
    full = cut.slices_cutout == (slice(0, size), slice(0, size))
    return cut.data.astype(np.float32), "in" if full else "partial"


def assert_matches_cutout2d(images, xy, size, stack, fill_value=np.nan):
    assert stack.data.shape == (len(xy), len(images), size, size)
    assert stack.data.dtype == np.float32
    for i, (x, y) in enumerate(xy):
        for b, band in enumerate(images.bands):
            ref, where = reference(images[band].data, x, y, size, fill_value)
            np.testing.assert_array_equal(stack.data[i, b], ref,
                                          err_msg=f"object {i} ({x}, {y}) band {band}")
            assert bool(stack.band_flags[i, b] & OFF) == (where == "off")
            assert bool(stack.band_flags[i, b] & PARTIAL) == (where == "partial")
        assert not stack.flags[i] & BADPOS


# -- pixel identity with Cutout2D ------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8, 11, 31])
def test_edges_and_corners_match_cutout2d(band_images, size):
    ny, nx = band_images.shape
    xs = [-size, -size / 2, -0.5, 0, 0.49, 0.5, 1, nx / 2, nx - 1.5, nx - 1, nx - 0.5,
          nx, nx + size / 2 - 0.5, nx + size]
    ys = [-size / 2, 0, 0.5, ny / 2 + 0.5, ny - 1, ny - 0.5, ny + size / 2]
    xy = np.array([(x, y) for x in xs for y in ys], float)
    stack = make_cutouts(band_images, xy, size)
    assert_matches_cutout2d(band_images, xy, size, stack)
    # every kind of row occurs in this grid
    assert np.any(stack.flags & OFF) and (size == 1 or np.any(stack.flags & PARTIAL))
    assert np.any((stack.flags & (OFF | PARTIAL)) == 0)


coordinate = st.one_of(
    st.floats(-40, 100, allow_nan=False),                  # in, partly and fully off
    st.integers(-40, 100).map(lambda v: v + 0.5),          # half-integer: rounding
    st.integers(-40, 100).map(float),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(xy=np_arrays(np.float64, st.tuples(st.integers(0, 12), st.just(2)),
                    elements=coordinate),
       size=st.integers(1, 16), fill_value=st.sampled_from([np.nan, 0.0, -7.5]))
def test_random_positions_match_cutout2d(band_images, xy, size, fill_value):
    stack = make_cutouts(band_images, xy, size, fill_value=fill_value)
    assert_matches_cutout2d(band_images, xy, size, stack, fill_value)
    assert len(stack) == len(xy)
    np.testing.assert_array_equal(stack.positions, xy)
    # corners are Cutout2D's first pixel
    for i, (x, y) in enumerate(xy):
        assert tuple(stack.corners[i]) == (int(np.ceil(x - size / 2)),
                                           int(np.ceil(y - size / 2)))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(perm_seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30))
def test_row_order_follows_input(arrays_factory, perm_seed, n):
    images = BandImages(arrays_factory((30, 40), ("F555W", "F814W")))
    rng = np.random.default_rng(perm_seed)
    xy = rng.uniform(-20, 60, size=(n, 2))
    xy[rng.random(n) < 0.2] = np.nan
    perm = rng.permutation(n)
    a = make_cutouts(images, xy, 7)
    b = make_cutouts(images, xy[perm], 7)
    np.testing.assert_array_equal(a.data[perm], b.data)
    np.testing.assert_array_equal(a.flags[perm], b.flags)
    np.testing.assert_array_equal(a.band_flags[perm], b.band_flags)


def test_chunks_give_the_same_result(band_images, monkeypatch):
    rng = np.random.default_rng(3)
    xy = rng.uniform(-10, 70, size=(50, 2))
    whole = make_cutouts(band_images, xy, 9)
    monkeypatch.setattr(cutouts_module, "_CHUNK", 7)
    chunked = make_cutouts(band_images, xy, 9)
    np.testing.assert_array_equal(whole.data, chunked.data)
    np.testing.assert_array_equal(whole.flags, chunked.flags)


@pytest.mark.parametrize("dtype", [np.float64, ">f4", ">f8", np.int16, ">i4",
                                   np.uint8])
def test_dtypes_match_cutout2d(dtype):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 200, size=(20, 25)).astype(dtype)
    images = BandImages({"F555W": image})
    xy = np.array([[10, 10], [3.5, 4.5], [20.2, 15.7], [0, 0], [24, 19]])
    stack = make_cutouts(images, xy, 5)
    for i, (x, y) in enumerate(xy):
        # Cutout2D cannot fill integer data with NaN: fill with 0, compare inside
        ref = Cutout2D(image, (x, y), 5, mode="partial", fill_value=0).data
        inside = ~np.isnan(stack.data[i, 0])
        np.testing.assert_array_equal(stack.data[i, 0][inside],
                                      ref.astype(np.float32)[inside])
    np.testing.assert_array_equal(stack.data[0, 0],
                                  image[8:13, 8:13].astype(np.float32))
    assert np.isnan(stack.data[3, 0, :2]).all()
    assert np.isnan(stack.data[3, 0, :, :2]).all()


def test_huge_float64_values_become_inf_and_are_flagged():
    image = np.zeros((10, 10))
    image[5, 5] = 1e300
    stack = make_cutouts(BandImages({"F555W": image}), [(5, 5), (1, 1)], 3)
    assert np.isposinf(stack.data[0, 0, 1, 1])
    assert FLAGS.decode(stack.flags[0]) == ("NONFINITE", "CENTER_BAD")
    assert stack.flags[1] == 0


def test_image_smaller_than_cutout():
    image = np.arange(12.0).reshape(3, 4)
    images = BandImages({"F555W": image})
    stack = make_cutouts(images, [(1.5, 1), (1, 1)], 7)
    assert_matches_cutout2d(images, [(1.5, 1), (1, 1)], 7, stack)
    assert np.all(stack.flags & PARTIAL)


def test_fully_off_rows_are_filled_and_flagged(band_images):
    ny, nx = band_images.shape
    xy = [(-10, 5), (nx + 10, 5), (5, -10), (5, ny + 10), (1e20, 3), (-1e300, 3)]
    stack = make_cutouts(band_images, xy, 9, fill_value=-1.0)
    assert (stack.data == -1.0).all()
    assert all(FLAGS.decode(f) == ("OFF_IMAGE",) for f in stack.flags)
    assert (stack.band_flags == OFF).all()
    assert not stack.usable.any()
    for x, y in xy[:4]:
        with pytest.raises(NoOverlapError):
            Cutout2D(band_images["F555W"].data, (x, y), 9, mode="partial")


def test_empty_positions(band_images):
    for empty in (np.zeros((0, 2)), [], QTable({"x_centroid": [], "y_centroid": []})):
        stack = make_cutouts(band_images, empty, 5)
        assert stack.data.shape == (0, 3, 5, 5)
        assert stack.flags.shape == (0,) and stack.band_flags.shape == (0, 3)


def test_strict_mode(band_images):
    inside = [(20, 20), (30.4, 10.6)]
    strict = make_cutouts(band_images, inside, 7, mode="strict")
    partial = make_cutouts(band_images, inside, 7)
    np.testing.assert_array_equal(strict.data, partial.data)
    # NaN positions stay flagged rows in strict mode
    assert make_cutouts(band_images, [(20, 20), (np.nan, 3)], 7,
                        mode="strict").flags[1] == BADPOS
    for outside in ([(20, 20), (1, 20)], [(20, 20), (-50, 20)]):
        with pytest.raises(ValueError, match=r"mode='strict'.*rows \[1\]"):
            make_cutouts(band_images, outside, 7, mode="strict")
    with pytest.raises(ValueError, match="'mode'.*Did you mean 'strict'"):
        make_cutouts(band_images, inside, 7, mode="stric")


def test_bad_arguments(band_images):
    with pytest.raises(TypeError, match="'size'"):
        make_cutouts(band_images, [(1, 1)], 3.5)
    with pytest.raises(ValueError, match="'size'"):
        make_cutouts(band_images, [(1, 1)], 0)
    with pytest.raises(TypeError, match="'fill_value'"):
        make_cutouts(band_images, [(1, 1)], 3, fill_value="zero")
    with pytest.raises(TypeError, match="'images'"):
        make_cutouts(np.zeros((5, 5)), [(1, 1)], 3)
    with pytest.raises(ValueError, match="'bands'.*F275W"):
        make_cutouts(band_images, [(1, 1)], 3, bands=["F275W"])


def test_bands_selection_and_dict_input(arrays):
    xy = [(10.2, 11.7), (30, 20)]
    stack = make_cutouts(arrays, xy, 5, bands=["f814w", "F336W"])
    assert stack.bands == ("F814W", "F336W")
    alone = make_cutouts({"F814W": arrays["F814W"]}, xy, 5)
    np.testing.assert_array_equal(stack.data[:, 0], alone.data[:, 0])
    np.testing.assert_array_equal(stack.data[0, 1], arrays["F336W"][10:15, 8:13])


# -- sky positions ----------------------------------------------------------------
def test_skycoord_equals_pixel_positions(band_images):
    rng = np.random.default_rng(5)
    # keep away from half-integers, where a 1e-9 px round trip could flip rounding
    xy = np.floor(rng.uniform(-8, 70, size=(40, 2))) + rng.uniform(0.05, 0.45, (40, 2))
    sky = band_images.wcs.pixel_to_world(xy[:, 0], xy[:, 1])
    from_sky = make_cutouts(band_images, sky, 7)
    from_pix = make_cutouts(band_images, xy, 7)
    np.testing.assert_allclose(from_sky.positions, xy, atol=1e-8)
    np.testing.assert_array_equal(from_sky.data, from_pix.data)
    np.testing.assert_array_equal(from_sky.flags, from_pix.flags)
    assert from_sky.meta["positions"] == "SkyCoord via WCS"
    # a table with photutils' sky_centroid only, and the same in another frame
    table = QTable({"id": np.arange(40), "sky_centroid": sky.galactic})
    np.testing.assert_array_equal(make_cutouts(band_images, table, 7).data,
                                  from_pix.data)
    # a scalar SkyCoord is one row
    one = make_cutouts(band_images, sky[3], 7)
    np.testing.assert_array_equal(one.data[0], from_pix.data[3])


def test_sky_positions_without_wcs_raise(arrays):
    images = BandImages(arrays)
    sky = SkyCoord([150.1] * u.deg, [2.2] * u.deg)
    with pytest.raises(ValueError, match="no WCS"):
        make_cutouts(images, sky, 5)


def test_sky_columns_by_name(band_images):
    xy = np.array([[10.3, 12.2], [40.1, 30.4], [63.2, 0.1]])
    sky = band_images.wcs.pixel_to_world(xy[:, 0], xy[:, 1])
    pixel = make_cutouts(band_images, xy, 5)
    expected = pixel.data
    assert pixel.flags[2] == PARTIAL | FLAGS.CENTER_BAD.bit  # y=0.1: row -1 in 3x3
    table = QTable({"coords": sky, "RA": sky.ra, "DEC": sky.dec,
                    "ra_deg": sky.ra.deg, "dec_deg": sky.dec.deg})
    for skycol in ("coords", ("RA", "DEC"), ("ra_deg", "dec_deg")):
        np.testing.assert_array_equal(
            make_cutouts(band_images, table, 5, skycol=skycol).data, expected)
    # masked RA/Dec rows are kept, flagged
    masked = Table({"ra": MaskedColumn(sky.ra.deg, mask=[False, True, False]),
                    "dec": sky.dec.deg})
    stack = make_cutouts(band_images, masked, 5, skycol=("ra", "dec"))
    assert stack.flags.tolist() == [0, BADPOS, pixel.flags[2]]
    np.testing.assert_array_equal(stack.data[[0, 2]], expected[[0, 2]])
    assert np.isnan(stack.data[1]).all()


# -- pixel columns ------------------------------------------------------------------
@pytest.mark.parametrize("names", [("x_centroid", "y_centroid"),
                                   ("xcentroid", "ycentroid"), ("x_peak", "y_peak")])
def test_photutils_column_names(band_images, names):
    xy = np.array([[10.3, 12.2], [40.1, 30.4]])
    table = Table({names[0]: xy[:, 0], names[1]: xy[:, 1], "flux": [1.0, 2.0]})
    stack = make_cutouts(band_images, table, 5)
    np.testing.assert_array_equal(stack.data, make_cutouts(band_images, xy, 5).data)
    assert stack.meta["positions"] == f"columns {names[0]}/{names[1]}"


def test_phangs_style_one_based_columns(band_images):
    xy = np.array([[10.3, 12.2], [40.1, 30.4], [0.0, 0.0]])
    table = Table({"ID_PHANGS_CLUSTER": [1, 2, 3], "PHANGS_X": xy[:, 0] + 1,
                   "PHANGS_Y": xy[:, 1] + 1})
    stack = make_cutouts(band_images, table, 5, xcol="PHANGS_X", ycol="PHANGS_Y",
                         origin=1)
    np.testing.assert_array_equal(stack.positions, xy)
    np.testing.assert_array_equal(stack.data, make_cutouts(band_images, xy, 5).data)
    # with origin=0 the same columns are one pixel off
    shifted = make_cutouts(band_images, table, 5, xcol="PHANGS_X", ycol="PHANGS_Y")
    np.testing.assert_array_equal(shifted.data[0, 0],
                                  band_images["F336W"].data[11:16, 9:14])


def test_daostarfinder_table(band_images):
    photutils = pytest.importorskip("photutils.detection")
    data = band_images["F555W"].data
    finder = photutils.DAOStarFinder(threshold=0.5, fwhm=3.5)
    table = finder(data)
    assert table is not None and len(table) >= 3
    xname = "x_centroid" if "x_centroid" in table.colnames else "xcentroid"
    yname = xname.replace("x", "y", 1)
    xy = np.column_stack([table[xname], table[yname]])
    stack = make_cutouts(band_images, table, 9)
    assert_matches_cutout2d(band_images, xy, 9, stack)
    # the detected sources sit on the central pixel: peak of each cutout near centre
    peak = np.unravel_index(np.argmax(stack.data[:, 1].reshape(len(xy), -1), axis=1),
                            (9, 9))
    assert np.all(np.abs(np.array(peak) - 4) <= 1)


def test_pixel_quantity_columns(band_images):
    xy = np.array([[10.3, 12.2], [40.1, 30.4]])
    expected = make_cutouts(band_images, xy, 5).data
    q = QTable({"x_centroid": xy[:, 0] * u.pix, "y_centroid": xy[:, 1] * u.pix})
    np.testing.assert_array_equal(make_cutouts(band_images, q, 5).data, expected)
    np.testing.assert_array_equal(make_cutouts(band_images, xy * u.pix, 5).data,
                                  expected)
    with pytest.raises(ValueError, match="xcol column has unit arcsec"):
        make_cutouts(band_images, QTable({"x_centroid": xy[:, 0] * u.arcsec,
                                          "y_centroid": xy[:, 1] * u.pix}), 5)
    with pytest.raises(ValueError, match="'positions' has unit deg"):
        make_cutouts(band_images, xy * u.deg, 5)


@pytest.mark.parametrize("kind", ["masked_column", "masked_quantity", "nan",
                                  "np_masked", "inf"])
def test_bad_positions_are_kept_in_order(band_images, kind):
    xy = np.array([[10.3, 12.2], [40.1, 30.4], [20.0, 20.0], [5.0, 6.0]])
    bad = np.array([False, True, False, True])
    if kind == "masked_column":
        positions = Table({"x_centroid": MaskedColumn(xy[:, 0], mask=bad),
                           "y_centroid": xy[:, 1]})
    elif kind == "masked_quantity":
        positions = QTable({"x_centroid": xy[:, 0] * u.pix,
                            "y_centroid": Masked(xy[:, 1] * u.pix, mask=bad)})
    elif kind == "np_masked":
        positions = np.ma.masked_array(xy, mask=np.column_stack([bad, bad]))
    else:
        positions = xy.copy()
        positions[bad, 0] = np.nan if kind == "nan" else np.inf
    stack = make_cutouts(band_images, positions, 5)
    assert len(stack) == 4
    assert stack.flags.tolist() == [0, BADPOS, 0, BADPOS]
    assert np.isnan(stack.data[bad]).all() and np.isnan(stack.positions[bad]).all()
    np.testing.assert_array_equal(stack.data[~bad],
                                  make_cutouts(band_images, xy[~bad], 5).data)
    assert stack.band_flags[bad].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert stack.usable.tolist() == [True, False, True, False]


def test_cutoutstack_indexing(band_images):
    stack = make_cutouts(band_images, [(10, 10), (-50, 3), (30, 20)], 5)
    sub = stack[1:]
    assert len(sub) == 2 and sub.flags[0] == OFF and sub.bands == stack.bands
    one = stack[2]
    np.testing.assert_array_equal(one.data[0], stack.data[2])
    assert "n=3" in repr(stack) and "flagged=1" in repr(stack)


# -- memory -----------------------------------------------------------------------
def test_memmapped_file_is_not_loaded(tmp_path, hst_writer, wcs_factory):
    shape = (2048, 2048)  # 16 MiB of float32 on disk
    path = tmp_path / "big_drc.fits"
    data = np.memmap(tmp_path / "raw.dat", dtype=">f4", mode="w+", shape=shape)
    data[::97, ::89] = 1.0
    hst_writer(path, "F555W", np.asarray(data), kind="simple",
               wcs=wcs_factory(shape))
    del data
    rng = np.random.default_rng(2)
    xy = rng.uniform(-10, 2058, size=(300, 2))
    tracemalloc.start()
    try:
        images = BandImages.from_files({"F555W": path})
        stack = make_cutouts(images, xy, 15)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image_bytes = shape[0] * shape[1] * 4
    cutout_bytes = stack.data.nbytes
    assert peak < image_bytes / 8, (peak, image_bytes)
    assert peak < 20 * cutout_bytes + 2**20
    # still the right pixels
    with fits.open(path) as hdul:
        full = hdul[0].data
        assert_matches_cutout2d(images, xy[:20], 15, stack[:20])
        np.testing.assert_array_equal(stack.data[0, 0],
                                      Cutout2D(full, tuple(xy[0]), 15,
                                               fill_value=np.nan).data)


def test_ccddata_input(band_images):
    ccd = CCDData(band_images["F555W"].data, unit="electron/s", wcs=band_images.wcs)
    stack = make_cutouts({"F555W": ccd}, [(10, 10)], 3)
    np.testing.assert_array_equal(stack.data[0, 0], ccd.data[9:12, 9:12])


def test_messy_tables_and_pixels():
    """One row, duplicate rows, all-NaN cutouts, constant images: rows kept."""
    image = np.full((20, 20), 3.0)
    image[:6, :6] = np.nan
    images = BandImages({"F555W": image, "F814W": np.zeros((20, 20), np.float32)})
    one = make_cutouts(images, Table({"x_centroid": [10.0], "y_centroid": [10.0]}), 5)
    assert len(one) == 1 and one.flags[0] == 0 and (one.data[0, 0] == 3).all()
    assert (one.data[0, 1] == 0).all()
    dup = make_cutouts(images, [(12, 12), (2, 2), (12, 12), (2, 2)], 5)
    np.testing.assert_array_equal(dup.data[0], dup.data[2])
    np.testing.assert_array_equal(dup.data[1], dup.data[3])
    assert np.isnan(dup.data[1, 0]).all()  # an all-NaN cutout
    assert dup.flags.tolist() == [0, NONFINITE_CENTER, 0, NONFINITE_CENTER]
    assert dup.band_flags[1].tolist() == [FLAGS.NONFINITE.bit, 0]


NONFINITE_CENTER = FLAGS.NONFINITE.bit | FLAGS.CENTER_BAD.bit
