# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls demo``: simulate a field, detect, classify, compare with truth."""

import time
from pathlib import Path

import numpy as np

from .._constants import CLASSES
from ..data.detection import detect_sources, match_sources
from ..io.export import to_regions, write_table
from ..io.visualization import plot_cutout_gallery
from ..simulation import simulate_field
from ..utils._optional_deps import HAS_MATPLOTLIB
from ._common import PROG, CLIError, class_summary, count, make_classifier, stage

__all__ = ["run"]

def _recall_lines(result, truth, match):

    true_cls = np.asarray(truth["cluster_class"]).astype(int)
    pred = result["cluster_class"]
    pred_mask = np.ma.getmaskarray(pred)
    pred_val = np.ma.filled(np.ma.asarray(pred), 0)
    matched = match >= 0
    lines = [f"  {'class':>5s} {'true':>6s} {'found':>6s} {'correct':>8s} "
             f"{'recall':>7s}"]
    for c in CLASSES:
        n_true = int(np.count_nonzero(true_cls == c))
        sel = matched & ~pred_mask
        sel &= np.where(matched, true_cls[np.clip(match, 0, None)] == c, False)
        found = int(np.count_nonzero(sel))
        correct = int(np.count_nonzero(pred_val[sel] == c))
        recall = f"{correct / found:7.2f}" if found else f"{'-':>7s}"
        lines.append(f"  {c:>5d} {n_true:>6d} {found:>6d} {correct:>8d} {recall}")
    sel = matched & ~pred_mask
    correct = int(np.count_nonzero(
        pred_val[sel] == true_cls[match[sel]])) if np.any(sel) else 0
    acc = f"{correct / np.count_nonzero(sel):7.2f}" if np.any(sel) else f"{'-':>7s}"
    lines.append(f"  {'all':>5s} {len(true_cls):>6d} {int(np.count_nonzero(sel)):>6d} "
                 f"{correct:>8d} {acc}")
    return lines


def run(args):
    """Simulate a field, detect, classify and compare with the truth (offline)."""

    outdir = Path(args.outdir).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise FileExistsError(f"--outdir {outdir} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not args.overwrite:
        raise FileExistsError(f"--outdir {outdir} exists and is not empty; pass "
                              "--overwrite to write the demo's files there, or "
                              "choose another --outdir")

    # the classifier first: without weights there is no point simulating
    clf = make_classifier(args)

    stage(args, f"simulating a five-band field of {count(args.n_objects)} objects "
                f"(seed {args.seed})...")
    t0 = time.perf_counter()
    images, truth = simulate_field(seed=args.seed, n_objects=args.n_objects)
    t_sim = time.perf_counter() - t0
    band = args.detect_band.upper()
    if band not in images.bands:
        raise ValueError(f"--detect-band {args.detect_band!r} is not a simulated band "
                         f"{images.bands}")
    stage(args, f"detecting sources in {band} (photutils DAOStarFinder, 5 sigma)...")
    sources = detect_sources(images[band].data)
    if sources is None or len(sources) == 0:
        raise CLIError("no source detected in the simulated field", status=4)
    stage(args, f"classifying {count(len(sources))} sources...")
    t1 = time.perf_counter()
    result = clf(sources, images)
    t_cls = time.perf_counter() - t1

    det_xy = np.column_stack([np.asarray(result["x_centroid"], float),
                              np.asarray(result["y_centroid"], float)])
    true_xy = np.column_stack([np.asarray(truth["x_centroid"], float),
                               np.asarray(truth["y_centroid"], float)])
    match = match_sources(det_xy, true_xy, args.match_radius)
    true_cls = np.asarray(truth["cluster_class"]).astype(int)
    result["true_class"] = np.ma.MaskedArray(
        np.where(match >= 0, true_cls[np.clip(match, 0, None)], 0), mask=match < 0)

    stage(args, f"writing the table, regions and gallery into {outdir}...")
    outdir.mkdir(parents=True, exist_ok=True)
    table_path = write_table(result, outdir / "out.ecsv", overwrite=True)
    reg_path = outdir / "classes.reg"
    # sky regions (the simulated images have a WCS): DS9 overlays them on any band
    to_regions(result, filename=reg_path, overwrite=True, wcs=images.wcs)
    written = [str(table_path), str(reg_path)]
    gallery = _gallery(result, images, outdir / "gallery.png")
    if gallery is not None:
        written.append(str(gallery))

    meta = result.meta["astro_clustercls"]
    print(f"{PROG} demo: simulated {len(truth)} objects in {images.bands} "
          f"({images.shape[1]}x{images.shape[0]} px, seed {args.seed}) in "
          f"{t_sim:.1f} s")
    print(f"detected {len(result)} sources in {band} (DAOStarFinder), "
          f"{int(np.count_nonzero(match >= 0))} matched to the truth within "
          f"{args.match_radius} px")
    print(f"classified {meta['n_classified']} with {meta['model']} (weights "
          f"{meta['weights']}) on {meta['device']} in {t_cls:.1f} s")
    if meta.get("weights_notes"):
        print(f"weights notes: {meta['weights_notes']}")
    print("\n".join(class_summary(result)))
    print("recall per true class (matched, classified detections):")
    print("\n".join(_recall_lines(result, truth, match)))
    print(f"wrote {', '.join(written)}")
    return 0


def _gallery(result, images, path):
    """A cutout gallery PNG when matplotlib is installed."""
    if not HAS_MATPLOTLIB:
        print(f"{PROG}: matplotlib is not installed: no gallery")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the most probable of each predicted class, marked right or wrong
    fig = plot_cutout_gallery(result, images, truth_col="true_class")
    fig = getattr(fig, "figure", fig)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
