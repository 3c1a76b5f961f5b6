# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""resolve_positions: which columns are used, conversions, errors."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.masked import Masked

from astro_clustercls.data.positions import (
    PIXEL_COLUMNS,
    SKY_COLUMNS,
    resolve_positions,
)


def test_array_inputs():
    res = resolve_positions([[1.5, 2.0], [3, 4]])
    assert res.xy.tolist() == [[1.5, 2.0], [3.0, 4.0]] and res.xy.dtype == np.float64
    assert res.bad.tolist() == [False, False] and res.source == "array (x, y)"
    assert resolve_positions((7, 8)).xy.tolist() == [[7.0, 8.0]]  # one pair
    assert resolve_positions([]).xy.shape == (0, 2)
    one_based = resolve_positions(np.array([[2.0, 3.0]]), origin=1)
    assert one_based.xy.tolist() == [[1.0, 2.0]]
    res = resolve_positions(Masked(np.array([[1.0, 2.0], [3.0, 4.0]]),
                                   mask=[[False, False], [False, True]]))
    assert res.bad.tolist() == [False, True] and np.isnan(res.xy[1]).all()
    res = resolve_positions(np.array([[1.0, 2.0], [3.0, 4.0]]) * u.pix)
    assert res.xy.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize("positions, error, match", [
    ("x_centroid", TypeError, "'positions' must be an"),
    ({"x": [1]}, TypeError, "'positions' must be an"),
    (None, TypeError, "'positions' must be an"),
    ([["a", "b"]], TypeError, "'positions' must be an"),
    (np.zeros((3, 3)), ValueError, r"shape \(N, 2\).*\(3, 3\)"),
    (np.zeros(5), ValueError, r"shape \(N, 2\)"),
    (np.zeros((2, 2)) * u.arcsec, ValueError, "'positions' has unit arcsec"),
])
def test_array_errors(positions, error, match):
    with pytest.raises(error, match=match):
        resolve_positions(positions)


def test_argument_errors():
    table = Table({"X": [1.0], "Y": [2.0]})
    with pytest.raises(ValueError, match="'origin' must be 0 or 1"):
        resolve_positions(table, xcol="X", ycol="Y", origin=2)
    with pytest.raises(ValueError, match="both 'xcol' and 'ycol'"):
        resolve_positions(table, xcol="X")
    with pytest.raises(ValueError, match="either 'xcol'/'ycol' or 'skycol'"):
        resolve_positions(table, xcol="X", ycol="Y", skycol="sky")
    with pytest.raises(ValueError, match="apply to table positions only"):
        resolve_positions([[1, 2]], xcol="X", ycol="Y")
    with pytest.raises(ValueError, match=r"xcol='x' is not a column.*\['X', 'Y'\]"):
        resolve_positions(table, xcol="x", ycol="Y")
    with pytest.raises(TypeError, match="'ycol' must be a column name"):
        resolve_positions(table, xcol="X", ycol=2)
    with pytest.raises(ValueError, match="no position columns.*x_centroid/y_centroid"):
        resolve_positions(table)
    with pytest.raises(ValueError, match="not a SkyCoord column"):
        resolve_positions(table, skycol="X")
    with pytest.raises(ValueError, match="pair"):
        resolve_positions(table, skycol=("X", "Y", "Z"))
    with pytest.raises(ValueError, match="sky coordinates must be angles"):
        resolve_positions(QTable({"ra": [1.0] * u.pix, "dec": [1.0] * u.deg}),
                          skycol=("ra", "dec"), wcs=object())
    with pytest.raises(TypeError, match="xcol column must hold numbers"):
        resolve_positions(Table({"X": ["a"], "Y": ["b"]}), xcol="X", ycol="Y")


def test_column_priority_is_by_name_only(band_images):
    sky = band_images.wcs.pixel_to_world([30.0], [20.0])
    t = QTable({"sky_centroid": sky, "x_peak": [1.0], "y_peak": [2.0],
                "xcentroid": [3.0], "ycentroid": [4.0],
                "x_centroid": [5.0], "y_centroid": [6.0]})
    order = [("x_centroid", [5.0, 6.0]), ("xcentroid", [3.0, 4.0]),
             ("x_peak", [1.0, 2.0])]
    for name, expected in order:
        res = resolve_positions(t, wcs=band_images.wcs)
        assert res.source.startswith(f"columns {name}/")
        assert res.xy[0].tolist() == expected
        t.remove_columns([name, name.replace("x", "y", 1)])
    res = resolve_positions(t, wcs=band_images.wcs)
    assert res.source == "column sky_centroid via WCS"
    np.testing.assert_allclose(res.xy, [[30.0, 20.0]], atol=1e-9)
    assert PIXEL_COLUMNS[0] == ("x_centroid", "y_centroid")
    assert SKY_COLUMNS[0] == "sky_centroid"


