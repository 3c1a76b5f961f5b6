# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astro_clustercls.evaluation.metrics against hand-computed values."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table

from astro_clustercls.evaluation.metrics import (
    HUMAN_CONSISTENCY,
    PAPER_RESULTS,
    agreement,
    classification_report,
    compare_with_paper,
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    overall_accuracy,
    per_class_accuracy,
    per_class_precision,
    reliability_curve,
)

# 10 objects; by hand:
#   true 1: predicted 1, 1, 2        -> row [2, 1, 0, 0]
#   true 2: predicted 2, 4           -> row [0, 1, 0, 1]
#   true 3: predicted 1              -> row [1, 0, 0, 0]
#   true 4: predicted 4, 4, 4, 3     -> row [0, 0, 1, 3]
TRUE = [1, 1, 1, 2, 2, 3, 4, 4, 4, 4]
PRED = [1, 1, 2, 2, 4, 1, 4, 4, 4, 3]
CM = np.array([[2, 1, 0, 0],
               [0, 1, 0, 1],
               [1, 0, 0, 0],
               [0, 0, 1, 3]])


def test_confusion_matrix_counts_and_normalisations():
    np.testing.assert_array_equal(confusion_matrix(TRUE, PRED), CM)
    assert confusion_matrix(TRUE, PRED).dtype == np.int64
    rows = confusion_matrix(TRUE, PRED, normalize="true")
    np.testing.assert_allclose(rows[0], [2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(rows[3], [0, 0, 0.25, 0.75])
    cols = confusion_matrix(TRUE, PRED, normalize="pred")
    # column 1 holds 2 (true 1) + 1 (true 3); column 3 only the true-4 object
    np.testing.assert_allclose(cols[:, 0], [2 / 3, 0, 1 / 3, 0])
    np.testing.assert_allclose(cols[:, 2], [0, 0, 0, 1])
    np.testing.assert_allclose(confusion_matrix(TRUE, PRED, normalize="all").sum(), 1)


def test_order_of_classes_and_missing_class():
    cm = confusion_matrix(TRUE, PRED, classes=(4, 3, 2, 1))
    np.testing.assert_array_equal(cm, CM[::-1, ::-1])
    # class 3 never predicted correctly, class 2 never true here
    t, p = [1, 1, 3, 4], [1, 3, 1, 4]
    np.testing.assert_array_equal(confusion_matrix(t, p), [[1, 0, 1, 0],
                                                           [0, 0, 0, 0],
                                                           [1, 0, 0, 0],
                                                           [0, 0, 0, 1]])
    rec = per_class_accuracy(t, p)
    assert rec[0] == 0.5 and np.isnan(rec[1]) and rec[2] == 0.0 and rec[3] == 1.0
    prec = per_class_precision(t, p)
    assert prec[0] == 0.5 and np.isnan(prec[1]) and prec[2] == 0.0 and prec[3] == 1.0


def test_masked_inputs_are_left_out():
    true = np.ma.masked_array(TRUE + [2, 0], mask=[0] * 10 + [0, 1])
    pred = np.ma.masked_array(PRED + [1, 1], mask=[0] * 10 + [1, 0])
    np.testing.assert_array_equal(confusion_matrix(true, pred), CM)
    col = MaskedColumn(TRUE + [3], mask=[False] * 10 + [True])
    np.testing.assert_array_equal(confusion_matrix(col, PRED + [9]), CM)
    f = np.array(TRUE + [np.nan], dtype=float)
    np.testing.assert_array_equal(confusion_matrix(f, PRED + [2]), CM)


def test_errors():
    with pytest.raises(ValueError, match="not in classes"):
        confusion_matrix([1, 5], [1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([1, 2], [1])
    with pytest.raises(ValueError, match="normalize"):
        confusion_matrix([1], [1], normalize="rows")
    with pytest.raises(ValueError, match="non-integer"):
        confusion_matrix([1.5], [1])


def test_per_class_and_overall():
    np.testing.assert_allclose(per_class_accuracy(TRUE, PRED), [2 / 3, 1 / 2, 0, 3 / 4])
    np.testing.assert_allclose(per_class_precision(TRUE, PRED),
                               [2 / 3, 1 / 2, 0, 3 / 4])
    assert overall_accuracy(TRUE, PRED) == pytest.approx(6 / 10)
    assert np.isnan(overall_accuracy(np.ma.masked_all(2, int), [1, 1]))


def test_classification_report():
    rep = classification_report(TRUE, PRED)
    assert isinstance(rep, QTable)
    assert rep["class"].tolist() == [1, 2, 3, 4]
    assert rep["n"].tolist() == [3, 2, 1, 4]
    assert rep["n_pred"].tolist() == [3, 2, 1, 4]
    np.testing.assert_allclose(rep["recall"], [2 / 3, 0.5, 0.0, 0.75])
    # f1 = 2PR/(P+R); class 3: P = R = 0 -> 0
    np.testing.assert_allclose(rep["f1"], [2 / 3, 0.5, 0.0, 0.75])
    assert rep.meta["overall_accuracy"] == pytest.approx(0.6)
    assert rep.meta["confusion_matrix"] == CM.tolist()
    rep2 = classification_report([1, 1, 2], [1, 2, 2], classes=(1, 2))
    # class 1: R = 1/2, P = 1 -> F1 = 2/3; class 2: R = 1, P = 1/2 -> 2/3
    np.testing.assert_allclose(rep2["f1"], [2 / 3, 2 / 3])
    assert rep2["name"].tolist() == ["1", "2"]


def test_agreement():
    a = [1, 1, 1, 1, 2, 2, 3, 4, 4, 4]
    b = [1, 1, 1, 2, 2, 3, 3, 4, 4, 1]
    ag = agreement(a, b)
    assert ag.n == 10
    assert ag.overall == pytest.approx(0.7)
    assert ag.per_class == pytest.approx({1: 0.75, 2: 0.5, 3: 1.0, 4: 2 / 3})
    # Cohen's kappa by hand: p_o = 0.7; marginals a (4,2,1,3), b (4,2,2,2)
    p_e = (4 * 4 + 2 * 2 + 1 * 2 + 3 * 2) / 100
    assert ag.kappa == pytest.approx((0.7 - p_e) / (1 - p_e))
    rev = agreement(b, a)
    assert rev.per_class[3] == pytest.approx(0.5)  # not symmetric
    masked = agreement(np.ma.masked_array(a, [1] + [0] * 9), b)
    assert masked.n == 9


def test_paper_constants_and_compare():
    assert PAPER_RESULTS[3] == (0.40, 0.50) and HUMAN_CONSISTENCY[1] == (0.70, 0.80)
    rep = classification_report(TRUE, PRED)
    cmp_ = compare_with_paper(rep)
    np.testing.assert_allclose(cmp_["accuracy"], [2 / 3, 0.5, 0.0, 0.75])
    assert cmp_["ge_paper"].tolist() == [False, True, False, True]
    assert cmp_["ge_human_high"].tolist() == [False, True, False, True]
    assert cmp_["human_high"].tolist() == [0.8, 0.5, 0.5, 0.7]
    arr = compare_with_paper([0.9, 0.5, 0.5, 0.7])
    assert arr["ge_human_high"].tolist() == [True, True, True, True]
    with pytest.raises(ValueError, match="values"):
        compare_with_paper([0.1, 0.2])


class _FakeClassifier:
    """Predicts from a hidden column, as ClusterClassifier would from images."""

    def __init__(self, answers):
        self.answers = answers
        self.seen = None

    def __call__(self, sources, images, *, xcol=None, ycol=None, skycol=None,
                 origin=0):
        self.seen = sources.colnames
        out = QTable(sources, copy=True)
        out["cluster_class"] = self.answers
        return out


def test_evaluate_counts_and_report():
    sources = Table({"x_centroid": np.arange(13.0), "y_centroid": np.arange(13.0)})
    sources["cluster_class"] = MaskedColumn(TRUE + [1, 2, 0], mask=[0] * 10 + [1, 0, 0])
    answers = MaskedColumn(PRED + [1, 3, 4], mask=[0] * 10 + [0, 1, 0])
    clf = _FakeClassifier(answers)
    rep, pred = evaluate(clf, sources, None, xcol="x_centroid", ycol="y_centroid",
                         return_predictions=True)
    assert "cluster_class" not in clf.seen  # labels are not passed on
    np.testing.assert_array_equal(rep.meta["confusion_matrix"], CM)
    assert rep.meta["n_rows"] == 13
    assert rep.meta["n_unlabelled"] == 2       # masked label and the 0 code
    assert rep.meta["n_unclassified"] == 1     # labelled, classifier left masked
    assert rep.meta["n_evaluated"] == 10
    assert len(pred) == 13
    with pytest.raises(ValueError, match="label_col"):
        evaluate(clf, sources, None, label_col="nope")


def test_reliability_and_ece_by_hand():
    probs = np.array([[0.95, 0.05, 0, 0],   # conf .95 correct (true 1)
                      [0.15, 0.85, 0, 0],   # conf .85 wrong (true 1)
                      [0.0, 0.0, 0.6, 0.4],  # conf .60 correct (true 3)
                      [0.3, 0.3, 0.0, 0.4],  # conf .40 wrong (true 1)
                      [0.0, 0.0, 0.0, 1.0]])  # conf 1.0 correct (true 4)
    labels = np.ma.masked_array([1, 1, 3, 1, 4], [0, 0, 0, 0, 0])
    curve = reliability_curve(probs, labels, n_bins=5)
    # bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    assert curve["count"].tolist() == [0, 1, 1, 0, 3]
    np.testing.assert_allclose(curve["accuracy"][[1, 2, 4]], [0, 1, 2 / 3])
    np.testing.assert_allclose(curve["confidence"][4], (0.95 + 0.85 + 1.0) / 3)
    ece = expected_calibration_error(probs, labels, n_bins=5)
    expected = (1 * 0.4 + 1 * 0.4 + 3 * abs(2 / 3 - 2.8 / 3)) / 5
    assert ece == pytest.approx(expected)
    labels.mask[1] = True
    assert reliability_curve(probs, labels, n_bins=5)["count"].sum() == 4
    with pytest.raises(ValueError, match="shape"):
        reliability_curve(probs[:, :3], labels)
