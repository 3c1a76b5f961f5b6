# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The simulate -> train -> evaluate command-line workflow."""

import numpy as np
import pytest
import torch
from astropy.io import fits

from astro_clustercls.cli import main
from astro_clustercls.io.export import read_table
from astro_clustercls.models import get_model


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--outdir", str(outdir), "--n-objects", "40",
                 "--shape", "128", "128", "--seed", "5"]) == 0
    return outdir


def _images(outdir):
    return [f"{b}={outdir / (b.lower() + '_sim.fits')}"
            for b in ("F275W", "F336W", "F438W", "F555W", "F814W")]


def test_simulate_writes_fits_and_truth(simulated, capsys):
    truth = read_table(simulated / "truth.ecsv")
    assert len(truth) == 40
    assert set(np.unique(truth["cluster_class"])) <= {1, 2, 3, 4}
    with fits.open(simulated / "f555w_sim.fits") as hdul:
        assert hdul[0].header["FILTER"] == "F555W"
        assert hdul[0].header["BUNIT"] == "ELECTRONS/S"
        assert hdul[0].data.shape == (128, 128)
    # a second run refuses to overwrite
    assert main(["simulate", "--outdir", str(simulated), "--n-objects", "5"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]


def test_train_then_evaluate(simulated, tiny_weights, tmp_path, capsys):
    out = tmp_path / "ft.safetensors"
    workdir = tmp_path / "run"
    args = ["train", "--images", *_images(simulated), "--sources",
            str(simulated / "truth.ecsv"), "--weights-path", str(tiny_weights),
            "--out", str(out), "--epochs", "1", "--batch-size", "16",
            "--workdir", str(workdir)]
    assert main(args) == 0
    assert (workdir / "history.ecsv").exists()
    tuned = get_model("resnet18", weights_path=out)
    assert tuned.clustercls_meta["cutout_size"] == 15
    before = get_model("resnet18", weights_path=tiny_weights)
    changed = [k for k, v in tuned.state_dict().items()
               if v.is_floating_point() and not torch.allclose(
                   v, before.state_dict()[k].float(), atol=1e-3)]
    assert changed, "fine-tuning changed no weight"

    report_path = tmp_path / "report.ecsv"
    assert main(["evaluate", "--images", *_images(simulated), "--sources",
                 str(simulated / "truth.ecsv"), "--weights-path", str(out),
                 "--out", str(report_path)]) == 0
    printed = capsys.readouterr().out
    assert "overall accuracy" in printed and "Wei et al. 2020" in printed
    report = read_table(report_path)
    truth = read_table(simulated / "truth.ecsv")
    assert report["class"].tolist() == [1, 2, 3, 4]
    assert report["n"].sum() <= len(truth)
    assert np.all((report["recall"] >= 0) | np.isnan(report["recall"]))
