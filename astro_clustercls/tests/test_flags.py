# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Every cutout flag, the flag registry, and flag consistency properties."""

import numpy as np
import pytest
from astropy.nddata import CCDData
from astropy.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astro_clustercls import FLAGS, BandImages, decode_flags, make_cutouts

PARTIAL, OFF, NONFINITE, MASKED, BADPOS, CENTER = (
    FLAGS.PARTIAL_OFF_IMAGE.bit, FLAGS.OFF_IMAGE.bit, FLAGS.NONFINITE.bit,
    FLAGS.MASKED.bit, FLAGS.BAD_POSITION.bit, FLAGS.CENTER_BAD.bit)


def test_registry():
    assert [f.bit for f in FLAGS] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert len(FLAGS) == 10 and FLAGS.names[0] == "PARTIAL_OFF_IMAGE"
    assert FLAGS["MASKED"] is FLAGS.MASKED and int(FLAGS.MASKED) == 8
    assert FLAGS.OFF_IMAGE | FLAGS.NONFINITE == 6 and 1 | FLAGS.OFF_IMAGE == 3
    assert decode_flags(0) == ()
    assert FLAGS.decode(np.int32(1 | 64 | 256)) == ("PARTIAL_OFF_IMAGE", "CENTER_BAD",
                                                     "NOT_CLASSIFIED")
    assert FLAGS.decode(512) == ("OUT_OF_DISTRIBUTION",)
    with pytest.raises(ValueError, match="unknown bits 1024"):
        FLAGS.decode(1024 | 1)
    with pytest.raises(KeyError, match="known flags"):
        FLAGS["OFFIMAGE"]
    np.testing.assert_array_equal(FLAGS.to_mask([0, 1, 8, 9], ["MASKED", "OFF_IMAGE"]),
                                  [False, False, True, True])
    table = FLAGS.to_table()
    assert isinstance(table, Table) and table["bit"].tolist() == [f.bit for f in FLAGS]
    from astro_clustercls.data.flags import ClusterFlag, FlagRegistry

    with pytest.raises(ValueError, match="powers of two"):
        FlagRegistry([ClusterFlag(3, "A", "a")])
    with pytest.raises(ValueError, match="powers of two"):
        FlagRegistry([ClusterFlag(1, "A", "a"), ClusterFlag(1, "B", "b")])


def _images(**bands):
    return BandImages(bands)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nonfinite(bad_value):
    a = np.ones((30, 30), np.float32)
    b = np.ones((30, 30), np.float32)
    a[10, 12] = bad_value      # in the cutout around (10, 10), not in its 3x3 centre
    b[20, 20] = bad_value      # at the centre of the cutout around (20, 20)
    images = _images(F555W=a, F814W=b)
    xy = [(10, 10), (20, 20), (25, 5)]
    stack = make_cutouts(images, xy, 7)
    assert stack.band_flags.tolist() == [[NONFINITE, 0], [0, NONFINITE], [0, 0]]
    assert stack.flags.tolist() == [NONFINITE, NONFINITE | CENTER, 0]
    # the value itself is kept, as in Cutout2D
    assert stack.data[0, 0, 3, 5] == bad_value or np.isnan(stack.data[0, 0, 3, 5])
    assert np.isnan(bad_value) == bool(np.isnan(stack.data[0, 0, 3, 5]))
    # a finite fill value does not hide the flag
    zero_fill = make_cutouts(images, xy, 7, fill_value=0)
    assert zero_fill.flags.tolist() == stack.flags.tolist()


def test_nonfinite_only_counts_pixels_inside_the_image():
    a = np.ones((10, 10))
    a[0, 9] = np.nan
    stack = make_cutouts(_images(F555W=a), [(0, 0), (9.4, 0.2), (-1, -1)], 5)
    assert stack.flags.tolist() == [PARTIAL | CENTER, PARTIAL | NONFINITE | CENTER,
                                    PARTIAL | CENTER]
    # large finite values whose float32 sum overflows are not "non-finite"
    big = np.full((10, 10), 3e38, np.float32)
    assert make_cutouts(_images(F555W=big), [(5, 5)], 5).flags.tolist() == [0]


def test_masked_ccddata():
    data = np.arange(400, dtype=float).reshape(20, 20)
    mask = np.zeros((20, 20), bool)
    mask[5, 7] = True     # in the cutout of (5, 5), off its centre
    mask[15, 15] = True   # centre of (15, 15)
    ccd = CCDData(data, unit="electron/s", mask=mask)
    images = BandImages({"F555W": ccd, "F814W": data})
    stack = make_cutouts(images, [(5, 5), (15, 15), (10, 10)], 5, fill_value=-1)
    assert stack.band_flags.tolist() == [[MASKED, 0], [MASKED, 0], [0, 0]]
    assert stack.flags.tolist() == [MASKED, MASKED | CENTER, 0]
    assert stack.data[0, 0, 2, 4] == -1 and stack.data[0, 1, 2, 4] == data[5, 7]
    assert stack.data[1, 0, 2, 2] == -1
    # every other pixel is the data
    expected = data[3:8, 3:8].copy()
    expected[2, 4] = -1
    np.testing.assert_array_equal(stack.data[0, 0], expected)
    assert images.bad_pixel_source("F555W")[0] == "mask"
    assert images.bad_pixel_source("f814w") is None


