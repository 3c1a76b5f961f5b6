# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astro_clustercls.io.visualization (Agg backend, files in tmp_path)."""

import numpy as np
import pytest

from astro_clustercls.utils._optional_deps import HAS_MATPLOTLIB

pytestmark = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed")

CM = np.array([[2, 1, 0, 0],
               [0, 1, 0, 1],
               [1, 0, 0, 0],
               [0, 0, 1, 3]])


@pytest.fixture(autouse=True)
def agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_confusion_matrix_cells(tmp_path):
    from astro_clustercls.io.visualization import plot_confusion_matrix

    fig = plot_confusion_matrix(CM, normalize=False)
    ax = fig.axes[0]
    texts = _texts(ax)
    assert len(texts) == 16
    # row-major: cell (true 4, pred 4) is the last
    assert texts[:4] == ["2", "1", "0", "0"] and texts[-1] == "3"
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    fig.savefig(tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 0

    fig = plot_confusion_matrix(CM, normalize=True, paper=True)
    texts = _texts(fig.axes[0])
    assert texts[0] == "0.67\n(2)\npaper 70%"
    assert texts[5] == "0.50\n(1)\npaper 40%"
    assert texts[10] == "0.00\n(0)\npaper 40-50%"
    assert texts[15] == "0.75\n(3)\npaper 50-70%"
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.diagonal(image), [2 / 3, 0.5, 0.0, 0.75])


def test_confusion_matrix_on_given_axes_and_errors():
    import matplotlib.pyplot as plt

    from astro_clustercls.io.visualization import plot_confusion_matrix

    fig, (a, b) = plt.subplots(1, 2)
    out = plot_confusion_matrix(CM[:2, :2], ax=b, classes=(1, 2),
                                class_names=["sym", "asym"], title="test")
    assert out is fig and b.get_title() == "test"
    assert [t.get_text() for t in b.get_yticklabels()] == ["sym", "asym"]
    assert not a.texts
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="classes"):
        plot_confusion_matrix(CM, classes=(1, 2))


