# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The cross-renderer experiment on tiny sets (the real one is a command)."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from astro_clustercls.cli import main as cli_main
from astro_clustercls.evaluation import experiments
from astro_clustercls.evaluation.experiments import predict_probs
from astro_clustercls.evaluation.metrics import (
    expected_calibration_error,
    per_class_accuracy,
)
from astro_clustercls.evaluation.renderers import renderer_metrics
from astro_clustercls.evaluation.transfer import (
    RENDERERS,
    ablation_to_rst,
    cross_renderer,
    cross_to_rst,
    renderer_sets,
    transfer_ablation,
)
from astro_clustercls.models import get_model

pytest.importorskip("galsim")


@pytest.fixture
def tiny_recipe(monkeypatch):
    """The bundled recipe at 15 px in float32 (bit-reproducible on one thread)."""
    recipe = replace(experiments.EXPERIMENT_RECIPES["resnet18"], amp=False,
                     batch_size=16)
    monkeypatch.setitem(experiments.EXPERIMENT_RECIPES, "resnet18", recipe)
    return recipe


@pytest.fixture
def registry(empty_registry, register_random):
    """Untrained ResNet18 bundled weights (15 px, temperature 1.5) as DEFAULT."""
    register_random("resnet18", seed=2, temperature=1.5, recipe={"seed": 0})
    return empty_registry


def test_renderer_sets_reproducible_and_distinct():
    a = renderer_sets("galsim", size=15, seed=3, n_train=8, n_val=0, n_test=8)
    b = renderer_sets("galsim", size=15, seed=3, n_train=8, n_val=0, n_test=8)
    assert a[1] is None and a[0].data.shape == (8, 5, 15, 15)
    np.testing.assert_array_equal(a[2].data, b[2].data)
    # training and test sets come from different generators
    assert not np.array_equal(a[0].data, a[2].data)
    assert sorted(np.bincount(a[2].true_labels)[1:]) == [2, 2, 2, 2]  # balanced
    v1 = renderer_sets("v1", size=15, seed=3, n_train=0, n_val=0, n_test=8)[2]
    v2 = renderer_sets("v2", size=15, seed=3, n_train=0, n_val=0, n_test=8)[2]
    assert v1.data.shape == v2.data.shape == (8, 5, 15, 15)
    assert v2.meta["simulator_version"] == "2.0"
    assert not np.array_equal(v1.data, v2.data)
    # v2's held-out galaxy is seen through the instrument PSF
    assert set(v2.table["psf_family"]) == {"instrument"}
    with pytest.raises(ValueError, match="renderer"):
        renderer_sets("blender", size=15, seed=3, n_train=1, n_val=1, n_test=1)


def test_cross_renderer_tiny(tiny_recipe, registry):
    torch.set_num_threads(1)
    table = cross_renderer("resnet18", size=15, seed=1, n_train=48, n_val=24,
                           n_test=32, epochs=1, bundled=("resnet18",),
                           transfer="transfer")
    # the bundled network on every renderer, then each trained network on all
    assert [(r["trained_on"], r["tested_on"]) for r in table] == [
        *[("n/a", b) for b in RENDERERS],
        *[(a, b) for a in ("v2", "galsim") for b in RENDERERS]]
    assert "transfer augmentation" in table["network"][-1]
    assert table.meta["transfer"]["p"] == 0.5
    # the bundled rows against a recomputation at the weights' temperature
    net = get_model("resnet18", weights="DEFAULT")
    for row, renderer in zip(table[:3], RENDERERS, strict=True):
        test = renderer_sets(renderer, size=15, seed=1, n_train=0, n_val=0,
                             n_test=32)[2]
        probs = predict_probs(net, test.data, temperature=1.5)
        pred = np.argmax(probs, axis=1) + 1
        rec = per_class_accuracy(test.true_labels, pred)
        for c in (1, 2, 3, 4):
            assert row[f"recall_{c}"] == pytest.approx(float(rec[c - 1]), nan_ok=True)
        assert row["accuracy"] == pytest.approx(np.mean(pred == test.true_labels))
    for c in (1, 2, 3, 4):
        values = np.asarray(table[f"recall_{c}"], float)
        assert np.all((values[np.isfinite(values)] >= 0)
                      & (values[np.isfinite(values)] <= 1))
    rst = cross_to_rst(table)
    assert "Wei+2020, NGC 1559" in rst and rst.count("| resnet18") == 9
    assert "simulator v2" in rst and "GalSim" in rst


