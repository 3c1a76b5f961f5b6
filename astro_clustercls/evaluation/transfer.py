# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Transfer between renderers: train on images one renderer made, test on
images of another that training never saw.

Two renderers draw the same physical descriptions of objects
(`~astro_clustercls.simulation.draw_population`): ``'simulator'``, the
training simulator (`~astro_clustercls.simulation.make_training_set`; its test
set is the held-out galaxy), and ``'galsim'``, the independent GalSim renderer
(`astro_clustercls.simulation.render_alt`, which shares no rendering code with
the simulator: its own profiles, PSFs and correlated noise). `cross_renderer`
trains one network on each and tests both on both, and also tests the bundled
networks on both, so the table shows how much of a network's accuracy is its
renderer's. Run it with::

    astro-clustercls experiments cross --arch resnet18 --rst cross.rst

The GalSim renderer needs the ``galsim`` extra (``pip install galsim``).
"""

import importlib

import torch
from astropy.table import QTable

from .._constants import CLASSES, DEFAULT_BANDS
from ..models import build_network, get_model
from ..simulation import make_training_set
from ..training import LabelledCutouts, fit_temperature, train
from ..utils._parameters import validate_choice
from ..utils._rst import grid_table
from .experiments import (
    BUNDLED_RECIPES,
    _fmt_range,
    _scores,
    _split_rngs,
    predict_probs,
)
from .metrics import HUMAN_CONSISTENCY, PAPER_RESULTS

__all__ = ["RENDERERS", "renderer_sets", "cross_renderer", "cross_to_rst"]

#: the renderers a network can be trained and tested on
RENDERERS = ("simulator", "galsim")

_COLUMNS = ["network", "trained_on", "tested_on", *(f"recall_{c}" for c in CLASSES),
            "accuracy", "balanced_accuracy", "ece"]


def _render_alt():
    """The GalSim renderer, with a clear error where GalSim is not installed."""
    try:
        return importlib.import_module("astro_clustercls.simulation.render_alt")
    except ImportError as exc:  # galsim is optional
        raise ImportError("the 'galsim' renderer needs GalSim: pip install galsim "
                          f"(or astro-clustercls[galsim]); {exc}") from None


def renderer_sets(renderer, *, size, seed, n_train, n_val, n_test,
                  bands=DEFAULT_BANDS):
    """
    Training, validation and test sets from one renderer.

    Parameters
    ----------
    renderer : {'simulator', 'galsim'}
    size : int
        Cutout side in pixels.
    seed : int
        Each set gets its own generator derived from it.
    n_train, n_val, n_test : int
        Set sizes (0 gives None for that set).
    bands : sequence of str, optional

    Returns
    -------
    train, val, test : `~astro_clustercls.simulation.TrainingSet` or None
        For ``'simulator'``: training and validation sets from the training
        galaxies with varied observing conditions, the test set from the
        held-out galaxy (true classes in ``true_labels``). For ``'galsim'``:
        three class-balanced sets.
    """
    renderer = validate_choice("renderer", renderer, RENDERERS)
    rngs = _split_rngs(seed)
    sizes = (n_train, n_val, n_test)
    if renderer == "simulator":
        def training(n, rng):
            return make_training_set(n, size, rng, bands=bands, vary_conditions=True)

        make = [training, training,
                lambda n, rng: make_training_set(n, size, rng, bands=bands,
                                                 held_out=True)]
    else:
        make_test_set = _render_alt().make_test_set
        make = [lambda n, r: make_test_set(n, size, r, bands=bands)] * 3
    return tuple(m(n, r) if n else None
                 for m, n, r in zip(make, sizes, rngs, strict=True))


def _row(network, trained_on, tested_on, probs, test_set):
    scores = _scores(network, probs, test_set.true_labels)
    return [network, trained_on, tested_on, *scores[1:]]


def _train_on(arch, train_set, val_set, *, seed, epochs, device, progress_bar):
    """A network trained with the bundled recipe's settings, and its temperature."""
    recipe = BUNDLED_RECIPES[arch]
    norm = recipe.normalization
    data = LabelledCutouts(train_set.data, train_set.labels, normalize=norm,
                           augment=True, band_dropout=recipe.band_dropout, seed=seed,
                           bands=train_set.bands)
    val = LabelledCutouts(val_set.data, val_set.labels, normalize=norm,
                          bands=val_set.bands)
    torch.manual_seed(seed)
    model = build_network(arch, n_bands=len(train_set.bands), num_classes=len(CLASSES))
    result = train(model, data, val, epochs=epochs, batch_size=recipe.batch_size,
                   lr=recipe.lr, weight_decay=recipe.weight_decay,
                   optimizer=recipe.optimizer, schedule=recipe.schedule,
                   class_balance=recipe.class_balance, early_stopping=None, seed=seed,
                   device=device, progress_bar=progress_bar, amp=recipe.amp,
                   fused=recipe.fused_optimizer)
    _, logits = predict_probs(result.model, val_set.data, normalization=norm,
                              return_logits=True)
    return result.model, fit_temperature(logits, val_set.labels)


