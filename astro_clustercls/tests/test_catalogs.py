# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astro_clustercls.data.catalogs: the real LEGUS files, written fixtures."""

import csv
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table, vstack

import astro_clustercls
from astro_clustercls.data.catalogs import (
    legus_layout,
    map_classes,
    read_legus,
    read_legus_directory,
    read_phangs,
)


def _legus_dir():
    root = Path(astro_clustercls.__file__).resolve()
    for cand in (root.parents[2] / "shared" / "data" / "legus",
                 root.parents[1] / ".." / "shared" / "data" / "legus"):
        if (cand / "MANIFEST.tsv").is_file():
            return cand
    return None


LEGUS = _legus_dir()
needs_legus = pytest.mark.skipif(LEGUS is None, reason="../shared/data/legus absent")


def _manifest():
    with open(LEGUS / "MANIFEST.tsv") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def legus_tables():
    if LEGUS is None:
        pytest.skip("../shared/data/legus absent")
    return {row["file"]: (row, read_legus(LEGUS / row["file"])) for row in _manifest()}


@needs_legus
def test_all_legus_files_class_counts(legus_tables):
    assert len(legus_tables) == 33
    totals = np.zeros(4, int)
    for name, (row, table) in legus_tables.items():
        assert len(table) == int(row["rows"]), name
        cls = table["cluster_class"]
        counts = [int(np.sum(cls.filled(0) == k)) for k in (1, 2, 3, 4)]
        assert counts == [int(row[f"n{k}"]) for k in (1, 2, 3, 4)], name
        totals += counts
        assert table.meta["layout"]["class_col"] == int(row["class_col_1based"])
    # the README's totals
    assert totals.tolist() == [1683, 2065, 2104, 5171]
    assert totals.sum() == 11023


@needs_legus
def test_all_legus_files_values(legus_tables):
    for name, (_, table) in legus_tables.items():
        assert np.all(np.isfinite(table["x_centroid"])), name
        assert np.all(np.isfinite(table["y_centroid"])), name
        assert np.all(np.isfinite(table["sky_centroid"].ra.deg)), name
        median_ci = np.median(table["CI"]).to_value(u.mag)
        assert 1.3 <= median_ci <= 1.9, name
        for band in ("F275W", "F336W", "F438W", "F555W", "F814W"):
            mag = table[f"{band}_mag"]
            good = mag[~mag.mask].to_value(u.mag)
            assert not np.any(np.isclose(good, 66.666) | np.isclose(good, 99.999))
            assert np.all((good > 5) & (good < 99.99)), (name, band)
        cls = table["cluster_class"]
        assert set(np.unique(cls.compressed())) <= {1, 2, 3, 4}
        mean = table["class_mean"]
        if table.meta["layout"]["class_mean_col"] is not None:
            has = ~cls.mask
            diff = np.abs(np.asarray(mean[has]) - np.asarray(cls[has]))
            assert np.all((mean[has] >= 1) & (mean[has] <= 4)), name
            assert np.median(diff) <= 1, name  # the mean scatters around the mode
        else:
            assert np.all(mean.mask), name


@needs_legus
def test_legus_positions_against_raw_columns(legus_tables):
    for name, (_, table) in legus_tables.items():
        raw = np.loadtxt(LEGUS / name)
        off = 2 if "ngc1313" in name else 0
        np.testing.assert_array_equal(table["x_centroid"], raw[:, 1] - 1)
        np.testing.assert_array_equal(table["y_centroid"], raw[:, 2] - 1)
        np.testing.assert_allclose(table["sky_centroid"].dec.deg, raw[:, 4 + off])
        assert np.array_equal(table["id"], raw[:, 0].astype(int))
        ci = raw[:, 15 + off]
        keep = np.abs(ci) < 20
        np.testing.assert_array_equal(table["CI"][keep].to_value(u.mag), ci[keep])
        assert np.all(table["CI"].mask == ~keep)


@needs_legus
def test_legus_oddities(legus_tables):
    tables = {row["galaxy_field"]: t for row, t in legus_tables.values()}
    n4449 = tables["ngc4449"]
    five = n4449["class_code_original"] == 5
    assert five.sum() == 1371 and np.all(n4449["cluster_class"].mask[five])
    n4242 = tables["ngc4242"]
    fifty = n4242["class_code_original"] == 50
    assert fifty.sum() == 1 and n4242["cluster_class"].mask[fifty][0]
    assert n4242.meta["layout"]["n_unknown_codes"] == 1
    e = tables["ngc1313-e"]
    assert e.meta["layout"]["offset"] == 2 and "x_alt" in e.colnames
    assert e.meta["layout"]["class_mean_col"] == 37
    assert tables["ic4247"].meta["band_filters"]["F438W"].startswith("F435W")
    assert tables["ngc1566"].meta["band_filters"]["F438W"].startswith("F438W")
    # all tables share their standard columns, so they stack
    stacked = vstack([tables[f] for f in ("ngc628-e", "ngc4242")],
                     metadata_conflicts="silent")
    assert len(stacked) == 593 + 1080


