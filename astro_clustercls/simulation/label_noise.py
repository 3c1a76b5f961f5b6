# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Label noise that mimics how human classifiers disagree.

Wei et al. (2020) quote the consistency of human classifiers as 70-80 %,
40-50 %, 40-50 % and 60-70 % for classes 1-4. We read these as the probability
that two experts, labelling the same object independently, give the same
class: for an expert whose labels follow a row-stochastic confusion matrix
``C`` (row = true class), that probability is ``sum_j C_ij^2``. The
``'single_expert'`` matrix has the mid-points (75, 45, 45, 65 %) as its
inter-expert agreement, with errors going mostly to neighbouring classes
(1 <-> 2, 2 <-> 3, 3 <-> 4, and 4 -> 1 for stars taken for compact clusters).
The ``'consensus'`` matrix is that of the mode of three such independent
experts (when all three differ, the first expert's label is kept), computed
exactly by enumeration: less noisy than one expert.
"""

import itertools

import numpy as np

__all__ = [
    "HUMAN_AGREEMENT",
    "expert_confusion_matrix",
    "inter_expert_agreement",
    "apply_label_noise",
]

#: Inter-expert agreement per class (mid-points of Wei et al. 2020's ranges).
HUMAN_AGREEMENT = (0.75, 0.45, 0.45, 0.65)

# where a single expert's mistakes go (rows: true class 1-4), relative weights
_MISTAKES = np.array(
    [
        [0.0, 0.60, 0.10, 0.30],
        [0.45, 0.0, 0.35, 0.20],
        [0.10, 0.45, 0.0, 0.45],
        [0.35, 0.20, 0.45, 0.0],
    ]
)


def inter_expert_agreement(matrix):
    """
    Probability per true class that two independent experts agree: ``sum_j C_ij^2``.

    Examples
    --------
    >>> from astro_clustercls.simulation import (expert_confusion_matrix,
    ...                                          inter_expert_agreement)
    >>> inter_expert_agreement(expert_confusion_matrix('single_expert')).round(2)
    array([0.75, 0.45, 0.45, 0.65])
    """
    m = np.asarray(matrix, float)
    return (m**2).sum(axis=1)


def _single_expert(agreement):
    out = np.zeros((4, 4))
    for i, a in enumerate(agreement):
        o = _MISTAKES[i] / _MISTAKES[i].sum()
        s = (o**2).sum()
        # d^2 + (1 - d)^2 s = a  ->  (1 + s) d^2 - 2 s d + (s - a) = 0
        A, Bq, Cq = 1 + s, -2 * s, s - a
        d = (-Bq + np.sqrt(Bq**2 - 4 * A * Cq)) / (2 * A)
        out[i] = (1 - d) * o
        out[i, i] = d
    return out


def _consensus(single, n_experts=3):
    out = np.zeros((4, 4))
    for i in range(4):
        for votes in itertools.product(range(4), repeat=n_experts):
            p = np.prod([single[i, v] for v in votes])
            counts = np.bincount(votes, minlength=4)
            best = np.flatnonzero(counts == counts.max())
            label = votes[0] if best.size > 1 and votes[0] in best else best[0]
            out[i, label] += p
    return out


def expert_confusion_matrix(kind="single_expert", *, agreement=HUMAN_AGREEMENT):
    """
    Confusion matrix (rows: true class 1-4, columns: given label) of human labels.

    Parameters
    ----------
    kind : {'single_expert', 'consensus'}
        One expert, or the mode of three independent experts.
    agreement : sequence of 4 float, optional
        Inter-expert agreement per class (default `HUMAN_AGREEMENT`).

    Returns
    -------
    ndarray (4, 4), rows summing to 1.

    Examples
    --------
    >>> from astro_clustercls.simulation import expert_confusion_matrix
    >>> single = expert_confusion_matrix('single_expert')
    >>> consensus = expert_confusion_matrix('consensus')
    >>> bool((consensus.diagonal() > single.diagonal()).all())
    True
    """
    agreement = np.asarray(agreement, float)
    if agreement.shape != (4,) or np.any((agreement <= 0.25) | (agreement > 1)):
        raise ValueError("'agreement' must be 4 values in (0.25, 1]")
    single = _single_expert(agreement)
    if kind == "single_expert":
        return single
    if kind == "consensus":
        return _consensus(single)
    raise ValueError(f"'kind' must be 'single_expert' or 'consensus', got {kind!r}")


def apply_label_noise(labels, label_noise, *, rng=None):
    """
    Relabel objects by drawing each label from its true class's row of a matrix.

    Parameters
    ----------
    labels : array-like of int
        True classes 1-4.
    label_noise : None, 'single_expert', 'consensus' or (4, 4) array
        None returns a copy of ``labels``.
    rng : `numpy.random.Generator` or int, optional

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.simulation import apply_label_noise
    >>> noisy = apply_label_noise(np.ones(1000, int), 'single_expert', rng=0)
    >>> bool(0.7 < (noisy == 1).mean() < 0.95)
    True
    """
    labels = np.asarray(labels).astype(int)
    if label_noise is None:
        return labels.copy()
    if isinstance(label_noise, str):
        matrix = expert_confusion_matrix(label_noise)
    else:
        matrix = np.asarray(label_noise, float)
        if (
            matrix.shape != (4, 4)
            or np.any(matrix < 0)
            or not np.allclose(matrix.sum(1), 1, atol=1e-6)
        ):
            raise ValueError(
                "'label_noise' matrix must be 4x4, non-negative, rows "
                "summing to 1 (row = true class)"
            )
    if labels.size and (labels.min() < 1 or labels.max() > 4):
        raise ValueError("'labels' must be classes 1-4")
    rng = np.random.default_rng(rng)
    cum = np.cumsum(matrix, axis=1)
    u = rng.random(labels.size)
    new = (u[:, None] > cum[labels - 1]).sum(axis=1) + 1
    return np.minimum(new, 4)
