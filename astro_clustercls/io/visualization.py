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
from ..data.flags import FLAGS
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


#: short tags of the flags, written on flagged cutouts of a gallery
FLAG_TAGS = {"PARTIAL_OFF_IMAGE": "edge", "OFF_IMAGE": "off", "NONFINITE": "nan",
             "MASKED": "mask", "BAD_POSITION": "pos", "BAND_MISSING": "band",
             "CENTER_BAD": "ctr", "LOW_CONFIDENCE": "low", "NOT_CLASSIFIED": "n/c"}

#: frame colours of a gallery: right / wrong against the truth, flagged
RIGHT_COLOR, WRONG_COLOR, FLAG_COLOR = "#1a9850", "#d73027", "#fd8d3c"

_CHOICES = ("top", "first", "spread", "random")


def _table_size(table, size):
    """The cutout side: ``size``, else the classification's (``meta``)."""
    if size is not None:
        return size
    meta = table.meta.get("astro_clustercls") if hasattr(table, "meta") else None
    if isinstance(meta, dict) and meta.get("cutout_size"):
        return int(meta["cutout_size"])
    raise ValueError("'size' is needed to cut a source table that holds no "
                     "classification (meta['astro_clustercls']['cutout_size'])")


def _masked_values(column, fill):
    return np.ma.filled(np.ma.asarray(getattr(column, "value", column), dtype=float),
                        fill)


def _choose(members, n, choice, score, rng):
    """``n`` of the row indices ``members`` (sorted on return), by ``choice``."""
    if members.size <= n:
        return members
    if choice == "first":
        return members[:n]
    if choice == "random":
        return np.sort(rng.choice(members, n, replace=False))
    order = members[np.argsort(-score[members], kind="stable")]  # high to low
    if choice == "top":
        return order[:n]
    # spread: evenly over the ranks, from the most to the least probable
    picks = np.unique(np.round(np.linspace(0, order.size - 1, n)).astype(int))
    return order[picks]


