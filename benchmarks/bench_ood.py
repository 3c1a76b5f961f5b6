# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: the out-of-distribution score's cost, and int8 against float32.

On simulated objects (``--n`` of the simulator's training kind with varied
conditions, ``--n`` of its held-out galaxy) and the out-of-distribution sets
of `astro_clustercls.evaluation.ood_sets` made from ``--n-ood`` held-out
objects (with the variants), laid side by side in 5-band mosaics and
classified end to end by `ClusterClassifier` (cutouts, normalisation,
network, score), it reports in one process, in alternating rounds (best of
``--rounds``):

* throughput (objects per second) of float32 and int8, each with and without
  the score (``ood=False``), and their ratios;
* the agreement of the int8 path's ``OUT_OF_DISTRIBUTION`` flags with the
  float32 path's, on all objects and per set (goal >= 99 %), and the
  fraction of rows the int8 path recomputes in float32 for the score (within
  ``INT8_OOD_GUARD`` of the threshold, measured on the float32 scores);
* the flag's rate per set;
* that labels and probabilities are the same with and without the score.

Run from the repository root (needs ``pip install onnxruntime onnx``)::

    python benchmarks/bench_ood.py                 # ~4 min on 1 core
    python benchmarks/bench_ood.py --arch vgg19_bn --n 500 --n-ood 100
"""

import argparse
import platform
import time
import warnings

import numpy as np
import torch

from astro_clustercls import ClusterClassifier
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.evaluation.ood_sets import as_images, make_ood_sets
from astro_clustercls.inference.classifier import INT8_OOD_GUARD
from astro_clustercls.models._quantize import _cpu_flags
from astro_clustercls.simulation import make_training_set
from astro_clustercls.utils.exceptions import ClusterClsWarning

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-ood", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = _cpu_flags()
    print(f"# {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"AVX2={'avx2' in flags}, AVX512={'avx512f' in flags}, "
          f"torch {torch.__version__}")

    sets = {"simulator, training kind": make_training_set(
        args.n, 51, 11, bands=BANDS, vary_conditions=True).data}
    held = make_training_set(args.n, 51, 12, bands=BANDS, held_out=True).data
    sets["simulator, held-out galaxy"] = held
    sets.update(make_ood_sets(held[:args.n_ood], seed=13, variants=True))
    names = list(sets)
    data = np.concatenate([sets[k] for k in names])
    which = np.repeat(np.arange(len(names)), [len(sets[k]) for k in names])
    images, xy = as_images(data, BANDS)
    print(f"# {len(data)} objects: " + ", ".join(f"{k} {len(v)}"
                                                  for k, v in sets.items()))

    configs = {(p, ood): ClusterClassifier(args.arch, device="cpu", precision=p,
                                           ood=ood)
               for p in ("fp32", "int8") for ood in (False, True)}
    best, tables = {}, {}
    for _ in range(args.rounds):
        for key, clf in configs.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ClusterClsWarning)
                t0 = time.perf_counter()
                tables[key] = clf(xy, images)
                dt = time.perf_counter() - t0
            best[key] = min(best.get(key, np.inf), dt)

    rate = {k: len(data) / v for k, v in best.items()}
    for (p, ood), r in rate.items():
        print(f"{p:5s} ood={str(ood):5s} {r:8.1f} objects/s")
    print(f"cost of the score, fp32: {rate[('fp32', True)] / rate[('fp32', False)]:.3f}"
          f" x; int8: {rate[('int8', True)] / rate[('int8', False)]:.3f} x")
    print(f"int8 with the score / fp32 with the score: "
          f"{rate[('int8', True)] / rate[('fp32', True)]:.2f} x; / fp32 without: "
          f"{rate[('int8', True)] / rate[('fp32', False)]:.2f} x")

    bit = FLAGS.OUT_OF_DISTRIBUTION.bit
    f32 = np.asarray(tables[("fp32", True)]["classify_flags"]) & bit != 0
    i8 = np.asarray(tables[("int8", True)]["classify_flags"]) & bit != 0
    s32 = np.ma.filled(tables[("fp32", True)]["ood_score"], np.nan)
    s8 = np.ma.filled(tables[("int8", True)]["ood_score"], np.nan)
    near = (s32 > 1 / INT8_OOD_GUARD) & (s32 < INT8_OOD_GUARD)
    print(f"int8 flags agree with fp32 on {100 * np.mean(f32 == i8):.2f} % of "
          f"{len(data)} objects ({int(np.sum(f32 != i8))} differ); score within "
          f"x{INT8_OOD_GUARD} of 1 (recomputed in float32 on the int8 path): "
          f"{100 * np.mean(near):.1f} %; median |score ratio - 1| "
          f"{np.nanmedian(np.abs(s8 / s32 - 1)):.4f}")
    print(f"{'set':28s} {'n':>5s} {'fp32 flagged':>12s} {'int8 flagged':>12s} "
          f"{'agree':>7s}")
    for i, name in enumerate(names):
        m = which == i
        print(f"{name:28s} {m.sum():5d} {100 * f32[m].mean():11.1f}% "
              f"{100 * i8[m].mean():11.1f}% {100 * np.mean(f32[m] == i8[m]):6.1f}%")
    for p in ("fp32", "int8"):
        a, b = tables[(p, False)], tables[(p, True)]
        same = np.array_equal(np.asarray(a["class_prob"]), np.asarray(b["class_prob"]),
                              equal_nan=True)
        print(f"{p}: probabilities identical with and without the score: {same}")


if __name__ == "__main__":
    main()
