# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
A new user's first hour (issue 18): what got in the way, each with a test.

- progress: stage lines on the command line, progress bars on a terminal by
  default (auto), none in pipes or with ``--quiet``;
- input columns named like output columns are kept, renamed, never replaced;
- command-line errors spelt as options (``--missing-bands zero``,
  ``--xcol/--ycol``, ``--band-map``);
- ``CutoutWarning`` and ``WeightsWarning`` are emitted where they belong;
- smaller points: ``print(FLAGS)``, ``train --help``, ``demo`` and existing
  folders, ``FileNotFoundError``, sky regions;
- ``adapt``: fine-tuning to one's own field on injected objects.
"""

import json
import warnings

import numpy as np
import pytest
import torch
from astropy.table import QTable
from regions import Regions

from astro_clustercls import BandImages, conf
from astro_clustercls._constants import DEFAULT_BANDS
from astro_clustercls.cli import adapt as adapt_command
from astro_clustercls.cli import main
from astro_clustercls.cli._common import count
from astro_clustercls.cli._errors import OPTION_NAMES, cli_spelling
from astro_clustercls.data.catalogs import read_legus, read_phangs
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference import classifier as classifier_module
from astro_clustercls.inference.classifier import ClusterClassifier
from astro_clustercls.inference.distributed import classify_fields, classify_mosaic
from astro_clustercls.inference.ensemble import ClusterEnsemble
from astro_clustercls.models import build_network, save_weights
from astro_clustercls.simulation import inject, simulate_field
from astro_clustercls.training import adapt
from astro_clustercls.training.adaptation import ADAPT_DEFAULTS, _inject_objects
from astro_clustercls.utils import _progress_bars
from astro_clustercls.utils.exceptions import (
    CutoutWarning,
    InputColumnWarning,
    WeightsWarning,
)

SIZE = 15


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A small simulated field (FITS files, truth table) and tiny weights."""
    d = tmp_path_factory.mktemp("first_hour")
    images, truth = simulate_field(seed=7, n_objects=40, shape=(160, 160))
    files = images.write(d, pattern="{band}_drc.fits")
    truth_path = d / "truth.ecsv"
    truth["id", "x_centroid", "y_centroid", "cluster_class"].write(truth_path)
    torch.manual_seed(0)
    weights = d / "tiny.safetensors"
    save_weights(build_network("resnet18", n_bands=5).eval(), weights,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": SIZE, "normalization": "asinh-v1",
                  "notes": "random weights, test only"})
    return {"dir": d, "images": images, "truth": truth, "files": files,
            "truth_path": truth_path, "weights": weights}


def _images_args(files, skip=(), rename=None):
    rename = rename or {}
    return ["--images"] + [f"{rename.get(b, b)}={p}" for b, p in files.items()
                           if b not in skip]


def _classify(field, out, *extra, sources=None, skip=(), rename=None):
    return ["classify", *_images_args(field["files"], skip, rename), "--sources",
            str(sources or field["truth_path"]), "--out", str(out),
            "--weights-path", str(field["weights"]), "--device", "cpu", *extra]


def _stage_lines(err):
    return [line for line in err.splitlines()
            if line.startswith("astro-clustercls: ") and line.endswith("...")]


def _error_line(err):
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


# -- 2. progress ------------------------------------------------------------------
def test_want_progress_auto(monkeypatch):
    assert conf.progress_bar is None  # the default: auto
    monkeypatch.setattr(_progress_bars, "stderr_is_terminal", lambda: True)
    assert _progress_bars.want_progress(None) is True
    assert _progress_bars.want_progress(None, total=10, min_total=5000) is False
    assert _progress_bars.want_progress(None, total=6000, min_total=5000) is True
    assert _progress_bars.want_progress(False, total=6000, min_total=5000) is False
    with conf.set_temp("progress_bar", False):
        assert _progress_bars.want_progress(None) is False
    monkeypatch.setattr(_progress_bars, "stderr_is_terminal", lambda: False)
    assert _progress_bars.want_progress(None, total=10**6, min_total=1) is False
    assert _progress_bars.want_progress(True, total=1, min_total=5000) is True
    with conf.set_temp("progress_bar", True):
        assert _progress_bars.want_progress(None, total=1, min_total=5000) is True


