# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astro_clustercls.io.export (region files, ECSV)."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table
from regions import CirclePixelRegion, CircleSkyRegion, Regions

from astro_clustercls._constants import PIXEL_SCALE
from astro_clustercls.io.export import (
    DEFAULT_COLORS,
    read_table,
    to_regions,
    write_table,
)
from astro_clustercls.utils.exceptions import ClusterClsWarning


def classified_table(n=7, *, seed=3, sky=False):
    """A table shaped like ClusterClassifier output (classes 1-4, one masked)."""
    rng = np.random.default_rng(seed)
    classes = np.array([1, 2, 3, 4, 1, 2, 3][:n])
    mask = np.zeros(n, bool)
    mask[-1] = True
    probs = rng.dirichlet(np.ones(4), size=n).astype(np.float32)
    prob_max = np.where(mask, np.nan, probs.max(axis=1)).astype(np.float32)
    probs[mask] = np.nan
    t = QTable()
    t["id"] = np.arange(1, n + 1)
    t["x_centroid"] = rng.uniform(0, 100, n)
    t["y_centroid"] = rng.uniform(0, 100, n)
    if sky:
        t["sky_centroid"] = SkyCoord(rng.uniform(150, 150.01, n),
                                     rng.uniform(2, 2.01, n), unit="deg")
    t["cluster_class"] = MaskedColumn(classes, mask=mask)
    t["class_prob"] = probs
    t["class_prob_max"] = prob_max
    t["classify_flags"] = np.where(mask, 256, 0).astype(np.int32)
    t.meta["astro_clustercls"] = {"model": "resnet18", "bands": ["F275W", "F555W"],
                                  "cutout_size": 21, "weights_sha256": "ab" * 32}
    return t


def _color(region):
    visual = region.visual
    return visual.get("color") or visual.get("edgecolor")


def test_pixel_regions_roundtrip(tmp_path):
    t = classified_table()
    path = tmp_path / "classes.reg"
    regs = to_regions(t, filename=path)
    assert isinstance(regs, Regions) and len(regs) == len(t)
    back = Regions.read(path, format="ds9")
    assert len(back) == len(t)
    for row, reg in zip(t, back, strict=True):
        assert isinstance(reg, CirclePixelRegion)
        # 0-based in the table and in regions (the file itself is 1-based)
        assert reg.center.x == pytest.approx(row["x_centroid"], abs=1e-6)
        assert reg.center.y == pytest.approx(row["y_centroid"], abs=1e-6)
        assert reg.radius == pytest.approx(5)
        if np.ma.is_masked(row["cluster_class"]):
            assert _color(reg) == "gray"
            assert str(reg.meta["text"]) == "?"
        else:
            c = int(row["cluster_class"])
            assert _color(reg) == DEFAULT_COLORS[c]
            assert str(reg.meta["text"]) == str(c)
            assert reg.meta["tag"] == [f"class{c}"]
    text = path.read_text()
    assert "image" in text
    first = t[0]
    assert f"circle({first['x_centroid'] + 1:.8f},{first['y_centroid'] + 1:.8f}" in text


def test_sky_regions_default_when_sky_column(tmp_path):
    t = classified_table(sky=True)
    regs = to_regions(t, filename=tmp_path / "sky.reg", radius=0.2 * u.arcsec)
    back = Regions.read(tmp_path / "sky.reg", format="ds9")
    assert len(back) == len(t)
    assert all(isinstance(r, CircleSkyRegion) for r in back)
    sep = back[0].center.separation(t["sky_centroid"][0])
    assert sep < 1e-3 * u.arcsec
    assert back[0].radius.to_value(u.arcsec) == pytest.approx(0.2, rel=1e-6)
    assert [_color(r) for r in back] == [_color(r) for r in regs]
    # pixel radius converted with the pixel scale
    regs5 = to_regions(t, radius=5)
    assert regs5[0].radius.to_value(u.arcsec) == pytest.approx(5 * PIXEL_SCALE)
    # pixel regions on request, with an angular radius converted to pixels
    pix = to_regions(t, use_sky=False, radius=2 * PIXEL_SCALE * u.arcsec)
    assert isinstance(pix[0], CirclePixelRegion)
    assert pix[0].radius == pytest.approx(2.0)


