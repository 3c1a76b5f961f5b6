# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""`classify_sources`: classify in one call, with one network or an ensemble."""

from .classifier import ClusterClassifier
from .ensemble import ClusterEnsemble

__all__ = ["classify_sources"]


def classify_sources(sources, images, *, model="resnet18", xcol=None, ycol=None,
                     skycol=None, origin=0, **kwargs):
    """
    Classify in one call: ``ClusterClassifier(model, **kwargs)(sources, images)``.

    Parameters
    ----------
    sources, images, xcol, ycol, skycol, origin
        See `~astro_clustercls.ClusterClassifier.classify`.
    model : str, or list or tuple, optional
        Network name (default ``'resnet18'``). A list or tuple of two or more
        members (names, ``(name, weights)`` pairs or classifiers) classifies
        with an ensemble instead:
        ``astro_clustercls.inference.ensemble.ClusterEnsemble(model, **kwargs)``, whose
        table also has ``class_agreement``, ``class_n_members`` and
        ``member_class``.
    **kwargs
        Options of `~astro_clustercls.ClusterClassifier` (``weights``, ``weights_path``,
        ``device``, ``batch_size``, ``tta``, ...), or of
        `~astro_clustercls.inference.ensemble.ClusterEnsemble` for an ensemble (its
        weights are given per member).

    Returns
    -------
    `~astropy.table.QTable`
        See `~astro_clustercls.ClusterClassifier.classify` (or
        `~astro_clustercls.inference.ensemble.ClusterEnsemble.classify`).
    """
    if isinstance(model, (list, tuple)):
        clf = ClusterEnsemble(model, **kwargs)
    else:
        clf = ClusterClassifier(model, **kwargs)
    return clf.classify(sources, images, xcol=xcol, ycol=ycol, skycol=skycol,
                        origin=origin)
