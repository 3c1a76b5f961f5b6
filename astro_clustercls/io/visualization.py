# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Figures: confusion matrix, cutout gallery per class, reliability diagram.

matplotlib is optional (``pip install astro-clustercls[plot]``); it is imported
inside the functions, which raise an ImportError naming it when it is missing.
Every function returns the matplotlib `~matplotlib.figure.Figure` it drew on.
"""

import textwrap

import numpy as np

from .._constants import CLASS_NAMES, CLASSES, DEFAULT_BANDS
from ..data.cutouts import make_cutouts
from ..evaluation.metrics import (
    PAPER_RESULTS,
    expected_calibration_error,
    reliability_curve,
)
from ..utils._optional_deps import HAS_MATPLOTLIB

__all__ = ["plot_confusion_matrix", "plot_cutout_gallery", "plot_reliability_diagram",
           "make_rgb"]

#: Preferred (red, green, blue) bands of colour cutouts, first match wins.
RGB_BANDS = (("F814W", "F555W", "F438W"), ("F814W", "F555W", "F435W"),
             ("F814W", "F606W", "F435W"), ("F814W", "F555W", "F336W"),
             ("F814W", "F438W", "F275W"))


def _pyplot():
    if not HAS_MATPLOTLIB:
        raise ImportError("matplotlib is required for plotting: pip install "
                          "'astro-clustercls[plot]'")
    import matplotlib.pyplot as plt

    return plt


def _figure_axes(ax, figsize):
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def plot_confusion_matrix(cm, *, ax=None, normalize=True, classes=CLASSES,
                          class_names=None, paper=False, cmap="Blues", title=None):
    """
    Draw a confusion matrix (rows: true class, columns: predicted class).

    Parameters
    ----------
    cm : array-like, shape (K, K)
        Counts, e.g. from `~astro_clustercls.evaluation.metrics.confusion_matrix`.
    ax : `~matplotlib.axes.Axes`, optional
        Axes to draw on (default: a new figure).
    normalize : bool, optional
        Colour by the row-normalised fractions (per-class recall on the
        diagonal) and write "fraction\\n(count)" in each cell (default);
        otherwise colour and write counts.
    classes : sequence of int, optional
        Class labels of the rows/columns (default 1..4).
    class_names : sequence of str, optional
        Tick labels (default: the class numbers).
    paper : bool, optional
        Also write Wei et al. 2020's per-class accuracy under each diagonal
        cell ("paper 40-50%").
    cmap : str, optional
        Colour map.
    title : str, optional
        Axes title.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"'cm' must be a square matrix, got shape {cm.shape}")
    classes = list(np.asarray(classes).ravel())
    if len(classes) != cm.shape[0]:
        raise ValueError(f"'classes' has {len(classes)} labels for a "
                         f"{cm.shape[0]}x{cm.shape[0]} matrix")
    fig, ax = _figure_axes(ax, (4.8, 4.2))
    counts = cm.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = counts / counts.sum(axis=1, keepdims=True)
    shown = np.nan_to_num(frac) if normalize else counts
    image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of true class" if normalize else "count")
    integer = np.all(counts == np.round(counts))
    threshold = np.nanmax(shown) / 2 if np.nanmax(shown) > 0 else 0.5
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            n = f"{int(counts[i, j])}" if integer else f"{counts[i, j]:.3g}"
            if normalize:
                f = "–" if np.isnan(frac[i, j]) else f"{frac[i, j]:.2f}"
                text = f"{f}\n({n})"
            else:
                text = n
            if paper and i == j:
                rng = PAPER_RESULTS.get(int(classes[i]))
                if rng is not None:
                    lo, hi = (round(100 * v) for v in rng)
                    text += f"\npaper {lo}%" if lo == hi else f"\npaper {lo}-{hi}%"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > threshold else "black")
    labels = class_names if class_names is not None else [str(c) for c in classes]
    ax.set_xticks(range(len(classes)), labels)
    ax.set_yticks(range(len(classes)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    return fig


def make_rgb(cutout, *, stretch=0.1, percentile=99.5):
    """
    An RGB image of one (3, S, S) cutout with an asinh stretch per channel.

    Each channel is background-subtracted (median), divided by its
    ``percentile`` value and passed through ``asinh(x / stretch) /
    asinh(1 / stretch)``, clipped to [0, 1]; NaN pixels are black.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.io.visualization import make_rgb
    >>> rgb = make_rgb(np.ones((3, 5, 5)) + np.eye(5))
    >>> rgb.shape, float(rgb.min()) >= 0, float(rgb.max()) <= 1
    ((5, 5, 3), True, True)
    """
    cutout = np.asarray(cutout, dtype=float)
    if cutout.ndim != 3 or cutout.shape[0] != 3:
        raise ValueError(f"'cutout' must have shape (3, S, S), got {cutout.shape}")
    out = np.zeros(cutout.shape[1:] + (3,))
    for c in range(3):
        band = cutout[c]
        finite = np.isfinite(band)
        if not finite.any():
            continue
        x = band - np.median(band[finite])
        top = np.percentile(x[finite], percentile)
        x = x / top if top > 0 else x * 0
        y = np.arcsinh(np.clip(x, 0, None) / stretch) / np.arcsinh(1 / stretch)
        out[..., c] = np.where(finite, np.clip(y, 0, 1), 0)
    return out


def _rgb_indices(bands, rgb_bands):
    if rgb_bands is not None:
        missing = [b for b in rgb_bands if b not in bands]
        if missing or len(rgb_bands) not in (1, 3):
            raise ValueError(f"'rgb_bands' must name 1 or 3 of the bands {bands}, got "
                             f"{rgb_bands!r}")
        return [bands.index(b) for b in rgb_bands]
    for choice in RGB_BANDS:
        if all(b in bands for b in choice):
            return [bands.index(b) for b in choice]
    if len(bands) >= 3:  # reddest, middle, bluest of what there is (order given)
        return [len(bands) - 1, len(bands) // 2, 0]
    return [len(bands) - 1]


def plot_cutout_gallery(cutouts, labels, *, n_per_class=6, bands=None,
                        rgb_bands=None, classes=CLASSES, class_names=None,
                        titles=None, stretch=0.1, seed=0, fig=None, size=None,
                        label_col="cluster_class", xcol=None, ycol=None,
                        skycol=None, origin=0):
    """
    A gallery of cutouts: one row per class, ``n_per_class`` examples each.

    Parameters
    ----------
    cutouts : ndarray (N, B, S, S), `~astro_clustercls.CutoutStack` or Table
        The cutouts (raw pixel values); or a source table (e.g. the output of
        `~astro_clustercls.inference.classifier.ClusterClassifier`), in which case
        ``labels`` is the `~astro_clustercls.BandImages` and the cutouts of
        side ``size`` are made here, labelled by ``label_col`` (titles: the
        ``class_prob_max`` column when present).
    labels : array-like of int, shape (N,), or `~astro_clustercls.BandImages`
        Class of each cutout (masked entries are skipped); the images when
        ``cutouts`` is a table.
    n_per_class : int, optional
        Examples per class (default 6); chosen at random with ``seed`` when a
        class has more.
    bands : sequence of str, optional
        Band names of axis 1 (taken from a CutoutStack; default
        `~astro_clustercls._constants.DEFAULT_BANDS` when B = 5).
    rgb_bands : sequence of 3 (or 1) str, optional
        Bands shown as red, green, blue (default: the first available of
        F814W/F555W/F438W, F814W/F555W/F435W, F814W/F606W/F435W,
        F814W/F555W/F336W, F814W/F438W/F275W); one band gives a grey image.
    classes : sequence of int, optional
        Rows of the gallery (default 1..4).
    class_names : sequence of str, optional
        Row titles (default "class k: name").
    titles : sequence of str, optional
        A title per cutout (N entries), e.g. a predicted class or probability.
    stretch : float, optional
        asinh softening (see `make_rgb`).
    seed : int, optional
        Seed of the choice of examples.
    fig : `~matplotlib.figure.Figure`, optional
        Figure to draw on (cleared).
    size, label_col, xcol, ycol, skycol, origin : optional
        Only with a table: cutout side in pixels (required), label column
        (default ``'cluster_class'``) and position columns (see
        `~astro_clustercls.make_cutouts`).

    Returns
    -------
    `~matplotlib.figure.Figure`
        ``len(classes) * n_per_class`` image axes, row by row.
    """
    plt = _pyplot()
    if hasattr(cutouts, "colnames"):
        table, images = cutouts, labels
        if size is None:
            raise ValueError("'size' is needed to cut a source table")
        if label_col not in table.colnames:
            raise ValueError(f"'label_col'={label_col!r} is not a column of the table")
        cutouts = make_cutouts(images, table, size, xcol=xcol, ycol=ycol,
                               skycol=skycol, origin=origin)
        labels = table[label_col]
        if titles is None and "class_prob_max" in table.colnames:
            pmax = np.ma.filled(np.ma.asarray(table["class_prob_max"], dtype=float),
                                np.nan)
            titles = [f"p={v:.2f}" for v in pmax]
    if hasattr(cutouts, "data") and hasattr(cutouts, "bands"):
        bands = list(cutouts.bands) if bands is None else bands
        cutouts = cutouts.data
    data = np.asarray(cutouts)
    if data.ndim != 4:
        raise ValueError(f"'cutouts' must have shape (N, B, S, S), got {data.shape}")
    if bands is None:
        bands = list(DEFAULT_BANDS) if data.shape[1] == 5 else \
            [f"band{i}" for i in range(data.shape[1])]
    bands = list(bands)
    if len(bands) != data.shape[1]:
        raise ValueError(f"'bands' names {len(bands)} bands for {data.shape[1]}")
    lab = np.ma.asarray(labels)
    if lab.shape != (data.shape[0],):
        raise ValueError(f"'labels' must have shape ({data.shape[0]},)")
    valid = ~np.ma.getmaskarray(lab)
    lab = np.asarray(lab.data)
    idx = _rgb_indices(bands, rgb_bands)
    classes = list(np.asarray(classes).ravel())
    if class_names is None:
        names = dict(zip(CLASSES.tolist(), CLASS_NAMES, strict=True))
        class_names = [f"class {c}: {names[int(c)]}" if int(c) in names
                       else f"class {c}" for c in classes]
    rng = np.random.default_rng(seed)
    nrow, ncol = len(classes), int(n_per_class)
    if fig is None:
        fig = plt.figure(figsize=(1.3 * ncol, 1.5 * nrow))
    else:
        fig.clear()
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for r, c in enumerate(classes):
        members = np.flatnonzero(valid & (lab == c))
        if members.size > ncol:
            members = np.sort(rng.choice(members, ncol, replace=False))
        for k in range(ncol):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < members.size:
                i = members[k]
                if len(idx) == 3:
                    ax.imshow(make_rgb(data[i, idx], stretch=stretch), origin="lower")
                else:
                    grey = make_rgb(np.repeat(data[i, idx[:1]], 3, axis=0),
                                    stretch=stretch)[..., 0]
                    ax.imshow(grey, origin="lower", cmap="gray", vmin=0, vmax=1)
                if titles is not None:
                    ax.set_title(str(titles[i]), fontsize=7)
            else:
                ax.axis("off")
        n_class = int(np.sum(valid & (lab == c)))
        # horizontal, wrapped row labels: rotated ones overlap between rows
        label = textwrap.fill(str(class_names[r]), 16)
        axes[r, 0].set_ylabel(f"{label}\n(n={n_class})", fontsize=7, rotation=0,
                              ha="right", va="center", labelpad=4)
        if members.size == 0:
            axes[r, 0].axis("on")
            axes[r, 0].set_xticks([])
            axes[r, 0].set_yticks([])
            axes[r, 0].text(0.5, 0.5, "none", ha="center", va="center",
                            transform=axes[r, 0].transAxes)
    fig.subplots_adjust(left=0.2)
    shown = [bands[i] for i in idx]
    fig.suptitle("RGB = " + "/".join(shown) if len(shown) == 3 else shown[0],
                 fontsize=9)
    return fig


def plot_reliability_diagram(probs, labels, *, n_bins=10, classes=CLASSES, ax=None,
                             label=None):
    """
    Reliability diagram: accuracy against confidence, with the diagonal.

    Parameters
    ----------
    probs : array-like, shape (N, K)
        Class probabilities (columns in the order of ``classes``).
    labels : array-like of int
        True labels (masked entries left out).
    n_bins : int, optional
        Confidence bins (default 10).
    classes : sequence of int, optional
        Default 1..4.
    ax : `~matplotlib.axes.Axes`, optional
        Axes to draw on; call again with the same ``ax`` to overlay curves
        (e.g. before and after temperature scaling).
    label : str, optional
        Legend label of the curve; the expected calibration error is added.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    fig, ax = _figure_axes(ax, (4.2, 4.2))
    curve = reliability_curve(probs, labels, n_bins=n_bins, classes=classes)
    ece = expected_calibration_error(probs, labels, n_bins=n_bins, classes=classes)
    used = np.asarray(curve["count"]) > 0
    if not any(line.get_label() == "perfect calibration" for line in ax.lines):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    text = f"ECE = {ece:.3f}" if label is None else f"{label} (ECE = {ece:.3f})"
    ax.plot(np.asarray(curve["confidence"])[used], np.asarray(curve["accuracy"])[used],
            marker="o", label=text)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (highest class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    return fig
