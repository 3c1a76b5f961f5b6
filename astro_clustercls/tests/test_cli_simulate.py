# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls simulate --simulator/--acs-bands`` and its provenance."""

import numpy as np
import pytest
from astropy.io import fits

from astro_clustercls.cli import main
from astro_clustercls.cli import simulate as simulate_cli
from astro_clustercls.cli.main import build_parser
from astro_clustercls.io.export import read_table
from astro_clustercls.models import get_model
from astro_clustercls.utils._optional_deps import HAS_TQDM

SMALL = ["--n-objects", "10", "--shape", "96", "96", "--seed", "3"]


def _images(outdir, bands):
    return [f"{b}={outdir / (b.lower() + '_sim.fits')}" for b in bands]


def test_simulate_help_shows_the_defaults():
    sub = build_parser()._subparsers._group_actions[0].choices["simulate"]
    text = " ".join(sub.format_help().split())
    assert "--simulator {v1,v2}" in text and "(default v1)" in text
    assert "--acs-bands" in text and "--progress" in text
    assert "simulation seed (default 0)" in text
    args = build_parser().parse_args(["simulate", "--outdir", "x"])
    assert args.simulator == "v1" and args.acs_bands is None


def test_simulate_records_v1_by_default(tmp_path):
    assert main(["simulate", "--outdir", str(tmp_path), *SMALL]) == 0
    truth = read_table(tmp_path / "truth.ecsv")
    assert truth.meta["simulator_version"] == "1.0"
    assert truth.meta["acs_bands"] == {}
    with fits.open(tmp_path / "f555w_sim.fits") as hdul:
        header = hdul[0].header
    assert header["SIMVERS"] == "1.0" and header["FILTER"] == "F555W"
    assert header["INSTRUME"] == "WFC3" and header["EXPTIME"] > 0


@pytest.mark.parametrize("acs", [None, ["F435W", "F606W"]])
def test_simulate_v2_then_classify_keeps_every_row(tmp_path, tiny_weights, acs,
                                                   capsys):
    """A v2 field (WFC3, or ACS in two slots) classified: every truth row kept."""
    sim = tmp_path / "sim"
    extra = ["--acs-bands", *acs] if acs else []
    assert main(["simulate", "--outdir", str(sim), "--simulator", "v2", *SMALL,
                 *extra]) == 0
    printed = capsys.readouterr().out
    assert "(simulator 2.0)" in printed
    bands = ["F275W", "F336W", "F438W", "F555W", "F814W"]
    if acs:
        bands[2:4] = acs
        assert "--band-map F438W=F435W F555W=F606W" in printed
    truth = read_table(sim / "truth.ecsv")
    assert truth.meta["simulator_version"] == "2.0"
    assert len(truth) >= 10  # the bright field stars follow the 10 objects
    for band in bands:
        header = fits.getheader(sim / f"{band.lower()}_sim.fits")
        assert header["FILTER"] == band and header["SIMVERS"] == "2.0"
        assert header["INSTRUME"] == ("ACS" if acs and band in acs else "WFC3")
    out = tmp_path / "classes.ecsv"
    band_map = ["--band-map", "F438W=F435W", "F555W=F606W"] if acs else []
    assert main(["classify", "--images", *_images(sim, bands), "--sources",
                 str(sim / "truth.ecsv"), "--weights-path", str(tiny_weights),
                 "--out", str(out), *band_map]) == 0
    result = read_table(out)
    assert len(result) == len(truth)
    np.testing.assert_array_equal(result["id"], truth["id"])
    assert "cluster_class" in result.colnames and "class_prob" in result.colnames


def test_simulate_interrupted_leaves_no_file(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # while simulating
    monkeypatch.setattr(simulate_cli, "simulate_field", interrupt)
    assert main(["simulate", "--outdir", str(tmp_path), *SMALL]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # while writing the truth table, after the FITS files: none stays
    monkeypatch.undo()
    monkeypatch.setattr(simulate_cli, "write_table", interrupt)
    assert main(["simulate", "--outdir", str(tmp_path), *SMALL]) == 130
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAS_TQDM, reason="tqdm is not installed")
def test_simulate_progress_bar(tmp_path, capsys):
    assert main(["simulate", "--outdir", str(tmp_path / "a"), *SMALL,
                 "--progress"]) == 0
    assert "simulating: 100%" in capsys.readouterr().err
    assert main(["--quiet", "simulate", "--outdir", str(tmp_path / "b"),
                 *SMALL]) == 0
    assert capsys.readouterr().err == ""


def test_train_records_the_simulator_of_its_catalog(tmp_path, tiny_weights):
    """Fine-tuning on a v2 field: the weights' meta says so."""
    sim = tmp_path / "sim"
    assert main(["simulate", "--outdir", str(sim), "--simulator", "v2",
                 "--n-objects", "24", "--shape", "96", "96"]) == 0
    out = tmp_path / "ft.safetensors"
    bands = ["F275W", "F336W", "F438W", "F555W", "F814W"]
    assert main(["--quiet", "train", "--images", *_images(sim, bands),
                 "--sources", str(sim / "truth.ecsv"), "--weights-path",
                 str(tiny_weights), "--out", str(out), "--epochs", "1",
                 "--batch-size", "16"]) == 0
    meta = get_model("resnet18", weights_path=out).clustercls_meta
    assert meta["fine_tuned_on"]["simulator_version"] == "2.0"
    assert meta["fine_tuned_on"]["sources"] == "truth.ecsv"
    assert "simulated by astro_clustercls.simulation 2.0" in meta["training_data"]