@needs_legus
def test_read_legus_directory():
    table = read_legus_directory(LEGUS)
    assert len(table) == sum(int(r["rows"]) for r in _manifest())
    assert len(table.meta["files"]) == 33
    labelled = table[~table["cluster_class"].mask]
    assert len(labelled) == 11023
    assert np.sum(labelled["field"] == "ngc1566") == 477 + 404 + 692 + 878
    assert np.all(table["x_alt"].mask == (table["field"] != "ngc1313-e")
                  & (table["field"] != "ngc1313-w"))


# ---------------------------------------------------------------- small fixtures
_ROWS = [
    # id x y ra dec | 5 (mag, err) | CI | age, mass, ebv x3 | 7 fit | nfilt | cls mean
    "1 11.0 21.0 10.1 -20.1 20.1 0.05 20.2 0.06 66.666 66.666 20.3 0.04 20.0 0.03 1.6 "
    "1e7 2e7 5e6 1e4 2e4 5e3 0.1 0.2 0.0 0 0 0 0 0 0 0 5 2 2.333",
    "2 1.0 1.0 10.2 -20.2 99.999 99.999 21.0 0.1 21.5 0.1 21.2 0.1 21.1 0.1 1.4 "
    "2e8 0 0 200 0 0 200 0 0 200 200 200 200 200 200 200 200 0 0.0",
    "3 100.5 50.25 10.3 -20.3 19.0 0.02 19.1 0.02 19.2 0.02 19.3 0.02 19.4 0.02 73.1 "
    "3e6 4e6 1e6 5e3 6e3 4e3 0.3 0.4 0.2 0 0 0 0 0 0 0 4 7 4.0",
]


def _write(path, rows=_ROWS):
    path.write_text("\n".join(rows) + "\n")
    return path


def test_legus_fixture(tmp_path):
    t = read_legus(_write(tmp_path / "cat.tab"))
    assert t["x_centroid"].tolist() == [10.0, 0.0, 99.5]  # 1-based -> 0-based
    assert t["y_centroid"].tolist() == [20.0, 0.0, 49.25]
    assert t["sky_centroid"].ra.deg.tolist() == [10.1, 10.2, 10.3]
    assert t["F438W_mag"].mask.tolist() == [True, False, False]
    assert t["F275W_mag"].mask.tolist() == [False, True, False]
    assert t["F275W_mag_err"].mask.tolist() == [False, True, False]
    # masked magnitudes: 66.666 is off the footprint, 99.999 is not detected
    assert t["F438W_in_footprint"].tolist() == [False, True, True]
    assert t["F275W_in_footprint"].tolist() == [True, True, True]
    assert t["F555W_mag"][0] == 20.3 * u.mag
    assert t["CI"].mask.tolist() == [False, False, True]
    assert t["age"].mask.tolist() == [False, True, False]
    assert t["age"][2] == 3e6 * u.yr and t["mass"].unit == u.Msun
    # class 2 kept, 0 not inspected, 7 is no LEGUS class
    assert t["cluster_class"].tolist() == [2, None, None]
    assert t["class_code_original"].tolist() == [2, 0, 7]
    assert t["class_mean"].tolist() == [2.333, None, None]
    assert t.meta["layout"]["class_col"] == 34
    assert t.meta["layout"]["class_col_source"] == "LEGUS readme default"
    assert t.meta["source_file"].endswith("cat.tab")
    # explicit class column (here the mean column, to see that it is used)
    t35 = read_legus(tmp_path / "cat.tab", class_col=35)
    assert t35["cluster_class"].tolist() == [None, None, 4]


def test_legus_manifest_next_to_file(tmp_path):
    name = "hlsp_legus_hst_wfc3_ngc45_multiband_v1_padagb-mwext-avgapcor.tab"
    rows = [r + " 3" for r in _ROWS]  # a 36th column
    path = _write(tmp_path / name, rows)
    # without a manifest, the known rule for ngc45 applies: column 35
    assert read_legus(path).meta["layout"]["class_col_source"] == "known field rule"
    assert read_legus(path)["cluster_class"].tolist() == [None, None, 4]
    (tmp_path / "MANIFEST.tsv").write_text(
        "file\tgalaxy_field\trows\tclass_col_1based\tn1\tn2\tn3\tn4\n"
        f"{name}\tngc45\t3\t36\t0\t0\t3\t0\n")
    t = read_legus(path)
    assert t.meta["layout"]["class_col"] == 36
    assert t.meta["layout"]["class_col_source"] == "MANIFEST.tsv"
    assert t["cluster_class"].tolist() == [3, 3, 3]


