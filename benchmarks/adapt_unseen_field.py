# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
What `adapt` gains on a field the bundled network has not seen.

A simulated galaxy at 16 Mpc with its own seed (none of the bundled networks'
training or test fields) stands in for a user's images. `adapt` injects
simulated objects into it, fine-tunes the bundled ResNet18 with its defaults
(4000 objects, 3 epochs at lr 1e-4, batches of 64; a quarter held back) and
reports the per-class recall before and after on the held-back injected
objects. Then the field's *own* objects are detected (photutils, 5 sigma on
the background-subtracted F555W), matched to the simulation's truth (1.5 px),
and classified with the bundled and the adapted weights: the per-class recall
on them says whether what was learnt on injected objects carries over to the
field's objects. One torch thread::

    python benchmarks/adapt_unseen_field.py            # about 5-10 min on a CPU
    python benchmarks/adapt_unseen_field.py --quick    # a minute, tiny sizes
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from astro_clustercls import ClusterClassifier
from astro_clustercls._constants import CLASSES
from astro_clustercls.data.detection import detect_sources, match_sources
from astro_clustercls.evaluation.metrics import per_class_accuracy
from astro_clustercls.simulation import simulate_field
from astro_clustercls.training import ADAPT_DEFAULTS, adapt
from astro_clustercls.utils.exceptions import CutoutWarning


def _recall_line(name, true, pred):
    rec = per_class_accuracy(true, pred)
    counts = [int(np.count_nonzero(true == c)) for c in CLASSES]
    cells = " ".join(f"{r:5.2f} ({n:4d})" for r, n in zip(rec, counts, strict=True))
    return (f"{name:<34s} {cells}  overall {np.mean(pred == true):5.3f}  "
            f"balanced {np.nanmean(rec):5.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2718, help="field seed")
    parser.add_argument("--distance", type=float, default=16.0)
    parser.add_argument("--n-field", type=int, default=1200,
                        help="objects of the field (default 1200)")
    parser.add_argument("--shape", type=int, default=1536)
    parser.add_argument("--n-objects", type=int, default=ADAPT_DEFAULTS["n_objects"])
    parser.add_argument("--epochs", type=int, default=ADAPT_DEFAULTS["epochs"])
    parser.add_argument("--adapt-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_field, args.shape, args.n_objects, args.epochs = 200, 512, 200, 1
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", CutoutWarning)

    t0 = time.perf_counter()
    images, truth = simulate_field(seed=args.seed, distance=args.distance,
                                   n_objects=args.n_field,
                                   shape=(args.shape, args.shape))
    seconds = time.perf_counter() - t0
    print(f"field: seed {args.seed}, {args.distance:g} Mpc, {len(truth)} objects on "
          f"{args.shape}x{args.shape} px (simulated in {seconds:.0f} s)")

    result = adapt(images, distance=args.distance, n_objects=args.n_objects,
                   epochs=args.epochs, seed=args.adapt_seed, progress_bar=False,
                   on_stage=lambda m: print(f"  {m}", flush=True))
    meta = result.report.meta["adapt"]
    print(f"\nadapt: {meta['n_train']} injected objects trained on, "
          f"{meta['n_test']} held back, {args.epochs} epochs, {meta['seconds']:.0f} s")
    print("recall on the held-back injected objects, before and after:")
    print("\n".join(result.summary()))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "adapted.safetensors"
        result.save(path)
        sources = detect_sources(images["F555W"].data)
        xy = np.column_stack([np.asarray(sources["x_centroid"], float),
                              np.asarray(sources["y_centroid"], float)])
        true_xy = np.column_stack([np.asarray(truth["x_centroid"], float),
                                   np.asarray(truth["y_centroid"], float)])
        match = match_sources(xy, true_xy, 1.5)
        before = ClusterClassifier("resnet18", device="cpu")(sources, images)
        after = ClusterClassifier("resnet18", weights_path=path,
                                  device="cpu")(sources, images)
    ok = (match >= 0) & ~np.ma.getmaskarray(before["cluster_class"]) \
        & ~np.ma.getmaskarray(after["cluster_class"])
    true = np.asarray(truth["cluster_class"])[match[ok]]
    print(f"\nthe field's own objects: {len(sources)} detected, "
          f"{int(np.count_nonzero(match >= 0))} matched to the truth, "
          f"{int(ok.sum())} classified by both")
    print(f"{'recall per class (n)':<34s} " + " ".join(f"{'class ' + str(c):>11s}"
                                                    for c in CLASSES))
    print(_recall_line("bundled ResNet18", true,
                       np.asarray(before["cluster_class"])[ok]))
    print(_recall_line("adapted to the field", true,
                       np.asarray(after["cluster_class"])[ok]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
