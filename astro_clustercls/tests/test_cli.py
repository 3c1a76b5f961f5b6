# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the astro-clustercls command line (astro_clustercls.cli)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import QTable
from photutils.detection import DAOStarFinder
from regions import Regions

from astro_clustercls import BandImages
from astro_clustercls._constants import DEFAULT_BANDS
from astro_clustercls.cli import SUBCOMMANDS, main
from astro_clustercls.data.detection import match_sources
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference.classifier import ClusterClassifier
from astro_clustercls.io.export import read_table
from astro_clustercls.models import build_network, save_weights

from .conftest import make_wcs

SIZE = 21
SHAPE = (128, 128)
BLOBS = [(30.0, 40.0), (64.0, 64.0), (100.0, 25.0), (20.0, 100.0), (90.0, 95.0),
         (45.0, 75.0), (110.0, 60.0)]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """Five FITS files (SCI extension, FILTER, BUNIT, WCS), a source table, weights."""
    d = tmp_path_factory.mktemp("field")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    header = make_wcs(SHAPE, crval=(150.0, 2.0)).to_header()
    files = {}
    for b, band in enumerate(DEFAULT_BANDS):
        img = rng.normal(1.0, 0.05, SHAPE)
        for i, (x, y) in enumerate(BLOBS):
            s = 1.0 + 0.25 * ((i + b) % 4)
            img += 30.0 * (1 + i) / (2 * np.pi * s**2) * np.exp(
                -((xx - x)**2 + (yy - y)**2) / (2 * s**2))
        hdr = header.copy()
        hdr["BUNIT"] = "ELECTRONS/S"
        primary = fits.PrimaryHDU(header=fits.Header({"FILTER": band}))
        sci = fits.ImageHDU(img.astype(np.float32), hdr, name="SCI")
        path = d / f"{band.lower()}_drc.fits"
        fits.HDUList([primary, sci]).writeto(path)
        files[band] = path
    images = BandImages.from_files(files)
    data = images["F555W"].data
    sources = DAOStarFinder(threshold=5.0, fwhm=3.0)(data - np.median(data))
    sources["sky_centroid"] = images.wcs.pixel_to_world(sources["x_centroid"],
                                                        sources["y_centroid"])
    src_path = d / "sources.ecsv"
    sources.write(src_path)
    torch.manual_seed(0)
    weights = d / "weights.safetensors"
    save_weights(build_network("resnet18"), weights,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": SIZE, "normalization": "asinh-v1",
                  "notes": "untrained, for tests"})
    return {"dir": d, "files": files, "sources": src_path, "weights": weights,
            "table": QTable.read(src_path), "images": images}


def _images_args(field):
    return ["--images"] + [f"{b}={p}" for b, p in field["files"].items()]


def _classify_args(field, out, *extra):
    return ["classify", *_images_args(field), "--sources", str(field["sources"]),
            "--out", str(out), "--weights-path", str(field["weights"]),
            "--device", "cpu", *extra]


def _expected(field):
    clf = ClusterClassifier("resnet18", weights_path=field["weights"], device="cpu")
    return clf(field["table"], field["images"])


def stage_lines(err):
    """The stage lines ("astro-clustercls: loading network ...") of stderr."""
    return [line for line in err.splitlines()
            if line.startswith("astro-clustercls: ") and line.endswith("...")]


def assert_one_line_error(capsys, rc, match):
    """One error line on stderr, after the stage lines (if any), no traceback."""
    out, err = capsys.readouterr()
    assert rc != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.strip().splitlines()
             if line not in stage_lines(err)]
    assert len(lines) == 1, err
    assert lines[0].startswith("astro-clustercls: error: ")
    assert match in lines[0], lines[0]
    return lines[0]


def test_subprocess_round_trip(field, tmp_path):
    out = tmp_path / "out.ecsv"
    reg = tmp_path / "out.reg"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "astro_clustercls",
         *_classify_args(field, out, "--regions", str(reg))],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "classified" in proc.stdout and str(out) in proc.stdout
    result = read_table(out)
    expected = _expected(field)
    assert len(result) == len(field["table"])
    np.testing.assert_array_equal(result["id"], field["table"]["id"])
    np.testing.assert_allclose(result["class_prob"], expected["class_prob"], atol=1e-6)
    np.testing.assert_array_equal(result["cluster_class"], expected["cluster_class"])
    meta = result.meta["astro_clustercls"]
    assert meta["model"] == "resnet18" and meta["cutout_size"] == SIZE
    regions = Regions.read(reg, format="ds9")
    assert len(regions) == len(result)