def test_masked_at_edges_and_off_image():
    data = np.ones((10, 10))
    mask = np.zeros((10, 10), bool)
    mask[0, 0] = True
    images = BandImages({"F555W": CCDData(data, unit="adu", mask=mask)})
    stack = make_cutouts(images, [(0, 0), (-20, -20), (7, 7)], 5)
    assert stack.flags.tolist() == [PARTIAL | MASKED | CENTER, OFF, 0]
    assert np.isnan(stack.data[0, 0, 2, 2]) and stack.data[0, 0, 3, 3] == 1


def test_dq_and_weight_files(tmp_path, hst_writer):
    data = np.ones((20, 20), np.float32)
    dq = np.zeros((20, 20), np.int16)
    dq[4, 4] = 4096     # a bit we choose to ignore below
    dq[10, 11] = 16     # hot pixel
    wht = np.ones((20, 20), np.float32)
    wht[12, 5] = 0.0
    f1 = hst_writer(tmp_path / "a_flt.fits", "F555W", data, kind="flt", dq=dq)
    f2 = hst_writer(tmp_path / "b_drc.fits", "F814W", data, kind="drc", wht=wht)
    images = BandImages.from_files({"F555W": f1, "F814W": f2})
    xy = [(4, 4), (10, 10), (5, 12), (16, 16)]
    stack = make_cutouts(images, xy, 3)
    assert stack.band_flags.tolist() == [[MASKED, 0], [MASKED, 0], [0, MASKED], [0, 0]]
    assert stack.flags.tolist() == [MASKED | CENTER, MASKED | CENTER,
                                    MASKED | CENTER, 0]
    assert np.isnan(stack.data[1, 0, 1, 2]) and np.isnan(stack.data[2, 1, 1, 1])
    ignoring = BandImages.from_files({"F555W": f1, "F814W": f2}, dq_ignore=4096)
    assert make_cutouts(ignoring, xy, 3).flags.tolist()[0] == 0
    no_wht = BandImages.from_files({"F555W": f1, "F814W": f2}, use_weight=False)
    assert make_cutouts(no_wht, xy, 3).flags.tolist()[2] == 0


def test_bad_position_and_center_flags():
    images = _images(F555W=np.ones((10, 10)))
    stack = make_cutouts(images, [(np.nan, 1), (5, 5)], 3)
    assert stack.flags.tolist() == [BADPOS, 0]
    assert FLAGS.decode(stack.flags[0]) == ("BAD_POSITION",)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 9),
       n=st.integers(0, 25))
def test_flags_are_consistent(seed, size, n):
    """flags == OR of band_flags + row flags; data agrees with the flags."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(15, 18))
    a[rng.random(a.shape) < 0.02] = np.nan
    mask = rng.random(a.shape) < 0.02
    images = BandImages({"F555W": a, "F814W": CCDData(a[::-1].copy(), unit="adu",
                                                      mask=mask)})
    xy = rng.uniform(-12, 30, size=(n, 2))
    xy[rng.random(n) < 0.1] = np.nan
    stack = make_cutouts(images, xy, size, fill_value=1e6)
    assert stack.flags.shape == (n,) and stack.flags.dtype == np.int32
    or_bands = np.bitwise_or.reduce(stack.band_flags, axis=1) if n else stack.flags
    np.testing.assert_array_equal(stack.flags & ~(BADPOS | CENTER), or_bands)
    nanpos = np.isnan(xy).any(axis=1)
    np.testing.assert_array_equal((stack.flags & BADPOS) != 0, nanpos)
    off = (stack.flags & (OFF | BADPOS)) != 0
    assert (stack.data[off] == 1e6).all()
    assert not np.any((stack.flags & OFF) & (stack.flags & PARTIAL))
    # NONFINITE iff a NaN made it into the cutout (fill is finite here)
    has_nan = np.isnan(stack.data).any(axis=(2, 3))
    np.testing.assert_array_equal((stack.band_flags & NONFINITE) != 0, has_nan)
    # MASKED only in the masked band
    assert not np.any(stack.band_flags[:, 0] & MASKED)


def test_masked_nan_is_masked_not_nonfinite():
    data = np.ones((15, 15))
    data[7, 7] = np.nan
    data[3, 3] = np.inf
    mask = np.zeros((15, 15), bool)
    mask[7, 7] = True
    images = BandImages({"F555W": CCDData(data, unit="adu", mask=mask)})
    stack = make_cutouts(images, [(7, 7), (3, 3)], 3, fill_value=0)
    assert stack.flags.tolist() == [MASKED | CENTER, NONFINITE | CENTER]
    assert stack.data[0, 0, 1, 1] == 0 and np.isposinf(stack.data[1, 0, 1, 1])