def test_classifier_bar_only_on_a_terminal_for_long_work(field, monkeypatch, capsys):
    clf = ClusterClassifier("resnet18", weights_path=field["weights"], device="cpu")
    assert clf.progress_bar is None
    xy = np.full((30, 2), 80.0)
    monkeypatch.setattr(_progress_bars, "stderr_is_terminal", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's environment chatter
        clf(xy, field["images"])
    assert "classify (resnet18)" not in capsys.readouterr().err  # 30 < a few 1000
    monkeypatch.setattr(classifier_module, "AUTO_MIN_OBJECTS", 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf(xy, field["images"])
    assert "30/30" in capsys.readouterr().err
    monkeypatch.setattr(_progress_bars, "stderr_is_terminal", lambda: False)
    clf(xy, field["images"])
    assert capsys.readouterr().err == ""  # a pipe: quiet


def test_cli_stage_lines_quiet_and_progress(field, tmp_path, capsys):
    args = _classify(field, tmp_path / "a.ecsv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    out, err = capsys.readouterr()
    stages = _stage_lines(err)
    assert stages[0].startswith("astro-clustercls: loading network resnet18")
    assert f"astro-clustercls: classifying {len(field['truth'])} sources..." in stages
    assert "%|" not in err  # stderr is not a terminal here: no bar
    assert main([*_classify(field, tmp_path / "b.ecsv"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert not _stage_lines(err) and "classified" in out  # results still printed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*_classify(field, tmp_path / "c.ecsv"), "--progress"]) == 0
    assert "classify (resnet18)" in capsys.readouterr().err
    # 12 000 is written as astronomers write it
    assert count(12000) == "12 000"


# -- 3. data never lost -----------------------------------------------------------
# (the field's chip gap flags some rows: their CutoutWarning is tested below)
@pytest.mark.filterwarnings("ignore::astro_clustercls.utils.exceptions.CutoutWarning")
def test_true_classes_survive_classification(field):
    """A labelled catalog's cluster_class is kept (renamed), with its values."""
    truth = field["truth"]
    clf = ClusterClassifier("resnet18", weights_path=field["weights"], device="cpu")
    with pytest.warns(InputColumnWarning, match="'cluster_class' -> "
                      "'cluster_class_input'"):
        result = clf(truth, field["images"])
    np.testing.assert_array_equal(result["cluster_class_input"], truth["cluster_class"])
    assert result.colnames.index("cluster_class_input") == \
        truth.colnames.index("cluster_class")
    assert result.meta["astro_clustercls"]["renamed_columns"] == {
        "cluster_class": "cluster_class_input"}
    assert "cluster_class" in truth.colnames  # the input table is untouched


@pytest.mark.filterwarnings("ignore::astro_clustercls.utils.exceptions.CutoutWarning")
def test_true_classes_survive_the_ensemble_and_the_cli(field, tmp_path, capsys):
    truth = field["truth"]
    torch.manual_seed(1)
    other = tmp_path / "other.safetensors"
    save_weights(build_network("resnet18", n_bands=5).eval(), other,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": SIZE, "normalization": "asinh-v1"})
    ensemble = ClusterEnsemble([("resnet18", field["weights"]), ("resnet18", other)],
                               device="cpu")
    with pytest.warns(InputColumnWarning, match="cluster_class_input"):
        result = ensemble(truth, field["images"])
    np.testing.assert_array_equal(result["cluster_class_input"], truth["cluster_class"])
    assert result.meta["astro_clustercls"]["renamed_columns"] == {
        "cluster_class": "cluster_class_input"}

    out = tmp_path / "classes.ecsv"
    assert main(_classify(field, out)) == 0
    stdout, err = capsys.readouterr()
    assert "kept the input column 'cluster_class' as 'cluster_class_input'" in stdout
    assert "warning:" in err and "cluster_class_input" in err
    back = QTable.read(out)
    np.testing.assert_array_equal(back["cluster_class_input"], truth["cluster_class"])


def test_true_classes_survive_classify_fields(field):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (result,) = classify_fields([(field["truth"], field["images"])],
                                    weights_path=field["weights"], device="cpu")
    assert any(issubclass(w.category, InputColumnWarning) for w in caught)
    np.testing.assert_array_equal(result["cluster_class_input"],
                                  field["truth"]["cluster_class"])


# -- 4. command-line errors in command-line spelling --------------------------------
def test_cli_spelling_of_library_messages():
    assert cli_spelling("substitute with bands={...}, or pass missing_bands='zero'") \
        == "substitute with --band-map NETWORK_BAND=IMAGE_BAND, or pass " \
           "--missing-bands zero"
    assert cli_spelling("name the substitutions with bands={network_band: "
                        "image_band}") == \
        "name the substitutions with --band-map NETWORK_BAND=IMAGE_BAND"
    assert cli_spelling("name yours with xcol=/ycol= or skycol= (columns: [])") == \
        "name yours with --xcol/--ycol or --skycol (columns: [])"
    assert cli_spelling("skycol='X' is not a SkyCoord column; name RA and Dec "
                        "columns as skycol=('RA', 'DEC')") == \
        "--skycol X is not a SkyCoord column; name RA and Dec columns as " \
        "--skycol RA,DEC"
    assert cli_spelling("give both 'xcol' and 'ycol', or neither") == \
        "give both --xcol and --ycol, or neither"
    unchanged = "'n_bands' and n_bands=5 stay"  # not a parameter of the CLI
    assert cli_spelling(unchanged) == unchanged
    assert all(option.startswith("--") for option in OPTION_NAMES.values())


def test_cli_errors_name_options(field, tmp_path, capsys):
    out = tmp_path / "o.ecsv"
    # a missing band: --band-map or --missing-bands zero
    assert main(_classify(field, out, skip=("F275W",))) == 1
    line = _error_line(capsys.readouterr().err)
    assert "--missing-bands zero" in line and "--band-map NETWORK_BAND=IMAGE_BAND" \
        in line and "missing_bands=" not in line and "bands={" not in line
    # no band in common
    assert main(_classify(field, out, rename={b: f"X{b}" for b in DEFAULT_BANDS})) == 1
    line = _error_line(capsys.readouterr().err)
    assert "--band-map NETWORK_BAND=IMAGE_BAND" in line
    # no position columns
    cat = tmp_path / "cat.ecsv"
    QTable({"X": [10.0], "Y": [12.0]}).write(cat)
    assert main(_classify(field, out, sources=cat)) == 1
    line = _error_line(capsys.readouterr().err)
    assert "name yours with --xcol/--ycol or --skycol" in line
    assert main(_classify(field, out, "--skycol", "X", sources=cat)) == 1
    line = _error_line(capsys.readouterr().err)
    assert "--skycol X is not a SkyCoord column" in line and "--skycol RA,DEC" in line
    assert main(_classify(field, out, "--xcol", "X", sources=cat)) == 1
    line = _error_line(capsys.readouterr().err)
    assert "--xcol and --ycol" in line
    # a bad --band-map item
    assert main(_classify(field, out, "--band-map", "F555W")) == 1
    assert "--band-map" in _error_line(capsys.readouterr().err)
    assert not out.exists()


def test_band_map_substitutes(field, tmp_path, capsys):
    """--band-map F555W=F606W: an F606W image feeds the network's F555W band."""
    out = tmp_path / "o.ecsv"
    args = _classify(field, out, "--band-map", "F555W=F606W",
                     rename={"F555W": "F606W"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputColumnWarning)
        assert main(args) == 0
    capsys.readouterr()
    result = QTable.read(out)
    assert result.meta["astro_clustercls"]["bands_used"]["F555W"] == "F606W"
    clf = ClusterClassifier("resnet18", weights_path=field["weights"], device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = clf(field["truth"], field["images"])
    np.testing.assert_allclose(result["class_prob"], expected["class_prob"],
                               atol=1e-6)


# -- 5. CutoutWarning and WeightsWarning ------------------------------------------
def test_cutout_warning_once_with_counts(field):
    clf = ClusterClassifier("resnet18", weights_path=field["weights"], device="cpu")
    inside = [(40.0, 40.0), (120.0, 50.0)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf(inside, field["images"])
    assert not [w for w in caught if issubclass(w.category, CutoutWarning)]
    # an edge row, an off-image row and a row in the chip gap (NaN)
    gap_y = int(np.flatnonzero(~np.isfinite(field["images"]["F555W"].data[:, 80]))[0])
    xy = [*inside, (2.0, 40.0), (500.0, 500.0), (80.0, gap_y + 1.0)]
    with pytest.warns(CutoutWarning) as record:
        result = clf(xy, field["images"])
    ours = [w for w in record if issubclass(w.category, CutoutWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    flags = np.asarray(result["classify_flags"])
    assert message.startswith("3 of 5 rows have incomplete cutouts (")
    for name in ("PARTIAL_OFF_IMAGE", "OFF_IMAGE", "NONFINITE"):
        n = int(np.count_nonzero(flags & FLAGS[name].bit))
        assert f"{n} {name}" in message
    assert "1 of them could not be classified" in message


def test_cutout_warning_once_for_an_ensemble(field, tmp_path):
    torch.manual_seed(2)
    other = tmp_path / "other.safetensors"
    save_weights(build_network("resnet18", n_bands=5).eval(), other,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": SIZE, "normalization": "asinh-v1"})
    ensemble = ClusterEnsemble([("resnet18", field["weights"]), ("resnet18", other)],
                               device="cpu")
    with pytest.warns(CutoutWarning) as record:
        ensemble([(2.0, 40.0), (40.0, 40.0)], field["images"])
    assert len([w for w in record if issubclass(w.category, CutoutWarning)]) == 1


def test_cutout_warning_once_for_a_tiled_mosaic(field):
    xy = np.array([[2.0, 40.0], [158.0, 100.0], [40.0, 40.0], [100.0, 120.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classify_mosaic(xy, field["images"], tile_size=80,
                        weights_path=field["weights"], device="cpu")
    ours = [w for w in caught if issubclass(w.category, CutoutWarning)]
    assert len(ours) == 1 and "2 of 4 rows" in str(ours[0].message)


@pytest.mark.parametrize("meta, warns", [
    ({"notes": "Undertrained for lack of compute: 8 epochs. Prefer the other."}, True),
    ({"undertrained": True}, True),
    ({"notes": "random weights, test only"}, False),
    ({}, False),
])
def test_weights_warning_for_undertrained_weights(tmp_path, meta, warns):
    path = tmp_path / "w.safetensors"
    save_weights(build_network("resnet18", n_bands=5).eval(), path,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": SIZE, "normalization": "asinh-v1", **meta})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ClusterClassifier("resnet18", weights_path=path, device="cpu")
    ours = [w for w in caught if issubclass(w.category, WeightsWarning)]
    assert len(ours) == int(warns)
    if warns and "notes" in meta:
        assert "Undertrained for lack of compute: 8 epochs." in str(ours[0].message)


def test_undertrained_bundled_vgg_warns():
    with pytest.warns(WeightsWarning, match="vgg19_bn weights .*Undertrained"):
        ClusterClassifier("vgg19_bn", weights="SIM_V2", device="cpu")
    # the defaults (ResNet18 and VGG19-BN SIM2_V1) are trained to a plateau
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ClusterClassifier("resnet18", device="cpu")
        ClusterClassifier("vgg19_bn", device="cpu")
    assert not caught


# -- 7. smaller points ------------------------------------------------------------
def test_print_flags_is_a_table(capsys):
    print(FLAGS)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["bit", "name", "description"]
    assert len(lines) == 2 + len(FLAGS)
    assert lines[2].split()[:2] == ["1", "PARTIAL_OFF_IMAGE"]
    assert "object at 0x" not in repr(FLAGS) and "NOT_CLASSIFIED" in repr(FLAGS)


def test_train_help_has_help_and_defaults(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    text = text[text.index("options:"):]  # not the usage line
    for option, default in (("--epochs", "10"), ("--lr", "0.0001"),
                            ("--batch-size", "128"), ("--val-fraction", "0.2"),
                            ("--seed", "0")):
        start = text.index(f"{option} ")
        assert f"(default {default})" in text[start:start + 200], option


def test_adapt_cli_defaults_match_the_library(capsys):
    assert main(["adapt", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    text = text[text.index("options:"):]  # not the usage line
    for key in ("n_objects", "epochs", "batch_size", "test_fraction"):
        option = "--" + key.replace("_", "-")
        start = text.index(f"{option} ")
        assert f"(default {ADAPT_DEFAULTS[key]})" in text[start:start + 250], option
    assert "(default 0.0001)" in text[text.index("--lr "):][:120]


def test_demo_refuses_a_non_empty_folder(tmp_path, capsys):
    outdir = tmp_path / "demo"
    outdir.mkdir()
    (outdir / "mine.txt").write_text("keep me")
    assert main(["demo", "--outdir", str(outdir), "--weights-path",
                 str(tmp_path / "unused.safetensors")]) == 1
    line = _error_line(capsys.readouterr().err)
    assert "not empty" in line and "--overwrite" in line
    assert (outdir / "mine.txt").read_text() == "keep me"


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        BandImages.from_files({"F555W": tmp_path / "nope.fits"})
    with pytest.raises(FileNotFoundError):
        BandImages.from_files([tmp_path / "nope.fits"])
    with pytest.raises(FileNotFoundError):
        read_legus(tmp_path / "nope.tab")
    with pytest.raises(FileNotFoundError):
        read_phangs(tmp_path / "nope.fits")
    with pytest.raises(FileNotFoundError):
        ClusterClassifier("resnet18", weights_path=tmp_path / "nope.safetensors")
    with pytest.raises(OSError):  # still an OSError, as before
        BandImages.from_files({"F555W": tmp_path / "nope.fits"})


def test_cli_regions_in_sky_coordinates(field, tmp_path, capsys):
    out, reg = tmp_path / "o.ecsv", tmp_path / "o.reg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(_classify(field, out, "--regions", str(reg))) == 0
    assert "regions in sky coordinates" in capsys.readouterr().out
    lines = reg.read_text().splitlines()
    assert lines[1] in ("icrs", "fk5")
    regions = Regions.read(reg, format="ds9")
    sky = field["images"].wcs.pixel_to_world(field["truth"]["x_centroid"],
                                             field["truth"]["y_centroid"])
    sep = regions[0].center.separation(sky[0]).arcsec
    assert sep < 1e-3


# -- 8. adapt ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """One small adapt run (bundled ResNet18) with a workdir."""
    images, _ = simulate_field(seed=21, n_objects=30, shape=(200, 200), distance=16)
    workdir = tmp_path_factory.mktemp("adapt")
    stages = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = adapt(images, distance=16, n_objects=48, epochs=1, window=200,
                       spacing=40, seed=3, workdir=workdir, on_stage=stages.append,
                       amp=False)
    return {"images": images, "result": result, "workdir": workdir,
            "stages": stages}


def test_adapt_report_and_split(adapted):
    result = adapted["result"]
    report, objects = result.report, result.objects
    assert report["class"].tolist() == [1, 2, 3, 4]
    assert report.colnames == ["class", "name", "n_train", "n_test", "recall_before",
                               "recall_after", "change"]
    test = objects["split"] == "test"
    assert int(report["n_test"].sum()) == int(test.sum()) > 0
    assert int(report["n_train"].sum()) == int((~test).sum())
    # the four classes in about equal numbers, the held-back ones never trained on
    counts = np.bincount(objects["cluster_class"], minlength=5)[1:]
    assert counts.min() >= counts.max() - 3
    assert result.train_result.config["n_train"] == int((~test).sum())
    assert not np.any(np.ma.getmaskarray(objects["class_after"])[test])
    assert np.all(np.ma.getmaskarray(objects["class_after"])[~test])
    # recall recomputed from the held-back predictions
    for row in report:
        rows = test & (objects["cluster_class"] == row["class"])
        assert row["recall_after"] == pytest.approx(
            np.mean(objects["class_after"][rows] == row["class"]))
    meta = report.meta["adapt"]
    assert meta["n_train"] + meta["n_test"] == meta["n_used"] <= 48
    lines = result.summary()
    assert lines[0].split() == ["class", "name", "train", "test", "before", "after",
                                "change"]
    assert any("overall accuracy" in line for line in lines)
    assert [s.split()[0] for s in adapted["stages"]] == [
        "loading", "injecting", "classifying", "fine-tuning", "classifying"]
    # the injected objects lie in the field, inside its finite pixels
    assert np.all((objects["x_centroid"] >= 0) & (objects["x_centroid"] < 200))


def test_adapt_weights_file(adapted, tmp_path):
    path = tmp_path / "adapted.safetensors"
    sha = adapted["result"].save(path)
    clf = ClusterClassifier("resnet18", weights_path=path, device="cpu")
    assert clf.weights_sha256 == sha
    assert clf.meta["notes"].startswith("Adapted from resnet18")
    assert clf.meta["adapted_from"]["weights"] == "ResNet18_Weights.SIM2_V1"
    assert clf.temperature == pytest.approx(
        adapted["result"].report.meta["adapt"]["temperature"])
    assert clf.cutout_size == 51 and clf.bands == tuple(DEFAULT_BANDS)


def test_adapt_is_reproducible_and_resumes(adapted):
    workdir = adapted["workdir"]
    saved = json.loads((workdir / "settings.json").read_text())
    assert saved["seed"] == 3 and saved["distance"] == 16.0
    stages = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        again = adapt(adapted["images"], distance=16, n_objects=48, epochs=1,
                      window=200, spacing=40, seed=3, workdir=workdir, resume=True,
                      on_stage=stages.append, amp=False)
    assert stages[1].startswith("resuming")  # no injection, training finished
    first = adapted["result"]
    for name in ("x_centroid", "y_centroid", "cluster_class", "split"):
        np.testing.assert_array_equal(again.objects[name], first.objects[name])
    np.testing.assert_array_equal(again.report["recall_after"],
                                  first.report["recall_after"])
    with pytest.raises(ValueError, match="other settings"):
        adapt(adapted["images"], distance=12, n_objects=48, epochs=1, window=200,
              spacing=40, seed=3, workdir=workdir, resume=True)


def test_adapt_injection_is_seeded(adapted):
    kwargs = dict(n_objects=12, classes=[1, 2, 3, 4], distance=16.0, psfs=None,
                  conditions=None, params=None, window=120, spacing=30,
                  progress_bar=False)
    a = _inject_objects(adapted["images"], list(DEFAULT_BANDS), SIZE, "asinh-v1",
                        seed=5, **kwargs)
    b = _inject_objects(adapted["images"], list(DEFAULT_BANDS), SIZE, "asinh-v1",
                        seed=5, **kwargs)
    c = _inject_objects(adapted["images"], list(DEFAULT_BANDS), SIZE, "asinh-v1",
                        seed=6, **kwargs)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(np.asarray(a[1]["x_centroid"]),
                              np.asarray(c[1]["x_centroid"]))


def test_adapt_cli(field, tmp_path, capsys):
    out = tmp_path / "adapted.safetensors"
    args = ["adapt", *_images_args(field["files"]), "--distance", "12",
            "--n-objects", "24", "--epochs", "1", "--batch-size", "16",
            "--psf-fwhm", "F275W=0.09", "--out", str(out), "--seed", "1",
            "--device", "cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    stdout, err = capsys.readouterr()
    assert "recall on the held-back injected objects" in stdout
    assert "overall accuracy" in stdout and str(out) in stdout
    assert any("injecting 24 simulated objects" in s for s in _stage_lines(err))
    report = QTable.read(tmp_path / "adapted-report.ecsv")
    assert report["class"].tolist() == [1, 2, 3, 4]
    assert report.meta["adapt"]["settings"]["psf_fwhm"] == {"F275W": 0.09}
    assert main(args) == 1  # the files exist: --overwrite
    assert "--overwrite" in _error_line(capsys.readouterr().err)
    assert main([*args[:-2], "--resume"]) == 1  # --resume without --workdir
    assert "--workdir" in _error_line(capsys.readouterr().err)


def test_adapt_cli_interrupt_says_how_to_resume(field, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(adapt_command, "adapt", interrupted)
    args = ["adapt", *_images_args(field["files"]), "--distance", "12", "--out",
            str(tmp_path / "a.safetensors"), "--workdir", str(tmp_path / "run")]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted;" in err and "--resume" in err and str(tmp_path / "run") in err


def test_inject_class_balance_and_classes_per_object():
    base = BandImages({b: np.zeros((160, 160)) for b in ("F555W", "F814W")},
                      unit="electron/s")
    _, truth = inject(base, n=12, seed=1, class_balance="equal")
    assert np.bincount(truth["cluster_class"], minlength=5)[1:].tolist() == [3] * 4
    wanted = np.array([4, 4, 1, 3, 2])
    _, truth = inject(base, n=5, seed=2, classes=wanted)
    assert truth["cluster_class"].tolist() == wanted.tolist()
    with pytest.raises(ValueError, match="class_balance"):
        inject(base, n=2, seed=3, class_balance="even")
