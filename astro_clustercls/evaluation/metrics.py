# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Classification metrics: confusion matrix, per-class accuracy, label agreement,
calibration, and the numbers of Wei et al. 2020 to compare with.

Labels are class numbers (1..4 by default, `~astro_clustercls._constants.CLASSES`).
Masked entries (e.g. ``cluster_class`` of a row a classifier could not classify,
or a catalog row nobody inspected) are left out of every metric; labels that
are not masked but not one of ``classes`` raise a ValueError, so a wrong label
scheme is never silently ignored.

Per-class *accuracy* is the recall of each class (the fraction of the objects
truly of class k that are labelled k), as in Wei et al. 2020.
"""

from dataclasses import dataclass

import numpy as np
from astropy.table import QTable

from .._constants import CLASS_NAMES, CLASSES
from ..utils._parameters import label_array, validate_positive_int

__all__ = [
    "PAPER_RESULTS",
    "HUMAN_CONSISTENCY",
    "Agreement",
    "confusion_matrix",
    "per_class_accuracy",
    "per_class_precision",
    "overall_accuracy",
    "agreement",
    "classification_report",
    "compare_with_paper",
    "evaluate",
    "reliability_curve",
    "expected_calibration_error",
]

#: Per-class accuracy (recall) of the networks of Wei et al. 2020 (MNRAS 493,
#: 3178) on NGC 1559, the galaxy left out of training, as (low, high) fractions
#: of the range quoted in the paper (class 1 ~70 %, 2 ~40 %, 3 ~40-50 %,
#: 4 ~50-70 %).
PAPER_RESULTS = {1: (0.70, 0.70), 2: (0.40, 0.40), 3: (0.40, 0.50), 4: (0.50, 0.70)}

#: Consistency among human classifiers quoted by Wei et al. 2020, per class, as
#: (low, high) fractions: 70-80 %, 40-50 %, 40-50 %, 60-70 %.
HUMAN_CONSISTENCY = {1: (0.70, 0.80), 2: (0.40, 0.50), 3: (0.40, 0.50),
                     4: (0.60, 0.70)}


def _classes(classes):
    classes = np.asarray(classes, dtype=np.int64).ravel()
    if classes.size == 0 or len(np.unique(classes)) != classes.size:
        raise ValueError(f"'classes' must be distinct labels, got {classes.tolist()}")
    return classes


def _pair(true, pred, classes):
    t, tv = label_array("true", true)
    p, pv = label_array("pred", pred)
    if t.shape != p.shape:
        raise ValueError(f"'true' and 'pred' differ in length: {t.size} vs {p.size}")
    valid = tv & pv
    for name, lab in (("true", t), ("pred", p)):
        unknown = valid & ~np.isin(lab, classes)
        if np.any(unknown):
            bad = np.unique(lab[unknown]).tolist()
            raise ValueError(f"{name!r} holds labels {bad} not in classes "
                             f"{classes.tolist()} (mask them to leave them out)")
    return t[valid], p[valid]


def confusion_matrix(true, pred, *, classes=CLASSES, normalize=None):
    """
    Confusion matrix: rows are the true classes, columns the predicted ones.

    Parameters
    ----------
    true, pred : array-like of int, 1-D
        Labels; masked entries (or NaN) in either are left out.
    classes : sequence of int, optional
        Class labels, in the order of rows and columns (default 1, 2, 3, 4).
    normalize : {None, 'true', 'pred', 'all'}, optional
        None: counts (int64). 'true': each row divided by its sum (the
        diagonal is then the per-class recall); 'pred': each column divided
        by its sum (the diagonal is the precision); 'all': divided by the
        total. Rows/columns with no objects are NaN.

    Returns
    -------
    ndarray, shape (K, K)

    Raises
    ------
    ValueError
        For labels not in ``classes``, arrays of different lengths or a bad
        ``normalize``.

    Examples
    --------
    >>> from astro_clustercls.evaluation.metrics import confusion_matrix
    >>> confusion_matrix([1, 1, 2, 3, 4, 4], [1, 2, 2, 3, 4, 1])
    array([[1, 1, 0, 0],
           [0, 1, 0, 0],
           [0, 0, 1, 0],
           [1, 0, 0, 1]])
    >>> confusion_matrix([1, 1, 2], [1, 2, 2], classes=(1, 2), normalize='true')
    array([[0.5, 0.5],
           [0. , 1. ]])
    """
    classes = _classes(classes)
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"'normalize' must be None, 'true', 'pred' or 'all', got "
                         f"{normalize!r}")
    t, p = _pair(true, pred, classes)
    k = classes.size
    index = {c: i for i, c in enumerate(classes.tolist())}
    ti = np.array([index[v] for v in t.tolist()], dtype=np.int64)
    pi = np.array([index[v] for v in p.tolist()], dtype=np.int64)
    cm = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k).astype(np.int64)
    if normalize is None:
        return cm
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            return cm / cm.sum(axis=1, keepdims=True)
        if normalize == "pred":
            return cm / cm.sum(axis=0, keepdims=True)
        return cm / cm.sum()


def per_class_accuracy(true, pred, *, classes=CLASSES):
    """
    Per-class accuracy (recall): fraction of each true class labelled correctly.

    Returns
    -------
    ndarray, shape (K,)
        NaN for classes absent from ``true``.

    Examples
    --------
    >>> from astro_clustercls.evaluation.metrics import per_class_accuracy
    >>> per_class_accuracy([1, 1, 2, 4], [1, 2, 2, 1]).tolist()
    [0.5, 1.0, nan, 0.0]
    """
    return np.diagonal(confusion_matrix(true, pred, classes=classes,
                                        normalize="true")).copy()


def per_class_precision(true, pred, *, classes=CLASSES):
    """
    Per-class precision: fraction of the objects labelled k that are truly k.

    Returns
    -------
    ndarray, shape (K,)
        NaN for classes never predicted.

    Examples
    --------
    >>> from astro_clustercls.evaluation.metrics import per_class_precision
    >>> per_class_precision([1, 1, 2, 4], [1, 2, 2, 1]).tolist()
    [0.5, 0.5, nan, nan]
    """
    return np.diagonal(confusion_matrix(true, pred, classes=classes,
                                        normalize="pred")).copy()


def overall_accuracy(true, pred, *, classes=CLASSES):
    """
    Fraction of (unmasked) objects whose predicted label equals the true one.

    Returns NaN when no object is left.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.evaluation.metrics import overall_accuracy
    >>> overall_accuracy([1, 2, 3, 4], np.ma.masked_array([1, 2, 4, 4], [0, 0, 0, 1]))
    0.6666666666666666
    """
    cm = confusion_matrix(true, pred, classes=classes)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


@dataclass
class Agreement:
    """Agreement between two label sets (see `agreement`)."""

    overall: float          #: fraction of objects with the same label
    per_class: dict         #: class -> fraction of a's class-k objects that b calls k
    kappa: float            #: Cohen's kappa (agreement beyond chance)
    n: int                  #: number of objects labelled in both sets
    matrix: np.ndarray      #: confusion matrix, rows = labels_a


def agreement(labels_a, labels_b, *, classes=CLASSES):
    """
    Agreement between two label sets (two people, two networks, person vs network).

    Parameters
    ----------
    labels_a, labels_b : array-like of int
        Labels of the same objects; masked entries in either are left out.
    classes : sequence of int, optional
        The classes (default 1..4).

    Returns
    -------
    `Agreement`
        ``overall`` fraction of equal labels; ``per_class[k]``: of the objects
        ``labels_a`` puts in class k, the fraction ``labels_b`` also puts in
        class k (not symmetric: swap the arguments for the other direction;
        this is how Wei et al. 2020 quote human consistency); Cohen's
        ``kappa``; ``n`` objects compared; the confusion ``matrix``.

    Examples
    --------
    >>> from astro_clustercls.evaluation.metrics import agreement
    >>> a = agreement([1, 1, 2, 2], [1, 2, 2, 2], classes=(1, 2))
    >>> a.overall, a.per_class, a.n
    (0.75, {1: 0.5, 2: 1.0}, 4)
    >>> round(a.kappa, 3)
    0.5
    """
    classes = _classes(classes)
    cm = confusion_matrix(labels_a, labels_b, classes=classes)
    n = int(cm.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diagonal(cm) / cm.sum(axis=1)
        overall = np.trace(cm) / n if n else np.nan
        expected = np.sum(cm.sum(axis=0) * cm.sum(axis=1)) / n**2 if n else np.nan
        kappa = (overall - expected) / (1 - expected) if n else np.nan
    return Agreement(overall=float(overall),
                     per_class={int(c): float(r) for c, r in zip(classes, recall,
                                                                 strict=True)},
                     kappa=float(kappa), n=n, matrix=cm)


def classification_report(true, pred, *, classes=CLASSES, class_names=None):
    """
    Per-class recall (accuracy), precision and F1 as a table.

    Parameters
    ----------
    true, pred : array-like of int
        Labels; masked entries in either are left out.
    classes : sequence of int, optional
        The classes (default 1..4).
    class_names : sequence of str, optional
        Names of the classes (default: the package's for 1..4, else the
        numbers).

    Returns
    -------
    `~astropy.table.QTable`
        Columns ``class``, ``name``, ``n`` (true objects of the class),
        ``n_pred``, ``recall``, ``precision``, ``f1`` (NaN where undefined;
        F1 is 0 when recall or precision is 0).
        ``meta`` holds ``overall_accuracy``, ``n`` and ``confusion_matrix``
        (nested lists, rows = true).

    Examples
    --------
    >>> from astro_clustercls.evaluation.metrics import classification_report
    >>> rep = classification_report([1, 1, 2, 2], [1, 2, 2, 2], classes=(1, 2))
    >>> rep['recall'].tolist(), rep['precision'].tolist()
    ([0.5, 1.0], [1.0, 0.6666666666666666])
    >>> rep.meta['overall_accuracy']
    0.75
    """
    classes = _classes(classes)
    cm = confusion_matrix(true, pred, classes=classes)
    if class_names is None:
        if np.array_equal(classes, CLASSES):
            class_names = CLASS_NAMES
        else:
            class_names = [str(c) for c in classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diagonal(cm) / cm.sum(axis=1)
        precision = np.diagonal(cm) / cm.sum(axis=0)
        f1 = 2 * recall * precision / (recall + precision)
    f1 = np.where((recall == 0) | (precision == 0), 0.0, f1)
    table = QTable()
    table["class"] = classes
    table["name"] = list(class_names)
    table["n"] = cm.sum(axis=1)
    table["n_pred"] = cm.sum(axis=0)
    table["recall"] = recall
    table["precision"] = precision
    table["f1"] = f1
    n = int(cm.sum())
    table.meta["overall_accuracy"] = float(np.trace(cm) / n) if n else float("nan")
    table.meta["n"] = n
    table.meta["confusion_matrix"] = cm.tolist()
    return table


def compare_with_paper(report, *, classes=CLASSES):
    """
    Per-class accuracy next to Wei et al. 2020's and the human consistency.

    Parameters
    ----------
    report : `~astropy.table.QTable`, dict or array-like
        A `classification_report` (its ``recall`` column is used), a dict
        class -> accuracy, or per-class accuracies in the order of ``classes``.
    classes : sequence of int, optional
        Default 1..4 (the paper's numbers exist for these only).

    Returns
    -------
    `~astropy.table.QTable`
        ``class``, ``accuracy`` (ours), ``paper_low``, ``paper_high``,
        ``human_low``, ``human_high``, ``ge_paper`` (ours >= the paper's
        upper value), ``ge_human_high`` (ours >= the human consistency upper
        bound).

    Examples
    --------
    >>> from astro_clustercls.evaluation.metrics import compare_with_paper
    >>> t = compare_with_paper({1: 0.81, 2: 0.45, 3: 0.5, 4: 0.72})
    >>> t['ge_human_high'].tolist()
    [True, False, True, True]
    """
    classes = _classes(classes)
    if isinstance(report, QTable) or hasattr(report, "colnames"):
        lookup = dict(zip(np.asarray(report["class"]).tolist(),
                          np.asarray(report["recall"], dtype=float).tolist(),
                          strict=True))
        acc = [lookup.get(int(c), np.nan) for c in classes]
    elif isinstance(report, dict):
        acc = [float(report.get(int(c), np.nan)) for c in classes]
    else:
        acc = np.asarray(report, dtype=float).ravel().tolist()
        if len(acc) != classes.size:
            raise ValueError(f"'report' has {len(acc)} values for {classes.size} "
                             "classes")
    missing = [int(c) for c in classes if int(c) not in PAPER_RESULTS]
    if missing:
        raise ValueError(f"the paper gives no numbers for classes {missing}")
    acc = np.asarray(acc, dtype=float)
    table = QTable()
    table["class"] = classes
    table["accuracy"] = acc
    table["paper_low"] = [PAPER_RESULTS[int(c)][0] for c in classes]
    table["paper_high"] = [PAPER_RESULTS[int(c)][1] for c in classes]
    table["human_low"] = [HUMAN_CONSISTENCY[int(c)][0] for c in classes]
    table["human_high"] = [HUMAN_CONSISTENCY[int(c)][1] for c in classes]
    table["ge_paper"] = acc >= table["paper_high"]
    table["ge_human_high"] = acc >= table["human_high"]
    table.meta["reference"] = "Wei et al. 2020, MNRAS 493, 3178 (test galaxy NGC 1559)"
    return table


def evaluate(classifier, sources, images, *, label_col="cluster_class",
             pred_col="cluster_class", classes=CLASSES, return_predictions=False,
             **kwargs):
    """
    Classify a labelled table and compare with its labels.

    Parameters
    ----------
    classifier : callable
        Called as ``classifier(sources, images, **kwargs)`` and returning a
        table with a (masked) ``pred_col`` column, one row per input row in
        input order: the call signature of
        `~astro_clustercls.ClusterClassifier`.
    sources : `~astropy.table.Table`
        Positions and the true labels in ``label_col`` (e.g. from
        `~astro_clustercls.data.catalogs.read_legus`). The label column is removed
        from the copy given to the classifier, so it cannot leak into or clash
        with the predictions.
    images : `~astro_clustercls.BandImages`
        The images.
    label_col, pred_col : str, optional
        True-label column of ``sources``; predicted-label column of the
        classifier's output (both default ``'cluster_class'``).
    classes : sequence of int, optional
        Default 1..4.
    return_predictions : bool, optional
        Also return the classifier's output table.
    **kwargs
        Passed to the classifier (``xcol``, ``ycol``, ``skycol``, ``origin``).

    Returns
    -------
    report : `~astropy.table.QTable`
        The `classification_report` of the rows that are labelled and were
        classified. ``meta`` also holds ``n_rows``, ``n_unlabelled`` (true
        label masked: not inspected), ``n_unclassified`` (labelled rows the
        classifier left masked) and ``n_evaluated``.
    predictions : `~astropy.table.QTable`
        Only with ``return_predictions=True``.

    Raises
    ------
    ValueError
        If ``label_col`` is missing or the output has the wrong length.
    """
    if label_col not in sources.colnames:
        raise ValueError(f"'label_col'={label_col!r} is not a column of 'sources'; "
                         f"columns: {sources.colnames}")
    classes = _classes(classes)
    true, true_ok = label_array(label_col, sources[label_col])
    unknown = true_ok & ~np.isin(true, classes)
    true_ok &= ~unknown
    to_classify = sources.copy(copy_data=False)
    del to_classify[label_col]
    result = classifier(to_classify, images, **kwargs)
    if pred_col not in result.colnames:
        raise ValueError(f"the classifier's output has no column {pred_col!r}")
    if len(result) != len(sources):
        raise ValueError(f"the classifier returned {len(result)} rows for "
                         f"{len(sources)} sources")
    pred, pred_ok = label_array(pred_col, result[pred_col])
    pred_ok &= np.isin(pred, classes)
    use = true_ok & pred_ok
    report = classification_report(np.ma.MaskedArray(true, ~use),
                                   np.ma.MaskedArray(pred, ~use), classes=classes)
    report.meta.update(n_rows=len(sources),
                       n_unlabelled=int(np.count_nonzero(~true_ok)),
                       n_unknown_labels=int(np.count_nonzero(unknown)),
                       n_unclassified=int(np.count_nonzero(true_ok & ~pred_ok)),
                       n_evaluated=int(np.count_nonzero(use)),
                       label_col=label_col)
    if hasattr(result, "meta") and "astro_clustercls" in result.meta:
        report.meta["classifier"] = result.meta["astro_clustercls"]
    return (report, result) if return_predictions else report


def _top_label(probs, labels, classes):
    probs = np.asarray(probs, dtype=float)
    classes = _classes(classes)
    if probs.ndim != 2 or probs.shape[1] != classes.size:
        raise ValueError(f"'probs' must have shape (N, {classes.size}), got "
                         f"{probs.shape}")
    lab, ok = label_array("labels", labels)
    if lab.size != probs.shape[0]:
        raise ValueError("'probs' and 'labels' differ in length")
    ok &= np.all(np.isfinite(probs), axis=1)
    bad = ok & ~np.isin(lab, classes)
    if np.any(bad):
        raise ValueError(f"'labels' holds labels {np.unique(lab[bad]).tolist()} not in "
                         f"classes {classes.tolist()}")
    probs, lab = probs[ok], lab[ok]
    conf = probs.max(axis=1)
    correct = classes[np.argmax(probs, axis=1)] == lab
    return conf, correct


def reliability_curve(probs, labels, *, n_bins=10, classes=CLASSES):
    """
    Reliability-diagram data: accuracy against confidence in bins.

    The confidence is the highest class probability of each object; bins are
    equal-width on [0, 1], bin i holding confidences in ``(i/n, (i+1)/n]``
    (the first bin also holds 0).

    Parameters
    ----------
    probs : array-like, shape (N, K)
        Class probabilities (columns in the order of ``classes``).
    labels : array-like of int, shape (N,)
        True labels; masked entries are left out.
    n_bins : int, optional
        Number of bins (default 10).
    classes : sequence of int, optional
        Default 1..4.

    Returns
    -------
    `~astropy.table.QTable`
        One row per bin: ``bin_lower``, ``bin_upper``, ``count``,
        ``confidence`` (mean), ``accuracy`` (NaN in empty bins).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.evaluation.metrics import reliability_curve
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    >>> t = reliability_curve(p, [1, 2, 2, 1], n_bins=2, classes=(1, 2))
    >>> t['count'].tolist(), t['accuracy'].tolist()
    ([0, 4], [nan, 0.5])
    """
    n_bins = validate_positive_int("n_bins", n_bins)
    conf, correct = _top_label(probs, labels, classes)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct.astype(float), minlength=n_bins) / count
    table = QTable()
    table["bin_lower"] = edges[:-1]
    table["bin_upper"] = edges[1:]
    table["count"] = count
    table["confidence"] = mean_conf
    table["accuracy"] = acc
    return table


def expected_calibration_error(probs, labels, *, n_bins=10, classes=CLASSES):
    """
    Expected calibration error of the top-label confidence.

    ``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over the bins of
    `reliability_curve`.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.evaluation.metrics import expected_calibration_error
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    >>> ece = expected_calibration_error(p, [1, 2, 2, 1], n_bins=2, classes=(1, 2))
    >>> ece  # doctest: +FLOAT_CMP
    0.2375
    """
    curve = reliability_curve(probs, labels, n_bins=n_bins, classes=classes)
    count = np.asarray(curve["count"], dtype=float)
    total = count.sum()
    if total == 0:
        return float("nan")
    use = count > 0
    acc = np.asarray(curve["accuracy"])[use]
    gap = np.abs(acc - np.asarray(curve["confidence"])[use])
    return float(np.sum(count[use] / total * gap))
