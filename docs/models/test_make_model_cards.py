# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The model-card generator works on manifest entries (no weights file needed)."""

import json

import pytest
from docutils.core import publish_doctree
from docutils.parsers.rst import roles
from docutils.utils import SystemMessage
from make_model_cards import render_card, render_index, write_cards


def _entry(model="resnet18", member="SIM_V1", seed=0):
    """A manifest entry shaped as experiments.train_bundled registers one."""
    meta = {
        "architecture": model,
        "bands": ["F275W", "F336W", "F438W", "F555W", "F814W"],
        "cutout_size": 31,
        "normalization": "asinh-v1",
        "categories": ["compact symmetric cluster", "compact asymmetric cluster",
                       "compact multi-peaked association", "not a cluster"],
        "label_set": "truth",
        "training_data": "astro_clustercls.simulation v1.0: 60000 simulated cutouts",
        "simulator_version": "1.0",
        "metrics": {
            "heldout_recall_truth": {"1": 0.812, "2": 0.4, "3": 0.555, "4": 0.7},
            "heldout_precision_truth": {"1": 0.7, "2": 0.5, "3": 0.6, "4": 0.8},
            "heldout_recall_consensus": {"1": 0.7, "2": 0.35, "3": 0.5, "4": 0.66},
            "heldout_accuracy_truth": 0.634, "heldout_accuracy_consensus": 0.58,
            "heldout_n": 8000,
            "heldout_galaxy": {"distance": 12.5, "background": "disk"},
            "val_ece": 0.0412, "val_ece_calibrated": 0.0123,
            "heldout_ece": 0.2345, "heldout_ece_calibrated": 0.1987,
        },
        "temperature": 1.2345,
        "license": "BSD-3-Clause",
        "num_params": 11172292,
        "recipe": {"arch": model, "epochs": 12, "lr": 0.001, "seed": seed,
                   "threads": 1},
        "notes": "Trained from scratch on simulated cutouts only.",
    }
    return json.loads(json.dumps({"model": model, "member": member,
                                  "path": f"{model}-{member}-0123abcd.safetensors",
                                  "sha256": "0123abcd" + "e" * 56, "meta": meta}))


def _parse(text):
    """Parse reST with docutils (Sphinx's :ref: as a plain role); raise on warnings."""
    roles.register_generic_role("ref", roles.nodes.emphasis)
    roles.register_generic_role("func", roles.nodes.literal)
    return publish_doctree(text, settings_overrides={"halt_level": 2,
                                                     "report_level": 2})


def test_card_content():
    text = render_card(_entry(), is_default=True)
    for expected in ("resnet18 SIM_V1 (default)", "ResNet18_Weights.DEFAULT",
                     "F275W, F336W, F438W, F555W, F814W", "31 x 31 px",
                     "``asinh-v1``", "11,172,292", "BSD-3-Clause",
                     "0123abcd" + "e" * 56, "simulator version", "1.0",
                     "**not** trained on real HST images",
                     "--arch resnet18 --member SIM_V1 --seed 0 --threads 1",
                     "fine-tune", "T = 1.234"):
        assert expected in text, expected
    # held-out recall of class 1 (81 %) beside the paper's 70 % and humans' 70-80 %
    row = next(line for line in text.splitlines() if line.startswith("| 1 "))
    assert "81 %" in row and "70 %" in row and "70-80 %" in row
    assert "Overall accuracy: 63 %" in text
    # calibration error before and after the temperature, per set
    row = next(line for line in text.splitlines() if "held-out galaxy" in line)
    assert "0.234" in row and "0.199" in row
    row = next(line for line in text.splitlines() if line.startswith("| validation"))
    assert "0.041" in row and "0.012" in row
    _parse(text)


def test_card_without_metrics_and_not_default():
    entry = _entry(member="SIM_V0")
    entry["meta"]["metrics"] = {}
    text = render_card(entry, is_default=False)
    assert "weights='SIM_V0'" in text and "(default)" not in text
    assert "No held-out figures" in text
    _parse(text)


def test_index_and_files(tmp_path):
    manifest = {"format": 1, "weights": [_entry(member="SIM_V0"), _entry(),
                                         _entry("vgg19_bn", seed=3)]}
    paths = write_cards(manifest, tmp_path)
    assert sorted(p.name for p in paths) == [
        "index.rst", "resnet18-sim_v0.rst", "resnet18-sim_v1.rst",
        "vgg19_bn-sim_v1.rst"]
    index = (tmp_path / "index.rst").read_text()
    assert ".. _model-cards:" in index and "resnet18-sim_v1\n" in index
    # the default of each model is its last entry, as in the registry
    assert "(default)" in (tmp_path / "resnet18-sim_v1.rst").read_text()
    assert "(default)" not in (tmp_path / "resnet18-sim_v0.rst").read_text()
    text = (tmp_path / "vgg19_bn-sim_v1.rst").read_text()
    assert "--arch vgg19_bn --member SIM_V1 --seed 3" in text
    assert ".. toctree::" in index
    _parse(index.split(".. toctree::")[0])  # toctree is Sphinx-only


def test_empty_index():
    text = render_index([])
    assert "No bundled weights are registered" in text
    _parse(text)


def test_parse_catches_bad_rst():
    with pytest.raises(SystemMessage):
        _parse("+---+\n| a |\n+--+\n")


def test_card_other_renderers_and_changes():
    entry = _entry()
    entry["meta"]["metrics"]["renderers"] = {
        "v2": {"n": 2000, "recall": {"1": 0.71, "2": 0.45, "3": 0.5, "4": 0.66},
               "accuracy": 0.6, "balanced_accuracy": 0.58, "ece": 0.0412},
        "galsim": {"n": 2000, "recall": {"1": 0.7, "2": 0.4, "3": 0.43, "4": 0.9},
                   "accuracy": 0.61, "balanced_accuracy": 0.6075, "ece": 0.2061},
    }
    entry["meta"]["changes"] = "Replaces SIM_V1: trained on simulator v2."
    text = render_card(entry)
    _parse(text)
    assert "Other renderers" in text and "What changed" in text
    assert "Replaces SIM_V1: trained on simulator v2." in text
    galsim = next(line for line in text.splitlines() if line.startswith("| GalSim"))
    cells = [c.strip() for c in galsim.strip("|").split("|")]
    assert cells == ["GalSim renderer", "2000", "70 %", "40 %", "43 %", "90 %",
                     "61 %", "0.206"]
    # without them, neither section
    plain = render_card(_entry())
    assert "Other renderers" not in plain and "What changed" not in plain