def test_crtf(tmp_path):
    t = classified_table(sky=True)
    to_regions(t, filename=tmp_path / "c.crtf", format="crtf")
    back = Regions.read(tmp_path / "c.crtf", format="crtf")
    assert len(back) == len(t)
    assert back[0].meta["label"] == str(int(t["cluster_class"][0]))
    assert _color(back[0]) == DEFAULT_COLORS[int(t["cluster_class"][0])]
    with pytest.raises(ValueError, match="crtf"):
        to_regions(classified_table(), format="crtf")


def test_custom_colors_and_columns():
    t = classified_table()
    t.rename_columns(["x_centroid", "y_centroid"], ["X", "Y"])
    regs = to_regions(t, xcol="X", ycol="Y", colors={1: "blue"},
                      unclassified_color="white")
    assert _color(regs[0]) == "blue"
    assert _color(regs[1]) == "cyan"
    assert _color(regs[-1]) == "white"
    with pytest.raises(ValueError, match="no pixel position columns"):
        to_regions(t)


def test_nan_positions_left_out():
    t = classified_table()
    t["x_centroid"][2] = np.nan
    with pytest.warns(ClusterClsWarning, match="1 row"):
        regs = to_regions(t)
    assert len(regs) == len(t) - 1


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"format": "fits"}, ValueError, "format"),
    ({"radius": -1}, ValueError, "radius"),
    ({"radius": "big"}, TypeError, "radius"),
    ({"radius": 3 * u.m}, ValueError, "radius"),
    ({"colors": {7: "red"}}, ValueError, "colors"),
    ({"use_sky": True}, ValueError, "SkyCoord"),
])
def test_region_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        to_regions(classified_table(), **kwargs)


def test_region_needs_classes(tmp_path):
    with pytest.raises(ValueError, match="cluster_class"):
        to_regions(QTable({"x_centroid": [1.0], "y_centroid": [2.0]}))
    with pytest.raises(TypeError):
        to_regions(np.zeros((3, 2)))
    path = tmp_path / "a.reg"
    to_regions(classified_table(), filename=path)
    with pytest.raises(OSError, match="exists"):
        to_regions(classified_table(), filename=path)
    to_regions(classified_table(), filename=path, overwrite=True)


def test_ecsv_roundtrip(tmp_path):
    t = classified_table(sky=True)
    path = write_table(t, tmp_path / "out.ecsv")
    back = QTable.read(path)
    assert back.colnames == t.colnames
    assert back["class_prob"].shape == (len(t), 4)
    np.testing.assert_array_equal(back["class_prob"], t["class_prob"])
    assert back["class_prob"].dtype == np.float32
    assert back["cluster_class"].mask.tolist() == t["cluster_class"].mask.tolist()
    assert back.meta["astro_clustercls"] == t.meta["astro_clustercls"]
    assert isinstance(back["sky_centroid"], SkyCoord)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_write_table_overwrite_and_errors(tmp_path):
    t = classified_table()
    path = tmp_path / "out.ecsv"
    write_table(t, path)
    with pytest.raises(OSError, match="overwrite"):
        write_table(t, path)
    write_table(t[:2], path, overwrite=True)
    assert len(Table.read(path)) == 2
    with pytest.raises(OSError, match="does not exist"):
        write_table(t, tmp_path / "nodir" / "out.ecsv")
    with pytest.raises(TypeError):
        write_table({"a": 1}, tmp_path / "x.ecsv")


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    t = classified_table()
    path = tmp_path / "out.ecsv"

    def partial_then_interrupt(self, filename, **kwargs):
        with open(filename, "w") as f:
            f.write("# %ECSV 1.0\n# partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(QTable, "write", partial_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_table(t, path)
    assert list(tmp_path.iterdir()) == []
    # an existing file is left untouched
    monkeypatch.undo()
    write_table(t, path)
    before = path.read_bytes()
    monkeypatch.setattr(QTable, "write", partial_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_table(t, path, overwrite=True)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_empty_table(tmp_path):
    t = classified_table(sky=True)[:0]
    assert len(to_regions(t)) == 0
    path = write_table(t, tmp_path / "empty.ecsv")
    back = read_table(path)  # astropy 8.0's QTable.read fails on this one
    assert len(back) == 0
    assert back.colnames == t.colnames
    assert back["class_prob"].shape == (0, 4)
    assert back["class_prob"].dtype == np.float32
    assert isinstance(back["sky_centroid"], SkyCoord)
    assert back.meta["astro_clustercls"] == t.meta["astro_clustercls"]
    assert len(read_table(write_table(classified_table(), tmp_path / "t.ecsv"))) == 7
