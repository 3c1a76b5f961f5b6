# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: ``classify_fields`` throughput with 1 and 2 Dask workers.

Simulated fields (``astro_clustercls.simulation.simulate_field``, 5 bands,
512x512 pixels, 400 objects each by default) are written as FITS files with
an ECSV source table each; a randomly initialised ResNet18 with 31-pixel
cutouts is saved as a safetensors file. The fields are then classified

* in this process, one field after the other (``client=None``, 1 torch thread:
  the baseline),
* on a ``distributed.LocalCluster`` of 1 and of 2 worker processes with 1
  thread each (each worker reads its own FITS files, memory-mapped).

Each cluster runs the fields 1 + ``--repeat`` times: the first ("cold") run
includes starting the worker processes' torch and loading the network; the
fastest of the next ``--repeat`` ("warm") runs is the throughput of a running
cluster (the in-process baseline is the fastest of ``--repeat`` runs before
and as many after the clusters).
Every result is checked to be identical to the in-process one. Sources per
second, the speed-up of 1 and of 2 workers against the one process, and the
2-worker / 1-worker ratio are printed. Warm runs stop early when the next one
would take the run past ``--max-seconds`` (default 300; at least one warm run
per setting).

Run::

    python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --quick       # 4 fields x 100 objects
    python benchmarks/bench_distributed.py --fields 8 --n-objects 1000
    python benchmarks/bench_distributed.py --no-malloc-trim

Dask starts its worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (to
return freed memory to the system). That also turns off glibc's adaptive mmap
threshold, so every large numpy/torch buffer of a batch is mapped and
page-faulted afresh, which slows CPU inference in the workers several times
(563 against 2624 sources/s for one worker on our shared 2-core machine).
``--no-malloc-trim`` starts the workers without it.
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits


def write_fields(directory, n_fields, n_objects, shape):
    from astro_clustercls.simulation import simulate_field

    fields, n_sources = [], 0
    for seed in range(n_fields):
        images, truth = simulate_field(seed=seed, n_objects=n_objects, shape=shape)
        paths = {}
        for band in images.bands:
            header = images.wcs.to_header()
            header["BUNIT"] = "ELECTRONS/S"
            path = directory / f"field{seed}_{band.lower()}.fits"
            fits.PrimaryHDU(np.asarray(images[band].data, np.float32),
                            header).writeto(path)
            paths[band] = str(path)
        table = truth["id", "x_centroid", "y_centroid"]
        table["true_class"] = truth["cluster_class"]
        table_path = directory / f"field{seed}.ecsv"
        table.write(table_path)
        fields.append((str(table_path), paths))
        n_sources += len(table)
    return fields, n_sources


def write_weights(path, size):
    import torch

    from astro_clustercls.models import build_network, save_weights

    torch.manual_seed(0)
    meta = {"arch": "resnet18", "bands": ["F275W", "F336W", "F438W", "F555W", "F814W"],
            "cutout_size": size, "normalization": "asinh-v1",
            "categories": [1, 2, 3, 4]}
    save_weights(build_network("resnet18", n_bands=5), path, meta)


def same(results, reference):
    for a, b in zip(results, reference, strict=True):
        if not (np.array_equal(a["class_prob"], b["class_prob"], equal_nan=True)
                and np.array_equal(a["classify_flags"], b["classify_flags"])):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--n-objects", type=int, default=400)
    parser.add_argument("--shape", type=int, default=512)
    parser.add_argument("--size", type=int, default=31, help="cutout side (px)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="warm runs per setting; the fastest is reported")
    parser.add_argument("--no-malloc-trim", action="store_true",
                        help="start the workers without Dask's "
                             "MALLOC_TRIM_THRESHOLD_=65536 environment setting")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="time budget: warm runs stop when the next would "
                             "exceed it (at least one per setting)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n_objects = 100

    import dask
    import torch
    from distributed import Client, LocalCluster

    from astro_clustercls.inference.distributed import classify_fields

    torch.set_num_threads(1)
    load = os.getloadavg()
    t_begin = time.perf_counter()

    def within_budget(last_run_s):
        return time.perf_counter() - t_begin + last_run_s <= args.max_seconds
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        fields, n_sources = write_fields(tmp, args.fields, args.n_objects,
                                         (args.shape, args.shape))
        weights = tmp / "w.safetensors"
        write_weights(weights, args.size)
        print(f"{args.fields} simulated fields of {args.shape}x{args.shape} px x 5 "
              f"bands, {n_sources} sources, {args.size}-px cutouts, ResNet18 "
              f"(made in {time.perf_counter() - t0:.1f} s)")
        print(f"machine: {os.cpu_count()} CPU cores, load average {load[0]:.1f} / "
              f"{load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at start")
        kwargs = {"weights_path": weights, "device": "cpu"}

        local, runs = np.inf, 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            reference = classify_fields(fields, threads_per_worker=1, **kwargs)
            local = min(local, time.perf_counter() - t0)
            runs += 1
            if not within_budget(4 * local):   # leave time for the clusters
                break
        print(f"in process, 1 thread  : {local:6.2f} s  "
              f"{n_sources / local:7.0f} sources/s (best of {runs})")

        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
        if args.no_malloc_trim:
            environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        print(f"worker environment: {environ}")
        rates = {}
        for n_workers in (1, 2):
            with warnings.catch_warnings(), dask.config.set(
                    {"distributed.nanny.pre-spawn-environ": environ}):
                warnings.simplefilter("ignore")   # dashboard / port notices
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None)
                client = Client(cluster)
            try:
                times = []
                for _ in range(1 + args.repeat):      # cold, then warm runs
                    t0 = time.perf_counter()
                    results = classify_fields(fields, client=client, **kwargs)
                    times.append(time.perf_counter() - t0)
                    if not same(results, reference):
                        raise SystemExit("results differ from the in-process run")
                    if len(times) >= 2 and not within_budget(times[-1]):
                        break
            finally:
                client.close()
                cluster.close()
            warm = min(times[1:])
            rates[n_workers] = n_sources / warm
            print(f"{n_workers} worker{'s' if n_workers > 1 else ' '} x 1 thread  : "
                  f"{warm:6.2f} s  {rates[n_workers]:7.0f} sources/s "
                  f"(best of {len(times) - 1} warm; cold first run: "
                  f"{times[0]:.2f} s)")
        # the one process again, after the clusters: the load of a shared
        # machine changes in minutes, and the fastest run of each is compared
        again = np.inf
        for _ in range(runs):
            t0 = time.perf_counter()
            classify_fields(fields, threads_per_worker=1, **kwargs)
            again = min(again, time.perf_counter() - t0)
        local = min(local, again)
        print(f"in process, again     : {again:6.2f} s  "
              f"{n_sources / again:7.0f} sources/s (best of {runs}); the faster "
              "of the two is the baseline")
        base = n_sources / local
        print(f"speed-up against one process (1 thread): 1 worker "
              f"{rates[1] / base:.2f}x, 2 workers {rates[2] / base:.2f}x  (ideal "
              f"1x and 2x on 2 idle cores)")
        print(f"2 workers / 1 worker  : {rates[2] / rates[1]:.2f}x  "
              f"(ideal 2x on 2 idle cores)")
        print("results identical to the in-process run: yes")
        print(f"total: {time.perf_counter() - t_begin:.0f} s")


if __name__ == "__main__":
    main()