def test_main_in_process(field, tmp_path, capsys):
    out = tmp_path / "out.ecsv"
    reg = tmp_path / "classes.reg"
    rc = main(_classify_args(field, out, "--regions", str(reg), "--batch-size", "3"))
    stdout = capsys.readouterr().out
    assert rc == 0
    assert "total" in stdout and "not classified" in stdout
    result = read_table(out)
    np.testing.assert_allclose(result["class_prob"], _expected(field)["class_prob"],
                               atol=1e-6)
    regions = Regions.read(reg, format="ds9")
    # sky_centroid in the table: sky regions
    assert len(regions) == len(result)
    assert type(regions[0]).__name__ == "CircleSkyRegion"


def test_images_by_filter_keyword_and_columns(field, tmp_path, capsys):
    table = field["table"]
    cat = QTable({"ID": table["id"], "X": table["x_centroid"] + 1,
                  "Y": table["y_centroid"] + 1, "RA": table["sky_centroid"].ra.deg,
                  "DEC": table["sky_centroid"].dec.deg})
    cat_path = tmp_path / "cat.csv"
    cat.write(cat_path, format="ascii.csv")
    expected = _expected(field)["class_prob"]
    base = ["classify", "--images", *map(str, field["files"].values()), "--sources",
            str(cat_path), "--weights-path", str(field["weights"]), "--device", "cpu"]
    rc = main([*base, "--out", str(tmp_path / "a.ecsv"), "--xcol", "X", "--ycol", "Y",
               "--origin", "1"])
    assert rc == 0, capsys.readouterr().err
    np.testing.assert_allclose(read_table(tmp_path / "a.ecsv")["class_prob"], expected,
                               atol=1e-5)
    rc = main([*base, "--out", str(tmp_path / "b.ecsv"), "--skycol", "RA,DEC"])
    assert rc == 0, capsys.readouterr().err
    result = read_table(tmp_path / "b.ecsv")
    np.testing.assert_allclose(result["class_prob"], expected, atol=1e-5)
    assert result.meta["astro_clustercls"]["positions"] == "columns RA/DEC via WCS"