def _frame(ax, color, width=2.5):
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def plot_cutout_gallery(cutouts, images=None, *, labels=None, n_per_class=6,
                        choice=None, seed=0, bands=None, rgb_bands=None,
                        classes=CLASSES, class_names=None, titles=None,
                        stretch=0.1, fig=None, size=None, label_col="cluster_class",
                        truth_col=None, id_col=None, flags=None, xcol=None,
                        ycol=None, skycol=None, origin=0):
    """
    A gallery of cutouts: one row per class, ``n_per_class`` examples each.

    Typical use is on a classified table and its images::

        plot_cutout_gallery(result, images)                 # classes, IDs, flags
        plot_cutout_gallery(result, images, truth_col="true_class")  # right/wrong

    Each cutout is titled with the source's ID and the network's probability;
    flagged rows (``classify_flags`` not 0) get a short tag per flag
    (`FLAG_TAGS`: ``edge`` partly off the image, ``nan`` non-finite pixels,
    ...) and, without a truth, an orange frame; with ``truth_col``, frames
    are green where the class is right and red where it is wrong (the true
    class is written).

    Parameters
    ----------
    cutouts : Table, `~astro_clustercls.CutoutStack` or ndarray (N, B, S, S)
        A source table (e.g. the output of
        `~astro_clustercls.ClusterClassifier`), whose
        cutouts are made here from ``images``, labelled by ``label_col``; or
        ready-made cutouts (raw pixel values) with ``labels``.
    images : `~astro_clustercls.BandImages` or mapping, optional
        The images, when ``cutouts`` is a table. With ready-made cutouts, a
        second positional argument is taken as ``labels`` (the signature of
        earlier versions).
    labels : array-like of int, shape (N,), optional
        Class of each cutout (masked entries are skipped), for ready-made
        cutouts.
    n_per_class : int, optional
        Examples per class (default 6).
    choice : {'top', 'first', 'spread', 'random'}, optional
        Which examples a class with more than ``n_per_class`` shows:
        ``'top'`` the most probable (highest ``class_prob_max``; the default
        when probabilities are known), ``'first'`` the first in table order
        (the default otherwise), ``'spread'`` evenly over the ranks from the
        most to the least probable, ``'random'`` drawn with ``seed``. All but
        ``'random'`` are deterministic; ties keep table order.
    seed : int, optional
        Seed of ``choice='random'`` (default 0).
    bands : sequence of str, optional
        Band names of axis 1 (taken from a CutoutStack or the images; default
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
        A title per cutout (N entries), instead of "ID p=...".
    stretch : float, optional
        asinh softening (see `make_rgb`).
    fig : `~matplotlib.figure.Figure`, optional
        Figure to draw on (cleared).
    size : int, optional
        Cutout side in pixels, for a table. Default: the classification's
        (``meta['astro_clustercls']['cutout_size']``).
    label_col : str, optional
        Column of the shown class (default ``'cluster_class'``).
    truth_col : str, optional
        Column of the true class: marks each cutout right or wrong.
    id_col : str, optional
        Column of the source IDs (default ``'id'`` when present, else the row
        number).
    flags : array-like of int, optional
        Flags of ready-made cutouts (default: a CutoutStack's); a table's
        come from its ``classify_flags`` column.
    xcol, ycol, skycol, origin : optional
        Position columns of a table (see `~astro_clustercls.make_cutouts`).

    Returns
    -------
    `~matplotlib.figure.Figure`
        ``len(classes) * n_per_class`` axes, row by row.
    """
    plt = _pyplot()
    probs = truth = ids = None
    if hasattr(cutouts, "colnames"):
        table = cutouts
        if images is None and labels is not None:
            images, labels = labels, None  # earlier versions: labels=<the images>
        if images is None:
            raise TypeError("'images' are needed to cut the cutouts of a source table")
        size = _table_size(table, size)
        for name, col in (("label_col", label_col), ("truth_col", truth_col),
                          ("id_col", id_col)):
            if col is not None and col not in table.colnames:
                raise ValueError(f"{name}={col!r} is not a column of the table "
                                 f"(columns: {table.colnames})")
        cutouts = make_cutouts(images, table, size, xcol=xcol, ycol=ycol,
                               skycol=skycol, origin=origin)
        labels = table[label_col]
        if "class_prob_max" in table.colnames:
            probs = _masked_values(table["class_prob_max"], np.nan)
        if truth_col is not None:
            truth = np.ma.asarray(table[truth_col])
        if id_col is None and "id" in table.colnames:
            id_col = "id"
        ids = (np.asarray(table[id_col]) if id_col is not None
               else np.arange(len(table)))
        if flags is None and "classify_flags" in table.colnames:
            flags = np.asarray(table["classify_flags"])
    elif labels is None:
        labels = images
    if hasattr(cutouts, "data") and hasattr(cutouts, "bands"):
        bands = list(cutouts.bands) if bands is None else bands
        if flags is None:
            flags = np.asarray(cutouts.flags)
        cutouts = cutouts.data
    if labels is None:
        raise TypeError("'labels' are needed with ready-made cutouts")
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
    if flags is not None:
        flags = np.asarray(flags).astype(np.int64)
        if flags.shape != lab.shape:
            raise ValueError(f"'flags' must have shape ({data.shape[0]},)")
    if choice is None:
        choice = "top" if probs is not None else "first"
    if choice not in _CHOICES:
        raise ValueError(f"'choice' must be one of {_CHOICES}, got {choice!r}")
    if choice in ("top", "spread") and probs is None:
        raise ValueError(f"choice={choice!r} needs the class probabilities "
                         "(a classified table with 'class_prob_max')")
    idx = _rgb_indices(bands, rgb_bands)
    classes = list(np.asarray(classes).ravel())
    if class_names is None:
        names = dict(zip(CLASSES.tolist(), CLASS_NAMES, strict=True))
        class_names = [f"class {c}: {names[int(c)]}" if int(c) in names
                       else f"class {c}" for c in classes]
    rng = np.random.default_rng(seed)
    score = np.nan_to_num(probs, nan=-1.0) if probs is not None else None
    nrow, ncol = len(classes), int(n_per_class)
    if fig is None:
        fig = plt.figure(figsize=(1.3 * ncol + 1.2, 1.55 * nrow + 0.5))
    else:
        fig.clear()
    axes = fig.subplots(nrow, ncol, squeeze=False)
    n_right = n_wrong = 0
    for r, c in enumerate(classes):
        members = _choose(np.flatnonzero(valid & (lab == c)), ncol, choice, score,
                          rng)
        for k in range(ncol):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= members.size:
                ax.axis("off")
                continue
            i = members[k]
            if len(idx) == 3:
                ax.imshow(make_rgb(data[i, idx], stretch=stretch), origin="lower")
            else:
                grey = make_rgb(np.repeat(data[i, idx[:1]], 3, axis=0),
                                stretch=stretch)[..., 0]
                ax.imshow(grey, origin="lower", cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                title = str(titles[i])
            else:
                parts = [f"#{ids[i]}"] if ids is not None else []
                if probs is not None and np.isfinite(probs[i]):
                    parts.append(f"p={probs[i]:.2f}")
                title = " ".join(parts)
            flagged = flags is not None and flags[i] != 0
            if flagged:
                tags = [FLAG_TAGS.get(name, name.lower())
                        for name in FLAGS.decode(int(flags[i]))]
                ax.text(0.03, 0.03, ",".join(tags), transform=ax.transAxes,
                        fontsize=6, color="black", ha="left", va="bottom",
                        bbox={"boxstyle": "square,pad=0.15", "fc": FLAG_COLOR,
                              "ec": "none", "alpha": 0.9})
            if truth is not None and not np.ma.getmaskarray(truth)[i]:
                true_class = int(np.asarray(truth.data)[i])
                right = true_class == int(lab[i])
                n_right += right
                n_wrong += not right
                _frame(ax, RIGHT_COLOR if right else WRONG_COLOR)
                title += " \u2713" if right else f" \u2717{true_class}"
            elif flagged:
                _frame(ax, FLAG_COLOR)
            if title:
                ax.set_title(title, fontsize=7, pad=2)
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
    fig.subplots_adjust(left=0.2, right=0.98, bottom=0.02,
                        top=1 - 0.6 / fig.get_figheight(), hspace=0.3)
    shown = [bands[i] for i in idx]
    heading = "RGB = " + "/".join(shown) if len(shown) == 3 else shown[0]
    pick = {"top": "most probable", "first": "first", "spread": "spread over p",
            "random": f"random (seed {seed})"}[choice]
    notes = [f"{pick} per class"]
    if truth is not None:
        notes.append(f"frame: green right, red wrong (\u2717k: true class k); "
                     f"{n_right} right, {n_wrong} wrong shown")
    elif flags is not None and np.any(flags != 0):
        notes.append("orange: flagged (classify_flags)")
    fig.suptitle(f"{heading}; {'; '.join(notes)}", fontsize=8)
    return fig


def plot_reliability_diagram(probs, labels, *, n_bins=10, classes=CLASSES, ax=None,
                             label=None, show_counts=True):
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
        Legend label of the curve; the expected calibration error and the
        number of objects are added.
    show_counts : bool, optional
        Write the number of objects of each bin next to its point, in the
        curve's colour (default True): a point made of a handful of objects
        says little.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    fig, ax = _figure_axes(ax, (4.2, 4.2))
    curve = reliability_curve(probs, labels, n_bins=n_bins, classes=classes)
    ece = expected_calibration_error(probs, labels, n_bins=n_bins, classes=classes)
    count = np.asarray(curve["count"])
    used = count > 0
    if not any(line.get_label() == "perfect calibration" for line in ax.lines):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    total = int(count.sum())
    text = (f"ECE = {ece:.3f}, N = {total}" if label is None
            else f"{label} (ECE = {ece:.3f}, N = {total})")
    x = np.asarray(curve["confidence"])[used]
    y = np.asarray(curve["accuracy"])[used]
    (line,) = ax.plot(x, y, marker="o", label=text)
    if show_counts:
        # successive curves on one axes write their counts on alternate sides
        curves = sum(1 for other in ax.lines if other.get_label() !=
                     "perfect calibration")
        dy = -12 if curves % 2 else 5
        for xi, yi, n in zip(x, y, count[used], strict=True):
            right = xi > 0.85  # near the right edge: write on the left of the point
            ax.annotate(str(int(n)), (xi, yi), textcoords="offset points",
                        xytext=(-5 if right else 5, dy if yi < 0.93 else -12),
                        ha="right" if right else "left", fontsize=7,
                        color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (highest class probability)")
    ax.set_ylabel("accuracy" + (" (numbers: objects per bin)" if show_counts else ""))
    ax.legend(loc="best", fontsize=8)
    return fig