def test_sky_positions(band_images):
    wcs = band_images.wcs
    xy = np.array([[1.25, 2.5], [30.0, 40.0], [100.0, -50.0]])
    sky = wcs.pixel_to_world(xy[:, 0], xy[:, 1])
    np.testing.assert_allclose(resolve_positions(sky, wcs=wcs).xy, xy, atol=1e-8)
    np.testing.assert_allclose(resolve_positions(sky.icrs.galactic, wcs=wcs).xy, xy,
                               atol=1e-7)
    with pytest.raises(ValueError, match="no WCS"):
        resolve_positions(sky, wcs=None)
    # the far side of the sky cannot be projected by TAN: a bad row, not an error
    far = SkyCoord([sky.ra[0], sky.ra[0] + 180 * u.deg], [sky.dec[0], -sky.dec[0]])
    res = resolve_positions(far, wcs=wcs)
    assert res.bad.tolist() == [False, True] and np.isnan(res.xy[1]).all()
    # masked sky coordinates
    masked = SkyCoord(Masked(sky.ra, mask=[False, True, False]), sky.dec)
    res = resolve_positions(masked, wcs=wcs)
    assert res.bad.tolist() == [False, True, False]
    np.testing.assert_allclose(res.xy[[0, 2]], xy[[0, 2]], atol=1e-8)
    # RA/Dec columns: degrees without units, angle units honoured, bad Dec flagged
    t = Table({"ra": sky.ra.deg, "dec": sky.dec.deg})
    np.testing.assert_allclose(resolve_positions(t, wcs=wcs, skycol=("ra", "dec")).xy,
                               xy, atol=1e-8)
    q = QTable({"ra": sky.ra.to(u.hourangle), "dec": sky.dec.to(u.arcmin)})
    np.testing.assert_allclose(resolve_positions(q, wcs=wcs, skycol=("ra", "dec")).xy,
                               xy, atol=1e-8)
    t["dec"][1] = 95.0
    t["ra"][2] = np.nan
    assert resolve_positions(t, wcs=wcs, skycol=("ra", "dec")).bad.tolist() == [
        False, True, True]


def test_masked_and_nan_pixel_columns():
    t = Table({"x_centroid": MaskedColumn([1.0, 2.0, 3.0], mask=[False, False, True]),
               "y_centroid": [1.0, np.nan, 3.0]})
    res = resolve_positions(t)
    assert res.bad.tolist() == [False, True, True]
    assert res.xy[0].tolist() == [1.0, 1.0] and np.isnan(res.xy[1:]).all()
    q = QTable({"x_centroid": Masked([1.0, 2.0] * u.pix, mask=[True, False]),
                "y_centroid": [1.0, 2.0] * u.pix})
    assert resolve_positions(q).bad.tolist() == [True, False]
    assert resolve_positions(q).xy[1].tolist() == [2.0, 2.0]
    # a plain Column with a pixel unit (Table, not QTable), 1-based
    t = Table({"X": [2.0], "Y": [3.0]})
    t["X"].unit = u.pix
    res = resolve_positions(t, xcol="X", ycol="Y", origin=1)
    assert res.xy.tolist() == [[1.0, 2.0]]
    t["Y"].unit = u.deg
    with pytest.raises(ValueError, match="ycol column has unit deg"):
        resolve_positions(t, xcol="X", ycol="Y")


def test_diverging_distortion_inversion_flags_rows(band_images):
    """A SIP inversion that diverges for some rows flags them, keeps the rest."""
    from astropy.wcs import NoConvergence

    class DivergingWCS:
        def world_to_pixel(self, coords):
            best = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
            raise NoConvergence("no convergence", best_solution=best,
                                divergent=np.array([1]), slow_conv=None)

    sky = band_images.wcs.pixel_to_world([1.0, 3.0, 5.0], [2.0, 4.0, 6.0])
    res = resolve_positions(sky, wcs=DivergingWCS())
    assert res.bad.tolist() == [False, True, False]
    assert res.xy[[0, 2]].tolist() == [[1.0, 2.0], [5.0, 6.0]]

    class BrokenWCS:
        def world_to_pixel(self, coords):
            raise RuntimeError("wcslib error 9")

    with pytest.raises(ValueError, match="cannot convert the sky positions.*error 9"):
        resolve_positions(sky, wcs=BrokenWCS())
