# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Transfer between renderers: train on images one renderer made, test on
images of another that training never saw.

Three renderers draw physical descriptions of objects: ``'v1'`` and ``'v2'``,
the training simulator's two versions
(`~astro_clustercls.simulation.make_training_set`; each one's test set is its
held-out galaxy), and ``'galsim'``, the independent GalSim renderer
(`astro_clustercls.simulation.render_alt`, which shares no rendering code with
the simulator: its own profiles, PSF interpolation and correlated noise).
`cross_renderer` trains one network on each of some renderers and tests each
on all of them, and also tests the bundled networks, so the table shows how
much of a network's accuracy is its renderer's. `transfer_ablation` trains
the same network on v2 with one transfer augmentation
(`~astro_clustercls.training.augment.TransferAugmentation`) at a time, same
seed and data, and tests each on the held-out galaxy and on GalSim. Run
them with::

    astro-clustercls experiments cross --arch resnet18 --rst cross.rst
    astro-clustercls experiments ablation --arch resnet18 --rst ablation.rst

The GalSim renderer needs the ``galsim`` extra (``pip install galsim``).
"""

import numpy as np
import torch
from astropy.table import QTable

from .._constants import CLASSES
from ..inference.ensemble import combine_votes
from ..models import build_network, get_model
from ..training import LabelledCutouts, fit_temperature, train
from ..training.augment import TransferAugmentation, resolve_transfer
from ..utils._parameters import validate_choice
from ..utils._rst import grid_table
from .experiments import EXPERIMENT_RECIPES, _fmt_range
from .metrics import HUMAN_CONSISTENCY, PAPER_RESULTS
from .renderers import (
    RENDERER_NAMES,
    RENDERERS,
    _scores,
    predict_probs,
    renderer_sets,
)

__all__ = ["RENDERERS", "ABLATION_VARIANTS", "renderer_sets", "cross_renderer",
           "cross_to_rst", "transfer_ablation", "ablation_to_rst"]

#: the variants of `transfer_ablation`: none, each perturbation alone, all
ABLATION_VARIANTS = ("none", "blur", "shift", "gain", "noise", "gradient", "all")

_COLUMNS = ["network", "trained_on", "tested_on", *(f"recall_{c}" for c in CLASSES),
            "accuracy", "balanced_accuracy", "ece"]


def _row(network, trained_on, tested_on, probs, test_set, pred=None):
    scores = _scores(network, probs, test_set.true_labels, pred=pred)
    return [network, trained_on, tested_on, *scores[1:]]


def _train_on(arch, train_set, val_set, *, seed, epochs, device, progress_bar,
              transfer=None):
    """A network trained with the bundled recipe's settings, and its temperature."""
    recipe = EXPERIMENT_RECIPES[arch]
    norm = recipe.normalization
    data = LabelledCutouts(train_set.data, train_set.labels, normalize=norm,
                           augment=True, band_dropout=recipe.band_dropout, seed=seed,
                           transfer=transfer, bands=train_set.bands)
    val = LabelledCutouts(val_set.data, val_set.labels, normalize=norm,
                          bands=val_set.bands)
    torch.manual_seed(seed)
    model = build_network(arch, n_bands=len(train_set.bands), num_classes=len(CLASSES))
    result = train(model, data, val, epochs=epochs, batch_size=recipe.batch_size,
                   lr=recipe.lr, weight_decay=recipe.weight_decay,
                   optimizer=recipe.optimizer, schedule=recipe.schedule,
                   class_balance=recipe.class_balance, early_stopping=None, seed=seed,
                   device=device, progress_bar=progress_bar,
                   # bf16 only where it is native (emulated it is ~15x slower)
                   amp="auto" if recipe.amp else False, fused=recipe.fused_optimizer)
    _, logits = predict_probs(result.model, val_set.data, normalization=norm,
                              return_logits=True)
    return result.model, fit_temperature(logits, val_set.labels)


class _TestSets:
    """Test sets per (renderer, cutout size), made once."""

    def __init__(self, seed, n_test):
        self.seed, self.n_test, self._sets = seed, n_test, {}

    def __call__(self, renderer, size):
        if (renderer, size) not in self._sets:
            self._sets[renderer, size] = renderer_sets(
                renderer, size=size, seed=self.seed, n_train=0, n_val=0,
                n_test=self.n_test)[2]
        return self._sets[renderer, size]


