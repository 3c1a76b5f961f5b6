# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Throughput of the simulator's training-set generator, on one core.

Run ``python benchmarks/bench_simulation.py [--n 8000] [--size 31]
[--simulator v1|v2]``. Reports
cutouts per second of `make_training_set` (wall and CPU time, BLAS/OpenMP
limited to one thread) next to a baseline in the same run: rendering the same
number of cutouts by evaluating each object's PSF-convolved profile on the
pixel grid one at a time (`MoffatPSF.image`, the naive way), so the ratio is
independent of the machine's speed.
"""

import argparse
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--size", type=int, default=31)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--simulator", default="v1", help="simulator version, v1 (default) or v2"
    )
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    from astro_clustercls.simulation import get_psf, make_training_set

    sim = args.simulator
    make_training_set(64, args.size, seed=0, simulator=sim)  # warm-up (tables...)
    walls, cpus = [], []
    for r in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        ts = make_training_set(args.n, args.size, seed=r + 1, simulator=sim)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    assert ts.data.shape == (args.n, 5, args.size, args.size)
    rate_wall = args.n / min(walls)
    rate_cpu = args.n / min(cpus)
    # baseline: one object and band at a time through the real-space PSF image
    nb = 200
    psfs = [get_psf(b) for b in ts.bands]
    rng = np.random.default_rng(0)
    c0 = time.process_time()
    for _ in range(nb):
        x, y = rng.uniform(14.5, 15.5, 2)
        for p in psfs:
            p.image(args.size, center=(x, y), pad=2 * args.size + 2)
    base = nb / (time.process_time() - c0)
    print(
        f"make_training_set (simulator {sim}): {args.n} cutouts of "
        f"5x{args.size}x{args.size}"
    )
    print(f"  wall : {rate_wall:8.0f} cutouts/s (best of {args.repeat})")
    print(f"  CPU  : {rate_cpu:8.0f} cutouts/s (one core)")
    print(f"  naive per-object rendering (stars only): {base:8.0f} cutouts/s")
    print(f"  ratio (CPU) : {rate_cpu / base:6.1f}x")
    return rate_cpu


if __name__ == "__main__":
    main()
