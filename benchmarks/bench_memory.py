# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: peak memory of `ClusterClassifier` on memory-mapped FITS mosaics.

Writes 5-band float32 mosaics (one big-endian FITS file per band, as HST
drizzled products) of growing size into a temporary directory -- sparse files:
the header, a zero background and the objects' stamps are written, the rest is
a hole -- places the same number of sources (20000 by default) at random on
each, and classifies them in a fresh subprocess that reports its peak resident
set size (``resource.getrusage().ru_maxrss``: file pages mapped from the
mosaic count, the page cache does not). The goal: peak RSS under 2 GB for a
20000x20000 x 5-band mosaic (8 GB of float32), and flat in the mosaic size.
For the middle size it also runs with the per-chunk release of mapped pages
switched off, to show what that release buys, and it reports the RSS of a
process that only loads the network (the floor).

Run from the repository root (needs ~1 GB of real disk, 8 GB apparent)::

    python benchmarks/bench_memory.py                       # 5k, 10k, 20k mosaics
    python benchmarks/bench_memory.py --sizes 4000 8000 --n 5000
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")
STAMP = 15  # half-width of the written object stamps


def write_sparse_fits(path, side, xy, rng, band_index):
    """A side x side big-endian float32 FITS image, sparse except near ``xy``."""
    header = fits.PrimaryHDU(np.zeros((1, 1), dtype=">f4")).header
    header["NAXIS1"] = side
    header["NAXIS2"] = side
    header["BUNIT"] = "ELECTRONS/S"
    raw = header.tostring().encode("ascii")
    nbytes = side * side * 4
    padded = -(-nbytes // 2880) * 2880
    with open(path, "wb") as f:
        f.write(raw)
        f.truncate(len(raw) + padded)  # a hole: reads as zeros
    data = np.memmap(path, dtype=">f4", mode="r+", offset=len(raw), shape=(side, side))
    w = 2 * STAMP + 1
    yy, xx = np.mgrid[-STAMP:STAMP + 1, -STAMP:STAMP + 1]
    for x, y in xy:
        x0, y0 = int(x) - STAMP, int(y) - STAMP
        sigma = 1.0 + 0.5 * rng.random()
        stamp = (0.05 * rng.standard_normal((w, w)) + 0.2
                 + (50.0 + 20 * band_index) * rng.random()
                 * np.exp(-((xx - x + int(x)) ** 2 + (yy - y + int(y)) ** 2)
                          / (2 * sigma**2)))
        data[y0:y0 + w, x0:x0 + w] = stamp
    data.flush()
    del data


def child(args):
    """Classify in this (fresh) process; print a JSON line with the peak RSS."""
    import torch

    from astro_clustercls import BandImages
    from astro_clustercls.inference import _streaming as streaming
    from astro_clustercls.inference.classifier import ClusterClassifier

    torch.set_num_threads(args.threads)
    source = {"weights_path": args.weights} if args.weights else {}
    clf = ClusterClassifier("resnet18", device="cpu", **source)
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"floor_kb": floor}
    if args.child_dir:
        if args.no_release:
            streaming.RELEASE_MIN_BYTES = float("inf")
        d = Path(args.child_dir)
        images = BandImages.from_files({b: d / f"{b}.fits" for b in BANDS})
        xy = np.load(d / "xy.npy")
        t0 = time.perf_counter()
        result = clf(xy, images)
        out["seconds"] = time.perf_counter() - t0
        out["n"] = len(result)
        out["classified"] = int(np.count_nonzero(~result["cluster_class"].mask))
        out["precision"] = clf.precision
    out["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


def run_child(script, args, directory=None, no_release=False):
    cmd = [sys.executable, script, "--child", "--threads", str(args.threads)]
    if args.weights:
        cmd += ["--weights", args.weights]
    if directory is not None:
        cmd += ["--child-dir", str(directory)]
    if no_release:
        cmd.append("--no-release")
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--n", type=int, default=20000, help="sources (20000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-release", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.weights is None and not args.child:
        from bench_inference import default_weights

        args.weights = default_weights()
    if args.child:
        return child(args)

    from bench_inference import machine

    script = os.path.abspath(__file__)
    print(f"machine : {machine()}")
    floor = run_child(script, args)
    print(f"floor   : python + torch + the network loaded: "
          f"{floor['peak_kb'] / 2**20:.2f} GB peak RSS")
    print(f"{'mosaic':>22s} {'on disk':>9s} {'sources':>8s} {'seconds':>8s} "
          f"{'peak RSS':>9s}  peak/mosaic")
    rows = []
    for side in args.sizes:
        apparent = side * side * 4 * len(BANDS)
        with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
            free = shutil.disk_usage(tmp).free
            if free < 2 * 2**30 + apparent // 50:
                print(f"{side}x{side}: skipped, {free / 2**30:.0f} GB free")
                continue
            rng = np.random.default_rng(args.seed)
            xy = rng.uniform(STAMP + 1, side - STAMP - 2, size=(args.n, 2))
            np.save(Path(tmp) / "xy.npy", xy)
            t0 = time.perf_counter()
            for i, band in enumerate(BANDS):
                write_sparse_fits(Path(tmp) / f"{band}.fits", side, xy, rng, i)
            write_s = time.perf_counter() - t0
            variants = [False] + ([True] if side == args.sizes[len(args.sizes) // 2]
                                  and apparent <= 4 * 2**30 else [])
            for no_release in variants:
                res = run_child(script, args, tmp, no_release=no_release)
                peak = res["peak_kb"] * 1024
                label = f"{side}x{side}x5" + (" no release" if no_release else "")
                print(f"{label:>22s} {apparent / 2**30:7.2f}GB {res['n']:8d} "
                      f"{res['seconds']:8.1f} {peak / 2**30:7.2f}GB  "
                      f"{peak / apparent:.3f}  ({res['classified']} classified, "
                      f"{res['precision']}; files written in {write_s:.0f} s)")
                rows.append((side, no_release, peak))
    ok = [p for s, nr, p in rows if not nr and s >= 20000]
    if ok:
        print(f"20000x20000 x 5 (8 GB): peak RSS {max(ok) / 2**30:.2f} GB "
              f"(goal < 2 GB)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