def test_missing_band_option(field, tmp_path, capsys):
    files = {b: p for b, p in field["files"].items() if b != "F275W"}
    args = ["classify", "--images", *[f"{b}={p}" for b, p in files.items()],
            "--sources", str(field["sources"]), "--out", str(tmp_path / "o.ecsv"),
            "--weights-path", str(field["weights"])]
    assert_one_line_error(capsys, main(args), "F275W")
    rc = main([*args, "--missing-bands", "zero"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "astro-clustercls: warning:" in err and "F275W" in err
    assert "BAND_MISSING" in out


@pytest.mark.parametrize("case", ["missing_image", "unreadable_fits", "wrong_hdu",
                                  "missing_sources", "bad_sources", "bad_batch",
                                  "bad_device", "bad_model", "mixed_images",
                                  "missing_weights", "no_position_columns",
                                  "hash_mismatch"])
def test_errors_are_one_line(field, tmp_path, capsys, case):
    out = tmp_path / "out.ecsv"
    args = _classify_args(field, out)
    match = ""
    if case == "missing_image":
        args[args.index("--images") + 1] = "F275W=/no/such/file.fits"
        match = "not found"
    elif case == "unreadable_fits":
        bad = tmp_path / "bad.fits"
        bad.write_bytes(b"this is not a FITS file at all" * 10)
        args[args.index("--images") + 1] = f"F275W={bad}"
        match = "bad.fits"
    elif case == "wrong_hdu":
        args += ["--hdu", "IMAGE"]
        match = "IMAGE"
    elif case == "missing_sources":
        args[args.index("--sources") + 1] = str(tmp_path / "nope.ecsv")
        match = "sources table not found"
    elif case == "bad_sources":
        bad = tmp_path / "bad.ecsv"
        bad.write_text("# %ECSV 1.0\n# ---\n# garbage: [\n")
        args[args.index("--sources") + 1] = str(bad)
        match = "cannot read sources table"
    elif case == "bad_batch":
        args += ["--batch-size", "0"]
        match = "--batch-size must be"  # the CLI spelling of the option
    elif case == "bad_device":
        args += ["--device", "gpu"]
        match = "device"
    elif case == "bad_model":
        args += ["--model", "resnet81"]
        match = "Did you mean 'resnet18'"
    elif case == "mixed_images":
        args[args.index("--images") + 1] = str(field["files"]["F275W"])
        match = "not a mix"
    elif case == "missing_weights":
        args[args.index("--weights-path") + 1] = str(tmp_path / "w.safetensors")
        match = "w.safetensors"
    elif case == "hash_mismatch":
        args += ["--weights-sha256", "deadbeef"]
        match = "SHA-256 mismatch"
    elif case == "no_position_columns":
        cat = tmp_path / "cat.ecsv"
        QTable({"flux": [1.0, 2.0]}).write(cat)
        args[args.index("--sources") + 1] = str(cat)
        match = "no position columns"
    rc = main(args)
    assert_one_line_error(capsys, rc, match)
    assert not out.exists()


def test_existing_output_needs_overwrite(field, tmp_path, capsys):
    out = tmp_path / "out.ecsv"
    out.write_text("keep me")
    assert_one_line_error(capsys, main(_classify_args(field, out)), "--overwrite")
    assert out.read_text() == "keep me"
    assert main(_classify_args(field, out, "--overwrite")) == 0
    assert len(read_table(out)) == len(field["table"])


def test_debug_reraises(field, tmp_path):
    args = _classify_args(field, tmp_path / "o.ecsv", "--sources", "/no/file.ecsv")
    with pytest.raises(OSError, match="not found"):
        main(["--debug", *args])
    with pytest.raises(OSError, match="not found"):
        main([*args, "--debug"])


def test_usage_errors(capsys):
    assert main(["classify", "--images", "a.fits"]) == 2
    err = capsys.readouterr().err
    assert "required" in err and "Traceback" not in err
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "classify" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert main(["nosuchcommand"]) == 2


def test_interrupt_leaves_no_output(field, tmp_path, capsys, monkeypatch):
    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ClusterClassifier, "__call__", interrupt)
    out = tmp_path / "out.ecsv"
    rc = main(_classify_args(field, out, "--regions", str(tmp_path / "r.reg")))
    assert rc == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_subcommand_registry():
    assert {"classify", "demo"} <= set(SUBCOMMANDS)
    for add_arguments, run in SUBCOMMANDS.values():
        assert callable(add_arguments) and callable(run) and run.__doc__


def test_demo(field, tmp_path, capsys):
    pytest.importorskip("astro_clustercls.simulation")
    outdir = tmp_path / "demo"
    rc = main(["demo", "--outdir", str(outdir), "--weights-path", str(field["weights"]),
               "--n-objects", "40", "--seed", "3", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "recall per true class" in out
    assert "weights notes: untrained, for tests" in out
    result = read_table(outdir / "out.ecsv")
    assert len(result) > 0
    assert {"cluster_class", "class_prob", "true_class"} <= set(result.colnames)
    # every detection matched to the truth carries a true class in 1..4
    matched = ~np.ma.getmaskarray(result["true_class"])
    assert matched.sum() > 0.5 * len(result)
    assert set(np.asarray(result["true_class"])[matched].tolist()) <= {1, 2, 3, 4}
    assert len(Regions.read(outdir / "classes.reg", format="ds9")) == len(result)
    from astro_clustercls.utils._optional_deps import HAS_MATPLOTLIB

    if HAS_MATPLOTLIB:
        assert (outdir / "gallery.png").stat().st_size > 1000


def test_demo_without_bundled_weights(tmp_path, capsys, monkeypatch):
    from astro_clustercls.models import _api

    monkeypatch.setattr(_api, "DATA_DIR", tmp_path / "empty")
    rc = main(["demo", "--outdir", str(tmp_path / "demo")])
    line = assert_one_line_error(capsys, rc, "no bundled weights")
    assert "--weights-path" in line
    assert rc == 3
    assert not (tmp_path / "demo").exists()


def test_match_one_to_one():
    det = np.array([[0.0, 0.0], [0.5, 0.0], [10.0, 10.0], [30.0, 30.0]])
    true = np.array([[0.2, 0.0], [10.0, 11.0]])
    np.testing.assert_array_equal(match_sources(det, true, 1.5), [0, -1, 1, -1])


def test_classify_without_bundled_weights(field, tmp_path, capsys, monkeypatch):
    from astro_clustercls.models import _api

    monkeypatch.setattr(_api, "DATA_DIR", tmp_path / "empty")
    args = ["classify", *_images_args(field), "--sources", str(field["sources"]),
            "--out", str(tmp_path / "o.ecsv")]
    rc = main(args)
    assert rc == 3
    assert_one_line_error(capsys, rc, "--weights-path")


def test_classify_ensemble(field, tmp_path, capsys):
    from astro_clustercls.inference.ensemble import ClusterEnsemble

    torch.manual_seed(1)
    second = tmp_path / "second.safetensors"
    save_weights(build_network("resnet18"), second,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": 15, "normalization": "asinh-v1"})
    out = tmp_path / "ens.ecsv"
    base = ["classify", *_images_args(field), "--sources", str(field["sources"]),
            "--device", "cpu", "--weights-path", str(field["weights"]),
            "--weights-path", str(second)]
    # repeated and comma-separated --model are the same
    assert main([*base, "--out", str(out), "--model", "resnet18",
                 "--model", "resnet18"]) == 0
    stdout = capsys.readouterr().out
    assert "with the mode of 2 networks" in stdout and "members agree" in stdout
    out2 = tmp_path / "ens2.ecsv"
    assert main([*base, "--out", str(out2), "--model", "resnet18,resnet18"]) == 0
    capsys.readouterr()
    result, result2 = read_table(out), read_table(out2)
    expected = ClusterEnsemble([("resnet18", field["weights"]), ("resnet18", second)],
                               device="cpu")(field["table"], field["images"])
    for table in (result, result2):
        np.testing.assert_array_equal(table["id"], field["table"]["id"])
        for name in ("cluster_class", "member_class"):
            np.testing.assert_array_equal(np.ma.filled(np.ma.asarray(table[name]), 0),
                                          expected[name].filled(0))
        np.testing.assert_allclose(table["class_agreement"],
                                   expected["class_agreement"])
        meta = table.meta["astro_clustercls"]
        assert meta["ensemble"] == "mode"
        assert [m["cutout_size"] for m in meta["members"]] == [SIZE, 15]
    # errors: the same network twice; weights not one per model
    rc = main([*base[:-2], "--weights-path", str(field["weights"]), "--out",
               str(tmp_path / "dup.ecsv"), "--model", "resnet18,resnet18"])
    assert_one_line_error(capsys, rc, "'members' holds the same network twice")
    rc = main([*base[:-2], "--out", str(tmp_path / "n.ecsv"), "--model",
               "resnet18,resnet18"])
    assert_one_line_error(capsys, rc, "--weights-path given 1 time(s) for 2")
    rc = main([*base, "--out", str(tmp_path / "one.ecsv")])
    assert_one_line_error(capsys, rc, "--weights-path given 2 time(s) for 1")
    assert not any(tmp_path.glob("[dno]*.ecsv"))


def test_classify_no_ood_skips_the_score(field, tmp_path):
    """The bundled network scores every row; --no-ood leaves the score out and
    changes no class."""
    base = ["classify", *_images_args(field), "--sources", str(field["sources"]),
            "--device", "cpu", "--quiet"]
    with_ood, without = tmp_path / "a.ecsv", tmp_path / "b.ecsv"
    assert main([*base, "--out", str(with_ood)]) == 0
    assert main([*base, "--out", str(without), "--no-ood"]) == 0
    a, b = QTable.read(with_ood), QTable.read(without)
    assert "ood_score" in a.colnames and "ood_score" not in b.colnames
    assert len(a) == len(b) == len(field["table"])
    np.testing.assert_array_equal(np.ma.getdata(a["cluster_class"]),
                                  np.ma.getdata(b["cluster_class"]))
    ood_bit = int(FLAGS.OUT_OF_DISTRIBUTION)
    assert not np.any(np.asarray(b["classify_flags"]) & ood_bit)
    np.testing.assert_array_equal(np.asarray(a["classify_flags"]) & ~ood_bit,
                                  np.asarray(b["classify_flags"]))