def cross_renderer(arch="resnet18", *, size=31, seed=0, n_train=6000, n_val=1000,
                   n_test=2000, epochs=4, bundled=("resnet18", "vgg19_bn"),
                   device="cpu", progress_bar=False, threads=None):
    """
    Train on each renderer, test on both; test the bundled networks on both.

    Parameters
    ----------
    arch : {'resnet18', 'vgg19_bn'}, optional
        The architecture trained on each renderer (with its bundled recipe's
        settings, ``size``-pixel cutouts, ``n_train`` objects and ``epochs``).
    size : int, optional
        Cutout side of the trained networks (default 31).
    seed : int, optional
        Seed of all sets and trainings.
    n_train, n_val, n_test : int, optional
        Set sizes per renderer (validation fits each network's temperature);
        ``n_train=0`` tests the bundled networks only.
    epochs : int, optional
    bundled : sequence of str, optional
        Bundled networks (their ``DEFAULT`` weights) also tested on both
        renderers, at their own cutout size; ``()`` for none.
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
    arch = validate_choice("arch", arch, tuple(BUNDLED_RECIPES))
    if threads:
        torch.set_num_threads(int(threads))
    rows = []
    tests = {}
    for name in bundled:
        net = get_model(name, weights="DEFAULT", device=device)
        meta = net.clustercls_meta
        s = int(meta["cutout_size"])
        for renderer in RENDERERS:
            if (renderer, s) not in tests:
                tests[renderer, s] = renderer_sets(renderer, size=s, seed=seed,
                                                   n_train=0, n_val=0,
                                                   n_test=n_test)[2]
            probs = predict_probs(net, tests[renderer, s].data,
                                  normalization=meta["normalization"],
                                  temperature=float(meta.get("temperature", 1.0)))
            rows.append(_row(f"{name} {meta.get('weights', 'bundled')}", "simulator",
                             renderer, probs, tests[renderer, s]))
    sets = {r: renderer_sets(r, size=size, seed=seed, n_train=n_train, n_val=n_val,
                             n_test=n_test) for r in RENDERERS} if n_train else {}
    norm = BUNDLED_RECIPES[arch].normalization
    for trained_on in sets:
        train_set, val_set, _ = sets[trained_on]
        model, temperature = _train_on(arch, train_set, val_set, seed=seed,
                                       epochs=epochs, device=device,
                                       progress_bar=progress_bar)
        for tested_on in RENDERERS:
            test = sets[tested_on][2]
            probs = predict_probs(model, test.data, normalization=norm,
                                  temperature=temperature)
            rows.append(_row(f"{arch} {size} px, {n_train} objects, {epochs} epochs",
                             trained_on, tested_on, probs, test))
    table = QTable(rows=rows, names=_COLUMNS) if rows else QTable(names=_COLUMNS)
    table.meta.update(arch=arch, cutout_size=size, seed=seed, n_train=n_train,
                      n_val=n_val, n_test=n_test, epochs=epochs,
                      bundled=list(bundled))
    return table


def cross_to_rst(table):
    """`cross_renderer`'s table as a reST grid table, with the paper's bounds."""
    header = ("network", "trained on", "tested on", "class 1", "class 2", "class 3",
              "class 4", "overall", "ECE")
    rows = [(str(r["network"]), str(r["trained_on"]), str(r["tested_on"]),
             *(f"{100 * float(r[f'recall_{c}']):.0f} %" for c in CLASSES),
             f"{100 * float(r['accuracy']):.0f} %", f"{float(r['ece']):.3f}")
            for r in table]
    rows.append(("Wei+2020, NGC 1559", "", "",
                 *(_fmt_range(PAPER_RESULTS[c]) + " %" for c in CLASSES), "", ""))
    rows.append(("human consistency", "", "",
                 *(_fmt_range(HUMAN_CONSISTENCY[c]) + " %" for c in CLASSES), "", ""))
    return grid_table(header, rows) + "\n"
