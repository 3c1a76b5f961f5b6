# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Write the model cards of the bundled networks from their weights' meta.

One page per entry of the bundled-weights manifest
(``astro_clustercls/models/data/manifest.json``), plus the index::

    python docs/models/make_model_cards.py            # into docs/models/
    python docs/models/make_model_cards.py --manifest other.json --outdir /tmp/cards

Everything on a card comes from the manifest entry (the meta stored in the
weights file when it was registered); nothing is typed by hand. Run it after
registering new weights.
"""

import argparse
import json
import sys
from pathlib import Path

from astro_clustercls._constants import CLASS_NAMES
from astro_clustercls.evaluation.metrics import HUMAN_CONSISTENCY as HUMAN
from astro_clustercls.evaluation.metrics import PAPER_RESULTS as PAPER
from astro_clustercls.utils._rst import grid_table

HERE = Path(__file__).resolve().parent


INDEX_HEAD = """\
.. _model-cards:

***********
Model cards
***********

One page per bundled network, generated from the meta stored with its weights
by ``docs/models/make_model_cards.py`` (run it again after registering new
weights). The bundled networks are a starting point to fine-tune on real
labelled catalogs (:ref:`tutorial-fine-tune`): they were trained on simulated
images only, with no real HST image, no human label and no ImageNet weights.
"""


#: the test sets of `astro_clustercls.evaluation.renderers`, as the cards name them
RENDERERS = {"v1": "simulator v1, held-out galaxy",
             "v2": "simulator v2, held-out galaxy", "galsim": "GalSim renderer"}


def _title(text, char="*", over=True):
    line = char * len(text)
    return f"{line}\n{text}\n{line}\n" if over else f"{text}\n{line}\n"


def _pct(value):
    if value is None:
        return "--"
    return f"{100 * float(value):.0f} %"


def _range(pair):
    lo, hi = (100 * float(v) for v in pair)
    return f"{lo:.0f} %" if lo == hi else f"{lo:.0f}-{hi:.0f} %"


def _by_class(mapping):
    """{int class: value} from a meta dict keyed by '1'..'4' (JSON) or ints."""
    return {int(k): v for k, v in (mapping or {}).items()}


def _table(header, rows):
    """A reST grid table, newline-terminated."""
    return grid_table(header, rows) + "\n"


def card_name(entry):
    """File name (without .rst) of an entry's card."""
    return f"{entry['model']}-{entry['member'].lower()}"


def render_card(entry, *, is_default=False):
    """The reST model card of one manifest entry."""
    meta = entry["meta"]
    model, member = entry["model"], entry["member"]
    enum = {"resnet18": "ResNet18_Weights", "vgg19_bn": "VGG19_BN_Weights"}.get(
        model, model)
    metrics = meta.get("metrics") or {}
    recipe = meta.get("recipe") or {}
    seed = recipe.get("seed")
    categories = meta.get("categories") or list(CLASS_NAMES)
    out = [f".. _model-card-{card_name(entry)}:\n",
           _title(f"{model} {member}" + (" (default)" if is_default else ""))]
    out.append(
        f"``ClusterClassifier('{model}'"
        + ("" if is_default else f", weights='{member}'") + ")`` uses these "
        f"weights (``{enum}.{member}``"
        + (f", also ``{enum}.DEFAULT``" if is_default else "") + ").\n")
    if meta.get("notes"):
        out.append(f".. note::\n\n   {meta['notes']}\n")

    out.append(_title("The network", "=", over=False))
    bands = ", ".join(meta.get("bands") or [])
    out.append(_table(["property", "value"], [
        ["architecture", meta.get("architecture", model)],
        ["parameters", f"{meta['num_params']:,}" if meta.get("num_params") else "--"],
        ["input bands (in order)", bands],
        ["cutout size", f"{meta.get('cutout_size')} x {meta.get('cutout_size')} px"],
        ["normalisation", f"``{meta.get('normalization')}`` (per object)"],
        ["classes", "; ".join(f"{i} {n}" for i, n in enumerate(categories, 1))],
        ["label set", meta.get("label_set", "--")],
        ["simulator version", meta.get("simulator_version", "--")],
        ["licence", meta.get("license", "--")],
        ["file", f"``{entry['path']}``"],
        ["SHA-256", f"``{entry['sha256']}``"],
    ]))

    out.append(_title("Training data", "=", over=False))
    out.append(f"{meta.get('training_data', 'not recorded')}\n")
    out.append("It was **not** trained on real HST images, on human labels, or "
               "from ImageNet weights: its accuracy on real images is unmeasured.\n")

    out.append(_title("Held-out evaluation", "=", over=False))
    truth = _by_class(metrics.get("heldout_recall_truth"))
    cons = _by_class(metrics.get("heldout_recall_consensus"))
    prec = _by_class(metrics.get("heldout_precision_truth"))
    if truth:
        galaxy = metrics.get("heldout_galaxy") or {}
        where = ", ".join(f"{k} {v}" for k, v in galaxy.items())
        out.append(
            f"On {metrics.get('heldout_n', '?')} cutouts of a simulated galaxy left "
            "out of training" + (f" ({where})" if where else "") + ". Recall is the "
            "per-class accuracy of Wei et al. (2020); *consensus* compares with "
            "the labels a consensus of three simulated experts would give.\n")
        rows = [[c, CLASS_NAMES[c - 1], _pct(truth.get(c)), _pct(prec.get(c)),
                 _pct(cons.get(c)), _range(PAPER[c]), _range(HUMAN[c])]
                for c in (1, 2, 3, 4)]
        out.append(_table(["class", "name", "recall", "precision",
                           "recall (consensus)", "Wei+2020 (NGC 1559)",
                           "human consistency"], rows))
        acc = metrics.get("heldout_accuracy_truth")
        if acc is not None:
            out.append(f"Overall accuracy: {_pct(acc)} (against consensus labels: "
                       f"{_pct(metrics.get('heldout_accuracy_consensus'))}).\n")
    else:
        out.append("No held-out figures are recorded in this network's meta.\n")
    if meta.get("temperature") is not None:
        out.append(_title("Calibration", "=", over=False))
        out.append(
            f"The classifier divides the logits by the temperature T = "
            f"{float(meta['temperature']):.3f} fitted on the validation set "
            "(:func:`~astro_clustercls.training.fit_temperature`), which changes "
            "the probabilities but never the labels. Expected calibration error "
            "(10 bins):\n")
        out.append(_table(["set", "T = 1", f"T = {float(meta['temperature']):.3f}"], [
            [name, f"{metrics.get(f'{key}_ece', float('nan')):.3f}",
             f"{metrics.get(f'{key}_ece_calibrated', float('nan')):.3f}"]
            for key, name in (("val", "validation (training galaxies)"),
                              ("heldout", "held-out galaxy"))]))

    renderers = metrics.get("renderers") or {}
    if renderers:
        out.append(_title("Other renderers", "=", over=False))
        out.append(
            "The same network on the test sets of other renderers "
            "(:ref:`transfer`): the simulator's v1 and v2 held-out galaxies and "
            "the independent GalSim renderer, which no training run ever saw. "
            "Recall per class against the true classes; ECE of the probabilities "
            "at the temperature above.\n")
        rows = [[RENDERERS.get(name, name), str(m.get("n", "--")),
                 *(_pct(_by_class(m.get("recall")).get(c)) for c in (1, 2, 3, 4)),
                 _pct(m.get("balanced_accuracy")), f"{float(m.get('ece')):.3f}"]
                for name, m in renderers.items()]
        rows.append(["Wei+2020 (NGC 1559)", "", *(_range(PAPER[c]) for c in
                                                  (1, 2, 3, 4)), "", ""])
        out.append(_table(["test set", "objects", "class 1", "class 2", "class 3",
                           "class 4", "balanced", "ECE"], rows))
    if meta.get("changes"):
        out.append(_title("What changed", "=", over=False))
        out.append(f"{meta['changes']}\n")

    out.append(_title("Intended use", "=", over=False))
    out.append(
        "A starting point to fine-tune on real labelled catalogs "
        "(:ref:`tutorial-fine-tune`), and a baseline to classify simulated or "
        "real fields whose results are then checked against labels. Do not use "
        "its classes on real images as science results without such a check.\n")

    out.append(_title("How to reproduce", "=", over=False))
    out.append("::\n\n    astro-clustercls experiments bundled "
               f"--arch {model} --member {member}"
               + (f" --seed {seed}" if seed is not None else "")
               + (f" --threads {recipe['threads']}" if recipe.get("threads") else "")
               + "\n")
    if recipe:
        out.append("The recipe recorded with the weights:\n")
        out.append(_table(["setting", "value"],
                          [[k, f"``{json.dumps(v)}``"] for k, v in recipe.items()]))
    return "\n".join(out)