def _bundled_rows(bundled, tested_on, tests, device):
    """
    Rows of the bundled networks (``DEFAULT`` weights) on every renderer, and
    of their ensemble (majority vote, `~astro_clustercls.inference.combine_votes`,
    as `~astro_clustercls.inference.ClusterEnsemble` combines them) where there
    are two or more with the same cutout size (the same objects).
    """
    rows, members = [], {}
    for name in bundled:
        net = get_model(name, weights="DEFAULT", device=device)
        meta = net.clustercls_meta
        s = int(meta["cutout_size"])
        version = str(meta.get("simulator_version", "1.0"))
        trained = {"1": "v1", "2": "v2"}.get(version.split(".")[0], version)
        for renderer in tested_on:
            test = tests(renderer, s)
            probs = predict_probs(net, test.data, normalization=meta["normalization"],
                                  temperature=float(meta.get("temperature", 1.0)))
            rows.append(_row(f"{name} {meta.get('weights', 'bundled')}", trained,
                             renderer, probs, test))
            members.setdefault((s, renderer), []).append((name, trained, probs))
    for (s, renderer), group in members.items():
        if len(group) < 2:
            continue
        probs = np.stack([p for *_, p in group], axis=1)  # (N, M, 4)
        votes = combine_votes(CLASSES[np.argmax(probs, axis=2)], probs)
        network = "ensemble of " + " + ".join(name for name, *_ in group)
        trained = " + ".join(dict.fromkeys(t for _, t, _ in group))
        rows.append(_row(network, trained, renderer, votes.class_prob,
                         tests(renderer, s), pred=np.asarray(votes.cluster_class)))
    return rows


def cross_renderer(arch="resnet18", *, trained_on=("v2", "galsim"),
                   tested_on=RENDERERS, transfer=None, size=31, seed=0, n_train=6000,
                   n_val=1000, n_test=2000, epochs=4, bundled=("resnet18", "vgg19_bn"),
                   device="cpu", progress_bar=False, threads=None):
    """
    Train on some renderers, test on all; test the bundled networks on all.

    Parameters
    ----------
    arch : {'resnet18', 'vgg19_bn'}, optional
        The architecture trained on each renderer (with its bundled recipe's
        settings, ``size``-pixel cutouts, ``n_train`` objects and ``epochs``).
    trained_on, tested_on : sequence of {'v1', 'v2', 'galsim'}, optional
        The renderers networks are trained on (default v2 and GalSim) and
        tested on (default all three).
    transfer : None, `TransferAugmentation`, preset name or dict, optional
        Transfer augmentation of the trained networks (default none).
    size : int, optional
        Cutout side of the trained networks (default 31).
    seed : int, optional
        Seed of all sets and trainings.
    n_train, n_val, n_test : int, optional
        Set sizes per renderer (validation fits each network's temperature);
        ``n_train=0`` tests the bundled networks only.
    epochs : int, optional
    bundled : sequence of str, optional
        Bundled networks (their ``DEFAULT`` weights) also tested on every
        renderer, at their own cutout size, and their ensemble (majority
        vote, as `~astro_clustercls.inference.ClusterEnsemble`) where two or
        more share a cutout size; ``()`` for none.
    device : str, optional
    progress_bar : bool, optional
    threads : int, optional
        torch CPU threads.

    Returns
    -------
    `~astropy.table.QTable`
        One row per (network, training renderer, test renderer): per-class
        recall against the true classes, accuracy, balanced accuracy and the
        expected calibration error (probabilities at the temperature fitted on
        the training renderer's validation set).
    """
    arch = validate_choice("arch", arch, tuple(EXPERIMENT_RECIPES))
    trained_on = [validate_choice("trained_on", r, RENDERERS) for r in trained_on]
    tested_on = [validate_choice("tested_on", r, RENDERERS) for r in tested_on]
    transfer = resolve_transfer(transfer)
    if threads:
        torch.set_num_threads(int(threads))
    tests = _TestSets(seed, n_test)
    rows = _bundled_rows(bundled, tested_on, tests, device)
    norm = EXPERIMENT_RECIPES[arch].normalization
    label = f"{arch} {size} px, {n_train} objects, {epochs} epochs" + (
        ", transfer augmentation" if transfer is not None else "")
    for renderer in trained_on if n_train else ():
        train_set, val_set, _ = renderer_sets(renderer, size=size, seed=seed,
                                              n_train=n_train, n_val=n_val, n_test=0)
        model, temperature = _train_on(arch, train_set, val_set, seed=seed,
                                       epochs=epochs, device=device,
                                       progress_bar=progress_bar, transfer=transfer)
        for test_renderer in tested_on:
            test = tests(test_renderer, size)
            probs = predict_probs(model, test.data, normalization=norm,
                                  temperature=temperature)
            rows.append(_row(label, renderer, test_renderer, probs, test))
    table = QTable(rows=rows, names=_COLUMNS) if rows else QTable(names=_COLUMNS)
    table.meta.update(arch=arch, cutout_size=size, seed=seed, n_train=n_train,
                      n_val=n_val, n_test=n_test, epochs=epochs,
                      trained_on=list(trained_on), tested_on=list(tested_on),
                      transfer=None if transfer is None else transfer.to_dict(),
                      bundled=list(bundled))
    return table