def test_transfer_ablation_tiny(tiny_recipe):
    torch.set_num_threads(1)
    table = transfer_ablation("resnet18", variants=("none", "noise"),
                              tested_on=("v2",), size=15, seed=1, n_train=48,
                              n_val=24, n_test=32, epochs=1)
    assert list(table["network"]) == ["none", "noise"]
    assert set(table["trained_on"]) == {"v2"} and set(table["tested_on"]) == {"v2"}
    # same seed, same data: only the augmentation differs, so the rows differ
    assert not np.allclose(np.asarray(table["ece"], float)[0],
                           np.asarray(table["ece"], float)[1])
    rst = ablation_to_rst(table)
    assert "| noise" in rst and "human consistency" in rst
    with pytest.raises(ValueError, match="variants"):
        transfer_ablation("resnet18", variants=("focus",))


def test_cross_command_rejects_unknown_arch(capsys):
    assert cli_main(["experiments", "cross", "--arch", "resnet50"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_renderer_metrics_match_the_cross_table(registry):
    """What the weights' meta records per renderer is the cross table's row."""
    net = get_model("resnet18", weights="DEFAULT")
    metrics = renderer_metrics(net, n_test=32, seed=1)
    assert list(metrics) == list(RENDERERS)
    table = cross_renderer("resnet18", size=15, seed=1, n_train=0, n_test=32,
                           bundled=("resnet18",))
    for row in table:
        m = metrics[str(row["tested_on"])]
        assert m["n"] == 32
        assert m["balanced_accuracy"] == pytest.approx(row["balanced_accuracy"],
                                                       abs=1e-4)
        assert m["ece"] == pytest.approx(row["ece"], abs=1e-4)
        for c in (1, 2, 3, 4):
            assert m["recall"][c] == pytest.approx(row[f"recall_{c}"], abs=1e-4,
                                                   nan_ok=True)
    json.dumps(metrics)  # JSON-able, for the weights' meta
    with pytest.raises(ValueError, match="renderers"):
        renderer_metrics(net, renderers=("hubble",))


def test_cross_table_ensemble_row(register_random):
    """The bundled networks' ensemble: majority vote, ties to the higher mean."""
    register_random("resnet18", seed=2, temperature=1.5, simulator_version="2.0")
    register_random("vgg19_bn", seed=5, simulator_version="1.0")
    table = cross_renderer("resnet18", size=15, seed=1, n_train=0, n_test=64,
                           tested_on=("v2",), bundled=("resnet18", "vgg19_bn"))
    assert list(table["network"]) == [
        "resnet18 ResNet18_Weights.TEST", "vgg19_bn VGG19_BN_Weights.TEST",
        "ensemble of resnet18 + vgg19_bn"]
    test = renderer_sets("v2", size=15, seed=1, n_train=0, n_val=0, n_test=64)[2]
    p1 = predict_probs(get_model("resnet18", weights="DEFAULT"), test.data,
                       temperature=1.5)
    p2 = predict_probs(get_model("vgg19_bn", weights="DEFAULT"), test.data)
    a, b = np.argmax(p1, axis=1), np.argmax(p2, axis=1)
    mean = (p1 + p2) / 2
    rows = np.arange(len(a))
    # two members: their common class, else the one of the two with the
    # higher mean probability
    pred = np.where(mean[rows, a] >= mean[rows, b], a, b) + 1
    assert 0 < np.mean(a != b)  # the rule is exercised
    rec = per_class_accuracy(test.true_labels, pred)
    row = table[2]
    assert row["trained_on"] == "v2 + v1"
    for c in (1, 2, 3, 4):
        assert row[f"recall_{c}"] == pytest.approx(float(rec[c - 1]), nan_ok=True)
    assert row["accuracy"] == pytest.approx(np.mean(pred == test.true_labels))
    assert row["ece"] == pytest.approx(
        float(expected_calibration_error(mean, test.true_labels)), abs=1e-6)
    rst = re.sub(" +", " ", cross_to_rst(table))
    assert "| ensemble of resnet18 + vgg19_bn | simulator v2 + simulator v1 |" in rst