def render_index(entries):
    """The reST index of the model cards."""
    out = [INDEX_HEAD]
    if not entries:
        out.append("No bundled weights are registered in this version of the "
                   "package yet, so there is no card. Once weights are "
                   "registered (``astro-clustercls experiments bundled "
                   "--arch resnet18 --seed 0 --register``), run "
                   "``python docs/models/make_model_cards.py``.\n")
        return "\n".join(out)
    defaults = _defaults(entries)
    rows = []
    for e in entries:
        m = e["meta"]
        metrics = m.get("metrics") or {}
        acc = metrics.get("heldout_accuracy_truth")
        galsim = (metrics.get("renderers") or {}).get("galsim") or {}
        rows.append([f":ref:`{e['model']} {e['member']} <model-card-{card_name(e)}>`",
                     "yes" if defaults[e["model"]] is e else "",
                     ", ".join(m.get("bands") or []), m.get("cutout_size", "--"),
                     m.get("simulator_version", "--"), _pct(acc),
                     _pct(galsim.get("balanced_accuracy"))])
    out.append(_table(["network", "default", "bands", "cutout (px)", "simulator",
                       "held-out accuracy (its simulator)",
                       "GalSim balanced accuracy"], rows))
    out.append(".. toctree::\n   :maxdepth: 1\n   :hidden:\n\n"
               + "".join(f"   {card_name(e)}\n" for e in entries))
    return "\n".join(out)


def _defaults(entries):
    """The DEFAULT entry of each model: its last one (as the registry)."""
    return {e["model"]: e for e in entries}


def write_cards(manifest, outdir):
    """Write index.rst and one card per entry into ``outdir``; return the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    entries = list(manifest.get("weights", []))
    defaults = _defaults(entries)
    written = []
    for e in entries:
        path = outdir / f"{card_name(e)}.rst"
        path.write_text(render_card(e, is_default=defaults[e["model"]] is e),
                        encoding="utf-8")
        written.append(path)
    index = outdir / "index.rst"
    index.write_text(render_index(entries), encoding="utf-8")
    return [index] + written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default=None,
                        help="manifest.json (default: the installed package's)")
    parser.add_argument("--outdir", default=str(HERE))
    args = parser.parse_args(argv)
    if args.manifest is None:
        from astro_clustercls.models import _api

        manifest = _api._read_manifest()
    else:
        manifest = json.loads(Path(args.manifest).read_text(encoding="utf-8"))
    for path in write_cards(manifest, args.outdir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