def test_cutout_gallery(tmp_path):
    from astro_clustercls import BandImages, make_cutouts
    from astro_clustercls.io.visualization import plot_cutout_gallery

    rng = np.random.default_rng(0)
    bands = ("F275W", "F336W", "F438W", "F555W", "F814W")
    images = BandImages({b: rng.normal(0, 1, (60, 60)) + 5 for b in bands})
    stack = make_cutouts(images, rng.uniform(5, 55, (14, 2)), 9)
    labels = np.ma.masked_array([1, 1, 1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 1],
                                mask=[0] * 13 + [1])
    fig = plot_cutout_gallery(stack, labels, n_per_class=3,
                              titles=[f"p{i}" for i in range(14)])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 12
    assert len(image_axes) == 3 + 2 + 0 + 3  # class 3 has none, class 4 capped at 3
    assert fig._suptitle.get_text().startswith("RGB = F814W/F555W/F438W")
    ylabels = [fig.axes[3 * r].get_ylabel() for r in range(4)]
    assert ylabels[0].replace("\n", " ").startswith("class 1: compact symmetric")
    assert "(n=3)" in ylabels[0]
    assert "(n=0)" in ylabels[2] and "(n=8)" in ylabels[3]
    assert "none" in _texts(fig.axes[6])
    rgb = image_axes[0].images[0].get_array()
    assert rgb.shape == (9, 9, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert image_axes[0].get_title().startswith("p")
    fig.savefig(tmp_path / "gallery.png")
    # grey images from one band; plain arrays with names
    fig = plot_cutout_gallery(stack.data[:, :2], [1] * 14, n_per_class=2,
                              bands=["F555W", "F814W"], rgb_bands=["F814W"],
                              classes=(1,))
    assert fig.axes[0].images[0].get_array().ndim == 2
    with pytest.raises(ValueError, match="rgb_bands"):
        plot_cutout_gallery(stack, labels, rgb_bands=["F999W"])


def test_cutout_gallery_from_table():
    from astropy.table import MaskedColumn, Table

    from astro_clustercls import BandImages
    from astro_clustercls.io.visualization import plot_cutout_gallery

    rng = np.random.default_rng(2)
    images = BandImages({b: rng.normal(0, 1, (40, 40)) for b in ("F438W", "F555W",
                                                                 "F814W")})
    table = Table({"x_centroid": [10.0, 20.0, 30.0], "y_centroid": [10.0, 20, 30],
                   "cluster_class": MaskedColumn([1, 4, 4], mask=[0, 0, 1]),
                   "class_prob_max": [0.91, 0.5, 0.3]})
    fig = plot_cutout_gallery(table, images, size=9, n_per_class=2)
    titled = [ax.get_title() for ax in fig.axes if ax.images]
    assert titled == ["#0 p=0.91", "#1 p=0.50"]  # row numbers without an id column
    with pytest.raises(ValueError, match="size"):  # no classification meta
        plot_cutout_gallery(table, images)
    # the earlier keyword of the images still works
    fig = plot_cutout_gallery(table, labels=images, size=9, n_per_class=2)
    assert len([ax for ax in fig.axes if ax.images]) == 2


def _classified_table(n=30, seed=4):
    """A classified-looking table: ids, classes, probabilities, flags, truth, meta."""
    from astropy.table import MaskedColumn, QTable

    rng = np.random.default_rng(seed)
    cls = np.array([1, 2, 3, 4] * (n // 4 + 1))[:n]
    truth = cls.copy()
    truth[::3] = truth[::3] % 4 + 1  # every third is wrong
    flags = np.zeros(n, int)
    flags[5] = 1 | 64  # PARTIAL_OFF_IMAGE | CENTER_BAD
    flags[6] = 4  # NONFINITE
    table = QTable({"id": np.arange(100, 100 + n),
                    "x_centroid": rng.uniform(6, 54, n),
                    "y_centroid": rng.uniform(6, 54, n),
                    "cluster_class": MaskedColumn(cls),
                    "class_prob_max": rng.uniform(0.3, 1.0, n).astype(np.float32),
                    "classify_flags": flags.astype(np.int32),
                    "true_class": truth})
    table.meta["astro_clustercls"] = {"cutout_size": 11}
    return table


def test_cutout_gallery_ids_flags_truth_and_choice():
    from astro_clustercls import BandImages
    from astro_clustercls.io.visualization import (
        FLAG_COLOR,
        RIGHT_COLOR,
        WRONG_COLOR,
        plot_cutout_gallery,
    )

    rng = np.random.default_rng(3)
    bands = ("F275W", "F336W", "F438W", "F555W", "F814W")
    images = BandImages({b: rng.normal(0, 1, (60, 60)) + 5 for b in bands})
    table = _classified_table()
    # the size comes from the classification's meta
    fig = plot_cutout_gallery(table, images, n_per_class=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 12
    assert shown[0].images[0].get_array().shape == (11, 11, 3)
    # deterministic: the most probable per class, high to low, titled with ids
    p = np.asarray(table["class_prob_max"])
    for r, c in enumerate((1, 2, 3, 4)):
        rows = np.flatnonzero(np.asarray(table["cluster_class"]) == c)
        top = rows[np.argsort(-p[rows], kind="stable")][:3]
        titles = [ax.get_title() for ax in shown[3 * r:3 * r + 3]]
        assert titles == [f"#{table['id'][i]} p={p[i]:.2f}" for i in top]
    again = plot_cutout_gallery(table, images, n_per_class=3)
    assert [ax.get_title() for ax in again.axes] == [ax.get_title() for ax in fig.axes]
    # first N, and a seeded random choice that repeats
    first = plot_cutout_gallery(table, images, n_per_class=3, choice="first")
    assert [ax.get_title() for ax in first.axes][:3] == [f"#100 p={p[0]:.2f}",
                                                         f"#104 p={p[4]:.2f}",
                                                         f"#108 p={p[8]:.2f}"]
    r1 = plot_cutout_gallery(table, images, n_per_class=3, choice="random", seed=5)
    r2 = plot_cutout_gallery(table, images, n_per_class=3, choice="random", seed=5)
    assert [a.get_title() for a in r1.axes] == [a.get_title() for a in r2.axes]
    with pytest.raises(ValueError, match="choice"):
        plot_cutout_gallery(table, images, choice="best")

    # flagged rows: a tag and (without a truth) an orange frame
    flagged = plot_cutout_gallery(table[4:8], images, n_per_class=2, choice="first")
    by_title = {ax.get_title(): ax for ax in flagged.axes if ax.images}
    ax5 = by_title[f"#105 p={p[5]:.2f}"]
    assert [t.get_text() for t in ax5.texts] == ["edge,ctr"]
    assert ax5.spines["top"].get_edgecolor()[:3] == pytest.approx(
        _rgb(FLAG_COLOR))
    ax6 = by_title[f"#106 p={p[6]:.2f}"]
    assert [t.get_text() for t in ax6.texts] == ["nan"]
    assert "orange: flagged" in flagged._suptitle.get_text()

    # right and wrong against a truth column
    judged = plot_cutout_gallery(table, images, n_per_class=8, choice="first",
                                 truth_col="true_class")
    truth = np.asarray(table["true_class"])
    for ax in judged.axes:
        if not ax.images:
            continue
        i = int(ax.get_title().split()[0][1:]) - 100
        right = truth[i] == table["cluster_class"][i]
        assert ax.get_title().endswith("\u2713" if right else f"\u2717{truth[i]}")
        color = RIGHT_COLOR if right else WRONG_COLOR
        assert ax.spines["left"].get_edgecolor()[:3] == pytest.approx(_rgb(color))
    assert "20 right, 10 wrong shown" in judged._suptitle.get_text()  # all 30
    with pytest.raises(ValueError, match="truth_col"):
        plot_cutout_gallery(table, images, truth_col="nope")


def _rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def test_reliability_diagram(tmp_path):
    from astro_clustercls.evaluation.metrics import expected_calibration_error
    from astro_clustercls.io.visualization import plot_reliability_diagram

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (300, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in probs]) + 1
    fig = plot_reliability_diagram(probs, labels, n_bins=5, label="raw")
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    ece = expected_calibration_error(probs, labels, n_bins=5)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["perfect calibration", f"raw (ECE = {ece:.3f}, N = 300)"]
    # the bin counts are written by the points, and add up to N
    from astro_clustercls.evaluation.metrics import reliability_curve

    counts = reliability_curve(probs, labels, n_bins=5)["count"]
    assert [int(t.get_text()) for t in ax.texts] == [int(c) for c in counts if c]
    assert sum(int(t.get_text()) for t in ax.texts) == 300
    plot_reliability_diagram(probs ** 2 / (probs ** 2).sum(1, keepdims=True), labels,
                             n_bins=5, ax=ax, label="sharper")
    assert len(ax.lines) == 3  # the diagonal is drawn once
    fig.savefig(tmp_path / "rel.png")