def _bounds_rows(n_lead, n_tail):
    lead = ("",) * (n_lead - 1)
    tail = ("",) * n_tail
    return [("Wei+2020, NGC 1559", *lead,
             *(_fmt_range(PAPER_RESULTS[c]) + " %" for c in CLASSES), *tail),
            ("human consistency", *lead,
             *(_fmt_range(HUMAN_CONSISTENCY[c]) + " %" for c in CLASSES), *tail)]


def _name(renderer):
    """A renderer's name in the tables (also of several, 'v2 + v1')."""
    return " + ".join(RENDERER_NAMES.get(r, r) for r in str(renderer).split(" + "))


def _pct(value):
    return f"{100 * float(value):.0f} %"


def cross_to_rst(table):
    """`cross_renderer`'s table as a reST grid table, with the paper's bounds."""
    header = ("network", "trained on", "tested on", "class 1", "class 2", "class 3",
              "class 4", "balanced", "ECE")
    rows = [(str(r["network"]), _name(r["trained_on"]), _name(r["tested_on"]),
             *(_pct(r[f"recall_{c}"]) for c in CLASSES),
             _pct(r["balanced_accuracy"]), f"{float(r['ece']):.3f}")
            for r in table]
    return grid_table(header, rows + _bounds_rows(3, 2)) + "\n"


def _variant(name):
    if name == "none":
        return None
    if name == "all":
        return TransferAugmentation()
    return TransferAugmentation().only(name)


def transfer_ablation(arch="resnet18", *, variants=ABLATION_VARIANTS,
                      tested_on=("v2", "galsim"), size=31, seed=0, n_train=6000,
                      n_val=1000, n_test=2000, epochs=4, device="cpu",
                      progress_bar=False, threads=None):
    """
    Train on simulator v2 with one transfer augmentation at a time.

    Every network has the same seed, data and schedule (the bundled recipe's
    settings); only the transfer augmentation differs: none, each
    perturbation of `~astro_clustercls.training.augment.TransferAugmentation`
    alone (at its default range), or all of them.

    Parameters
    ----------
    arch : {'resnet18', 'vgg19_bn'}, optional
    variants : sequence of str, optional
        Names from `ABLATION_VARIANTS`.
    tested_on : sequence of {'v1', 'v2', 'galsim'}, optional
        Test renderers (default v2's held-out galaxy and GalSim).
    size, seed, n_train, n_val, n_test, epochs, device, progress_bar, threads
        As for `cross_renderer`.

    Returns
    -------
    `~astropy.table.QTable`
        One row per (variant, test renderer), the columns of `cross_renderer`
        with ``network`` holding the variant's name.
    """
    arch = validate_choice("arch", arch, tuple(EXPERIMENT_RECIPES))
    variants = [validate_choice("variants", v, ABLATION_VARIANTS) for v in variants]
    tested_on = [validate_choice("tested_on", r, RENDERERS) for r in tested_on]
    if threads:
        torch.set_num_threads(int(threads))
    train_set, val_set, _ = renderer_sets("v2", size=size, seed=seed, n_train=n_train,
                                          n_val=n_val, n_test=0)
    tests = _TestSets(seed, n_test)
    norm = EXPERIMENT_RECIPES[arch].normalization
    rows = []
    for name in variants:
        model, temperature = _train_on(arch, train_set, val_set, seed=seed,
                                       epochs=epochs, device=device,
                                       progress_bar=progress_bar,
                                       transfer=_variant(name))
        for renderer in tested_on:
            test = tests(renderer, size)
            probs = predict_probs(model, test.data, normalization=norm,
                                  temperature=temperature)
            rows.append(_row(name, "v2", renderer, probs, test))
    table = QTable(rows=rows, names=_COLUMNS)
    table.meta.update(arch=arch, cutout_size=size, seed=seed, n_train=n_train,
                      n_val=n_val, n_test=n_test, epochs=epochs,
                      tested_on=list(tested_on),
                      augmentation=TransferAugmentation().to_dict())
    return table


def ablation_to_rst(table):
    """`transfer_ablation`'s table as a reST grid table."""
    header = ("augmentation", "tested on", "class 1", "class 2", "class 3", "class 4",
              "balanced", "ECE")
    rows = [(str(r["network"]), _name(r["tested_on"]),
             *(_pct(r[f"recall_{c}"]) for c in CLASSES),
             _pct(r["balanced_accuracy"]), f"{float(r['ece']):.3f}")
            for r in table]
    return grid_table(header, rows + _bounds_rows(2, 2)) + "\n"
