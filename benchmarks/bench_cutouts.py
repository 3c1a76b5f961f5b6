# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: ``make_cutouts`` against a loop of ``astropy.nddata.Cutout2D``.

Both run in the same process on the same images and positions (3000 objects x
5 bands x 31x31 pixels on 4000x4000 images by default; about 2% of the objects
sit on the image edges). The Cutout2D loop copies each cutout into an
``(N, B, S, S)`` float32 array, which is what ``make_cutouts`` returns, and the
two results are checked to be identical. A second part writes the images to
FITS files (big-endian float32 SCI + DQ extensions, as HST products) and cuts
from the memory-mapped files, reporting the peak Python heap allocations
(tracemalloc) and the resident-set growth against the size of the images.

Run::

    python benchmarks/bench_cutouts.py              # full size (~1.5 GB disk-free RAM)
    python benchmarks/bench_cutouts.py --quick      # 1000 objects, 2000x2000 images
"""

import argparse
import gc
import os
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError

from astro_clustercls import BandImages, make_cutouts

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")


def rss_bytes():
    """Current resident set size (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return float("nan")


def make_inputs(n, nbands, shape, size, seed):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    arrays = {}
    for band in BANDS[:nbands]:
        img = rng.standard_normal(shape, dtype=np.float32)
        img[rng.integers(0, ny, 200), rng.integers(0, nx, 200)] = np.nan
        arrays[band] = img
    xy = rng.uniform([0, 0], [nx - 1, ny - 1], size=(n, 2))
    edge = rng.random(n) < 0.02  # some objects partly off the image
    xy[edge, 0] = rng.uniform(-size / 2, size / 2, edge.sum())
    return arrays, xy


def cutout2d_loop(arrays, xy, size):
    out = np.full((len(xy), len(arrays), size, size), np.nan, np.float32)
    for b, image in enumerate(arrays.values()):
        for i, (x, y) in enumerate(xy):
            try:
                out[i, b] = Cutout2D(image, (x, y), size, mode="partial",
                                     fill_value=np.nan, copy=False).data
            except NoOverlapError:
                pass
    return out


def best_time(func, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="objects (3000)")
    parser.add_argument("--bands", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--size", type=int, default=31, help="cutout side (31)")
    parser.add_argument("--shape", type=int, default=4000, help="image side (4000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="1000 objects on 2000x2000 images")
    parser.add_argument("--no-memmap", action="store_true",
                        help="skip the memory-mapped FITS part")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.shape = 1000, 2000
    shape = (args.shape, args.shape)
    arrays, xy = make_inputs(args.n, args.bands, shape, args.size, args.seed)
    images = BandImages(arrays)
    nbytes = sum(a.nbytes for a in arrays.values())
    print(f"{args.n} objects x {args.bands} bands x {args.size}^2 px cutouts, "
          f"{shape[0]}x{shape[1]} float32 images ({nbytes / 2**20:.0f} MiB)")

    t_fast, stack = best_time(partial(make_cutouts, images, xy, args.size),
                              args.repeat)
    t_loop, ref = best_time(partial(cutout2d_loop, arrays, xy, args.size),
                            max(1, args.repeat // 2))
    np.testing.assert_array_equal(stack.data, ref)  # pixel-identical
    print(f"make_cutouts      : {t_fast * 1e3:8.1f} ms (best of {args.repeat})")
    print(f"Cutout2D loop     : {t_loop * 1e3:8.1f} ms "
          f"({t_loop / (args.n * args.bands) * 1e6:.1f} us per cutout)")
    print(f"speed ratio       : {t_loop / t_fast:8.1f}x  (goal >= 10x)")
    print(f"flagged rows      : {np.count_nonzero(stack.flags)} of {args.n}")
    del stack, ref, images
    gc.collect()

    if args.no_memmap:
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for band, img in arrays.items():
            paths[band] = Path(tmp) / f"{band.lower()}_flt.fits"
            fits.HDUList([fits.PrimaryHDU(header=fits.Header({"FILTER": band})),
                          fits.ImageHDU(img.astype(">f4"), name="SCI"),
                          fits.ImageHDU(np.zeros(shape, np.int16), name="DQ")]
                         ).writeto(paths[band])
        del arrays
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start()
        t0 = time.perf_counter()
        mm_images = BandImages.from_files(paths)
        mm_stack = make_cutouts(mm_images, xy, args.size)
        t_mm = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = rss_bytes()
        files = sum(p.stat().st_size for p in paths.values())
        print(f"memmapped FITS    : {t_mm * 1e3:8.1f} ms (open {args.bands} files "
              "+ cut, first touch of the pages; SCI + DQ gathered)")
        print(f"  peak heap       : {peak / 2**20:8.1f} MiB (tracemalloc); cutouts "
              f"{mm_stack.data.nbytes / 2**20:.1f} MiB; SCI images "
              f"{nbytes / 2**20:.0f} MiB; files {files / 2**20:.0f} MiB")
        print(f"  peak / images   : {peak / nbytes:8.3f}")
        print(f"  RSS growth      : {(rss1 - rss0) / 2**20:8.1f} MiB (includes the "
              "file pages the cutouts touched)")
        del mm_stack, mm_images
        gc.collect()


if __name__ == "__main__":
    main()