def test_legus_layout_rules():
    def col(field):
        return legus_layout(f"hlsp_legus_hst_wfc3_{field}_multiband_v1_x.tab")

    assert col("ngc45")["class_col"] == 35
    assert col("ngc4449")["class_col"] == 34  # not fooled by the 'ngc45' prefix
    assert col("ngc1313-w")["columns"]["ra"] == 6
    assert col("ngc628-e")["columns"]["F814W_mag_err"] == 15
    assert legus_layout("anything.tab")["class_col"] == 34
    with pytest.raises(ValueError, match="class_col"):
        legus_layout("x.tab", class_col=0)


def test_legus_errors(tmp_path):
    with pytest.raises(OSError, match="not found"):
        read_legus(tmp_path / "missing.tab")
    ragged = _write(tmp_path / "ragged.tab", [_ROWS[0], _ROWS[1] + " 5"])
    with pytest.raises(ValueError, match="different lengths"):
        read_legus(ragged)
    with pytest.raises(ValueError, match="RA/Dec"):  # wrong layout: x, y as RA/Dec
        read_legus(_write(tmp_path / "cat.tab"), extra_position_columns=True)
    with pytest.raises(ValueError, match="columns"):
        read_legus(tmp_path / "cat.tab", class_col=60)
    with pytest.raises(ValueError, match="band_names"):
        read_legus(tmp_path / "cat.tab", band_names=("a", "b"))
    t = read_legus(tmp_path / "cat.tab", band_names=("F275W", "F336W", "F435W",
                                                     "F606W", "F814W"))
    assert "F606W_mag" in t.colnames and "F555W_mag" not in t.colnames
    assert t.meta["band_filters"]["F435W"].startswith("F438W")  # a WFC3 file name?
    # (the fixture's name says nothing about the instrument: WFC3 assumed)


def _phangs():
    return Table({
        "ID_PHANGS_CLUSTERS": [1, 2, 3, 4, 5, 6],
        "PHANGS_X": [10.0, 20.0, 30.0, 40.0, 50.0, np.nan],
        "PHANGS_Y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "PHANGS_RA": [150.0, 150.001, 150.002, 150.003, 150.004, 150.005],
        "PHANGS_DEC": [2.0, 2.001, 2.002, 2.003, 2.004, 2.005],
        "PHANGS_CLUSTER_CLASS_HUMAN": [1.0, 3.0, 12.0, 0.0, np.nan, 19.0],
        "PHANGS_CLUSTER_CLASS_ML_VGG": [1.0, 2.0, 4.0, 7.0, 20.0, 3.0],
        "PHANGS_CLUSTER_CLASS_ML_VGG_QUAL": [1.0, 0.6, 0.9, 0.5, np.nan, 0.7],
    })


def test_phangs_fits(tmp_path):
    path = tmp_path / "phangs.fits"
    _phangs().write(path)
    t = read_phangs(path)
    assert t["cluster_class"].tolist() == [1, 3, 4, None, None, 4]
    assert t["class_code_original"].tolist() == [1, 3, 12, 0, -1, 19]
    assert t["class_ml_vgg"].tolist() == [1, 2, 4, 4, None, 3]
    assert t["class_ml_vgg_qual"].mask.tolist() == [False] * 4 + [True, False]
    np.testing.assert_array_equal(t["x_centroid"][:5], [10, 20, 30, 40, 50])
    assert np.isnan(t["x_centroid"][5])
    assert t["sky_centroid"].dec.deg[2] == pytest.approx(2.002)
    assert t.meta["source_file"] == str(path)
    assert "ID_PHANGS_CLUSTERS" in t.colnames  # input columns kept
    t1 = read_phangs(path, origin=1)
    np.testing.assert_array_equal(t1["y_centroid"], [0, 1, 2, 3, 4, 5])


def test_phangs_options_and_errors():
    t = read_phangs(_phangs(), class_col="PHANGS_CLUSTER_CLASS_ML_VGG", max_code=4)
    assert t["cluster_class"].tolist() == [1, 2, 4, None, None, 3]
    assert "class_ml_vgg" not in t.colnames
    with pytest.raises(ValueError, match="PHANGS_X"):
        read_phangs(Table({"a": [1]}))
    with pytest.raises(ValueError, match="origin"):
        read_phangs(_phangs(), origin=2)
    with pytest.raises(OSError):
        read_phangs("/nonexistent/phangs.fits")


def test_map_classes():
    got = map_classes(np.ma.masked_array([1, 2, 3, 4, 5, 0, -1, 3], [0] * 7 + [1]))
    assert got.tolist() == [1, 2, 3, 4, 4, None, None, None]
    assert got.dtype == np.int64
    assert map_classes([19, 20], max_code=19).tolist() == [4, None]
    assert map_classes([1.5, np.inf]).tolist() == [None, None]
