# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Fit a network's out-of-distribution statistics and measure the flag's rates.

`fit_ood` fits `~astro_clustercls.models.FeatureStatistics` on simulated
objects like the network's training data (the simulator version of its
meta, with varied observing conditions; the network's normalisation), with
the threshold that a fraction ``fpr`` of other such objects exceeds.
`ood_rates` measures how often the flag fires on that simulator version's
held-out galaxy, on the independent GalSim renderer (when installed) and on
the sets of
`astro_clustercls.evaluation.ood_sets`. For a bundled network, run::

    astro-clustercls experiments ood --arch resnet18 --register
"""

import importlib

import numpy as np
from astropy.table import QTable

from ..models import fit_feature_statistics, stage_features
from ..models._ood import DETECTION_SIGMA
from ..preprocessing import normalize
from ..simulation import make_training_set
from ..utils._rst import grid_table
from .experiments import _split_rngs
from .ood_sets import make_ood_sets

__all__ = ["fit_ood", "ood_scores", "ood_rates", "ood_to_rst"]


def _batches(data, recipe, batch_size):
    for start in range(0, len(data), batch_size):
        yield normalize(data[start:start + batch_size], recipe)


def ood_scores(net, stats, data, *, batch_size=256):
    """OOD scores (N,) of raw cutouts, normalised with the network's recipe."""
    recipe = net.clustercls_meta["normalization"]
    return stats.score(stage_features(net, _batches(data, recipe, batch_size)))


def _simulator_of(meta):
    """The simulator version the network was trained on (its meta; v1 if unsaid)."""
    return str(meta.get("simulator_version") or "1.0")


def fit_ood(net, *, n_train=6000, n_val=3000, seed=0, n_components=32, fpr=0.01,
            batch_size=256):
    """
    Fit the OOD statistics of ``net`` on simulated objects of its training kind.

    Parameters
    ----------
    net : `torch.nn.Module`
        A network from `~astro_clustercls.models.get_model` (its
        ``clustercls_meta`` gives the cutout size, bands and normalisation).
    n_train, n_val : int, optional
        Objects for the Gaussians and for the scales and threshold.
    seed : int, optional
    n_components : int, optional
    fpr : float, optional
        The fraction of validation objects flagged.

    Returns
    -------
    `~astro_clustercls.models.FeatureStatistics`
    """
    meta = net.clustercls_meta
    size, bands = int(meta["cutout_size"]), tuple(meta["bands"])
    r_train, r_val, _ = _split_rngs(seed)
    net.eval()
    feats = []
    for n, rng in ((n_train, r_train), (n_val, r_val)):
        ts = make_training_set(n, size, rng, bands=bands, vary_conditions=True,
                               simulator=_simulator_of(meta))
        feats.append(stage_features(net, _batches(ts.data, meta["normalization"],
                                                  batch_size)))
    return fit_feature_statistics(*feats, n_components=n_components, fpr=fpr,
                                  detection_sigma=DETECTION_SIGMA)


def ood_rates(net, stats, *, n=1000, seed=1, galsim=True, variants=True,
              batch_size=256):
    """
    How often the flag fires on in- and out-of-distribution sets.

    The sets are made from ``n`` objects of the simulator's held-out galaxy
    (seed ``seed``): the galaxy itself, ``n`` objects of the GalSim renderer
    (when installed), the sets of `~astro_clustercls.evaluation.ood_sets`
    and, with ``variants``, its ``OOD_VARIANTS``.

    Returns
    -------
    `~astropy.table.QTable`
        ``set``, ``kind`` ('in' for the held-out galaxy and the second
        renderer, 'out' for the OOD sets), ``n``, ``flagged`` (fraction with
        score > 1) and ``median_score``.
    """
    meta = net.clustercls_meta
    size, bands = int(meta["cutout_size"]), tuple(meta["bands"])
    held = make_training_set(n, size, seed, bands=bands, held_out=True,
                             simulator=_simulator_of(meta))
    sets = {"simulator, held-out galaxy": ("in", held.data)}
    if galsim:
        try:
            render_alt = importlib.import_module(
                "astro_clustercls.simulation.render_alt")
        except ImportError:  # galsim is optional
            render_alt = None
        if render_alt is not None:
            sets["GalSim renderer"] = ("in", render_alt.make_test_set(
                n, size, seed, bands=bands).data)
    for name, data in make_ood_sets(held.data, seed=seed, variants=variants).items():
        sets[name] = ("out", data)
    rows = []
    for name, (kind, data) in sets.items():
        score = ood_scores(net, stats, data, batch_size=batch_size)
        rows.append([name, kind, len(data), float(np.mean(score > 1)),
                     float(np.median(score))])
    return QTable(rows=rows, names=["set", "kind", "n", "flagged", "median_score"])


def ood_to_rst(table):
    """`ood_rates`'s table as a reST grid table."""
    rows = [(str(r["set"]), "yes" if r["kind"] == "out" else "no", str(int(r["n"])),
             f"{100 * float(r['flagged']):.1f} %", f"{float(r['median_score']):.2f}")
            for r in table]
    return grid_table(("set", "unlike the training data", "objects", "flagged",
                       "median score"), rows) + "\n"
