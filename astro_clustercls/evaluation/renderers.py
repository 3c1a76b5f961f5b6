# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The renderers networks are judged on, and how a network scores on each.

``'v1'`` and ``'v2'`` are the training simulator's versions
(`~astro_clustercls.simulation.make_training_set`; each one's test set is its
held-out galaxy); ``'galsim'`` is the independent GalSim renderer
(`astro_clustercls.simulation.render_alt`, the ``galsim`` extra).
`renderer_sets` makes training, validation and test sets from one of them;
`renderer_metrics` scores a network on the test sets of several (per-class
recall, balanced accuracy, calibration error), as recorded in the bundled
weights' meta and model cards. `predict_probs` runs a network on raw cutouts.
"""

import importlib

import numpy as np
import torch

from .._constants import CLASSES, DEFAULT_BANDS
from ..preprocessing import normalize
from ..simulation import make_training_set
from ..training import predict_logits
from ..utils._parameters import validate_choice
from .metrics import expected_calibration_error, per_class_accuracy

__all__ = ["RENDERERS", "RENDERER_NAMES", "renderer_sets", "renderer_metrics",
           "predict_probs"]

#: the renderers a network can be trained and tested on
RENDERERS = ("v1", "v2", "galsim")

#: what each renderer is called in the tables
RENDERER_NAMES = {"v1": "simulator v1", "v2": "simulator v2", "galsim": "GalSim"}


def _split_rngs(seed):
    """The generators of the training, validation and held-out sets of a seed."""
    seeds = np.random.SeedSequence(seed).spawn(3)
    return tuple(np.random.default_rng(s) for s in seeds)


def predict_probs(model, data, *, normalization="asinh-v1", batch_size=256,
                  device="cpu", temperature=1.0, tta=False, return_logits=False):
    """
    Class probabilities of a network for an (N, B, S, S) array of raw cutouts.

    Each object is normalised on its own (the result does not depend on the
    batch), then `~astro_clustercls.training.predict_logits` runs the network.

    Parameters
    ----------
    model : torch.nn.Module
    data : ndarray (N, B, S, S)
        Raw cutouts (NaN where there are no pixels).
    normalization : str, optional
        The network's normalisation recipe.
    batch_size, device : optional
        See `~astro_clustercls.training.predict_logits`.
    temperature : float, optional
        Divide the logits by this before the softmax (temperature scaling).
    tta : bool, optional
        Average the probabilities over the 8 rotations/flips (the package's
        convention, `~astro_clustercls.runtime.tta_probabilities`).
    return_logits : bool, optional
        Also return the logits (before the temperature; with ``tta``, the
        logarithm of the averaged probabilities).

    Returns
    -------
    probs : ndarray (N, 4) float32
    logits : ndarray (N, 4) float32
        Only with ``return_logits``.
    """
    # with TTA the logits are the log of the averaged probabilities at the
    # temperature (the package's convention, as ClusterClassifier(tta=True))
    logits = predict_logits(model, normalize(data, recipe=normalization),
                            batch_size=batch_size, device=device, tta=tta,
                            temperature=temperature)
    scale = 1.0 if tta else float(temperature)
    probs = torch.softmax(torch.from_numpy(logits) / scale, dim=1).numpy()
    return (probs, logits) if return_logits else probs


def _scores(name, probs, true, pred=None):
    """Recall per class, accuracy, balanced accuracy and ECE (``pred``: argmax)."""
    pred = CLASSES[np.argmax(probs, axis=1)] if pred is None else pred
    rec = per_class_accuracy(true, pred)
    return [name, *(float(r) for r in rec), float(np.mean(pred == true)),
            float(np.nanmean(np.asarray(rec, float))),
            float(expected_calibration_error(probs, true))]


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
    renderer : {'v1', 'v2', 'galsim'}
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
        For the simulator (``'v1'``, ``'v2'``): training and validation sets
        from the training galaxies with varied observing conditions (v1) or
        v2's domain randomisation, the test set from that version's held-out
        galaxy (true classes in ``true_labels``). For ``'galsim'``: three
        class-balanced sets.
    """
    renderer = validate_choice("renderer", renderer, RENDERERS)
    rngs = _split_rngs(seed)
    sizes = (n_train, n_val, n_test)
    if renderer in ("v1", "v2"):
        def training(n, rng):
            return make_training_set(n, size, rng, bands=bands, simulator=renderer,
                                     vary_conditions=True)

        make = [training, training,
                lambda n, rng: make_training_set(n, size, rng, bands=bands,
                                                 simulator=renderer, held_out=True)]
    else:
        make_test_set = _render_alt().make_test_set
        make = [lambda n, r: make_test_set(n, size, r, bands=bands)] * 3
    return tuple(m(n, r) if n else None
                 for m, n, r in zip(make, sizes, rngs, strict=True))


def galsim_available():
    """Whether the GalSim renderer can run here (GalSim installed)."""
    try:
        _render_alt()
    except ImportError:
        return False
    return True


def renderer_metrics(net, *, meta=None, renderers=RENDERERS, n_test=2000, seed=0,
                     batch_size=256, device="cpu"):
    """
    Scores of a network on the test sets of several renderers.

    Parameters
    ----------
    net : `torch.nn.Module`
        A network from `~astro_clustercls.models.get_model` (its
        ``clustercls_meta`` gives the cutout size, bands, normalisation and
        temperature), or any network with such a ``clustercls_meta``.
    meta : dict, optional
        Those entries, for a network without ``clustercls_meta``.
    renderers : sequence of {'v1', 'v2', 'galsim'}, optional
        ``'galsim'`` is skipped where GalSim is not installed.
    n_test : int, optional
        Objects per test set (default 2000).
    seed : int, optional
        Seed of the test sets (`renderer_sets`).

    Returns
    -------
    dict
        Renderer -> ``{'n', 'recall' (class -> recall), 'accuracy',
        'balanced_accuracy', 'ece'}`` (probabilities at the network's
        temperature), JSON-able.
    """
    meta = net.clustercls_meta if meta is None else meta
    size, bands = int(meta["cutout_size"]), tuple(meta["bands"])
    out = {}
    for renderer in renderers:
        renderer = validate_choice("renderers", renderer, RENDERERS)
        if renderer == "galsim" and not galsim_available():
            continue
        test = renderer_sets(renderer, size=size, seed=seed, n_train=0, n_val=0,
                             n_test=n_test, bands=bands)[2]
        probs = predict_probs(net, test.data, normalization=meta["normalization"],
                              temperature=float(meta.get("temperature", 1.0)),
                              batch_size=batch_size, device=device)
        _, *rec, acc, bal, ece = _scores("", probs, test.true_labels)
        out[renderer] = {"n": int(len(test.true_labels)),
                         "recall": {int(c): round(r, 4)
                                    for c, r in zip(CLASSES, rec, strict=True)},
                         "accuracy": round(acc, 4), "balanced_accuracy": round(bal, 4),
                         "ece": round(ece, 4)}
    return out
