# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
GPU check: the CUDA path of the classifier and of training, in one short run.

On a simulated field (``simulate_field``, 2000 objects on 1536x1536 5-band
images by default) it measures, in one process:

* the CPU float32 reference: `ClusterClassifier` on the CPU, ``precision='fp32'``
  (all CPU cores), the labels every CUDA row is compared with;
* `ClusterClassifier` on CUDA end to end (positions -> cutouts ->
  normalisation -> copy -> network -> table), for each network (ResNet18,
  VGG19-BN, bundled weights), with mixed precision off (``'fp32'``) and on
  (``'auto'``: bf16 on GPUs that have it, fp16 on older tensor-core GPUs;
  ``'fp16'`` too), at the default batch size and at 4x it: objects per
  second, label agreement with the CPU fp32 labels (%), the largest
  probability difference, and whether two runs and two batch sizes give the
  same labels;
* the bare forward pass of the same cached network on cutouts already on the
  GPU (how much of the end-to-end time the network is);
* training steps with ``train``'s settings on CUDA (channels_last, bf16
  autocast where supported, fused AdamW) and in plain fp32: images per second,
  through the package's ``train`` itself (one epoch);

and prints a table (and writes it as JSON with ``--json``). Without a CUDA
GPU it prints why and exits with status 0 (``--require-gpu``: status 2).
``--device cpu`` runs the same code on the CPU with tiny inputs: a check of
this script, not of a GPU.

Run from the repository root (``benchmarks/gpu_check.sh`` bounds it to 5 min)::

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --quick            # ~1 min
    python benchmarks/gpu_check.py --device cpu --quick   # dry run without a GPU
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

#: default time budget (s); sections that would start after it are skipped
BUDGET_S = 240.0


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def describe(device):
    """One line: the GPU, the CUDA/cuDNN versions, torch, the CPU."""
    parts = [f"torch {torch.__version__}", f"python {platform.python_version()}",
             f"{os.cpu_count()} CPU cores"]
    if str(device).startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        parts.insert(0, f"{props.name} ({props.total_memory / 2**30:.0f} GiB, "
                     f"compute capability {props.major}.{props.minor})")
        parts.insert(1, f"CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()}")
    else:
        parts.insert(0, "CPU dry run (no GPU measured)")
    return ", ".join(parts)


def no_gpu_reason():
    """Why CUDA cannot be used here (None if it can)."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    try:
        available = torch.cuda.is_available()
    except Exception as exc:  # noqa: BLE001 - a broken driver: say so, do not crash
        return f"CUDA could not be initialised: {exc}"
    if not available or torch.cuda.device_count() == 0:
        return (f"no CUDA device is visible (torch {torch.__version__}, built for "
                f"CUDA {torch.version.cuda}; CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})")
    return None


class Clock:
    """The run's time budget: sections check it before they start."""

    def __init__(self, budget):
        self.t0 = time.perf_counter()
        self.budget = budget
        self.skipped = []

    def elapsed(self):
        return time.perf_counter() - self.t0

    def allows(self, what, estimate=0.0):
        if self.elapsed() + estimate > self.budget:
            self.skipped.append(what)
            print(f"  skipped (time budget {self.budget:.0f} s): {what}", flush=True)
            return False
        return True


def timed(func, device, repeat):
    """Best wall-clock time of ``func()`` over ``repeat`` runs (after one warm-up)."""
    result = func()
    _sync(device)
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        result = func()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, result


def classify_rows(args, device, images, sources, clock, rows):
    """End-to-end rows: each network x precision x batch size against CPU fp32."""
    from astro_clustercls.inference.classifier import ClusterClassifier

    n = len(sources)
    for model in args.models:
        if not clock.allows(f"{model}: CPU fp32 reference", 5.0):
            continue
        t0 = time.perf_counter()
        cpu = ClusterClassifier(model, device="cpu", precision="fp32",
                                batch_size=args.batch_size)
        reference = cpu(sources, images)
        cpu_s = time.perf_counter() - t0
        ref_ok = ~np.ma.getmaskarray(reference["cluster_class"])
        ref_cls = np.ma.getdata(reference["cluster_class"])
        ref_p = np.asarray(reference["class_prob"])
        rows.append({"what": f"{model} CPU fp32 (reference)", "objects_per_s":
                     n / cpu_s, "seconds": cpu_s, "agree_pct": 100.0, "max_dp": 0.0,
                     "note": f"{torch.get_num_threads()} threads, one run "
                             "(with loading the network)"})
        print(f"  {model}: CPU fp32 reference {n / cpu_s:.0f} objects/s", flush=True)

        seen = set()
        for requested in args.precisions:
            for batch in (args.batch_size, 4 * args.batch_size):
                what = f"{model} {device} precision={requested!r} batch {batch}"
                if not clock.allows(what, 5.0):
                    continue
                clf = ClusterClassifier(model, device=device, precision=requested,
                                        batch_size=batch)
                if (clf.precision, batch) in seen:
                    continue          # 'auto' resolved to a precision already run
                seen.add((clf.precision, batch))
                seconds, result = timed(lambda c=clf: c(sources, images), device,
                                        args.repeat)
                again = clf(sources, images)
                ok = ~np.ma.getmaskarray(result["cluster_class"])
                cls = np.ma.getdata(result["cluster_class"])
                both = ok & ref_ok
                agree = float(np.mean(cls[both] == ref_cls[both])) if both.any() \
                    else float("nan")
                p = np.asarray(result["class_prob"])
                dp = float(np.nanmax(np.abs(p[both] - ref_p[both]))) if both.any() \
                    else float("nan")
                repeat_same = bool(np.array_equal(
                    np.ma.getdata(again["cluster_class"]), cls))
                meta = result.meta["astro_clustercls"]
                rows.append({
                    "what": f"{model} {device} {clf.precision}"
                            + (f" (asked {requested})" if requested != clf.precision
                               else "") + f" batch {batch}",
                    "objects_per_s": n / seconds, "seconds": seconds,
                    "agree_pct": 100 * agree, "max_dp": dp,
                    "note": f"same classified rows: {bool(np.array_equal(ok, ref_ok))}"
                            f"; rerun identical labels: {repeat_same}; batch used "
                            f"{meta.get('batch_size')}"})
                print(f"  {rows[-1]['what']}: {n / seconds:.0f} objects/s, "
                      f"{100 * agree:.2f} % agree, max |dp| {dp:.4f}", flush=True)
    return rows


def forward_rows(args, device, images, sources, clock, rows):
    """The bare forward pass of the classifier's network on cutouts on the device."""
    from astro_clustercls import make_cutouts
    from astro_clustercls.inference.classifier import ClusterClassifier
    from astro_clustercls.preprocessing import normalize
    from astro_clustercls.runtime import autocast

    for model in args.models:
        seen = set()
        for requested in ("fp32", "auto"):
            what = f"{model} forward only, {requested}"
            if not clock.allows(what, 5.0):
                continue
            clf = ClusterClassifier(model, device=device, precision=requested,
                                    batch_size=args.batch_size)
            if clf.precision in seen:
                continue              # 'auto' is fp32 here
            seen.add(clf.precision)
            net = clf._network()
            stack = make_cutouts(images.select(list(clf.bands)), sources,
                                 clf.cutout_size)
            keep = stack.usable
            x = torch.from_numpy(normalize(stack.data[keep], clf.normalization))
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            bs = args.batch_size

            def run(net=net, x=x, bs=bs, precision=clf.precision):
                with torch.inference_mode(), autocast(x.device.type, precision):
                    for i in range(0, len(x), bs):
                        net(x[i:i + bs])

            seconds, _ = timed(run, device, args.repeat)
            rows.append({"what": f"{model} {device} {clf.precision} forward only "
                                 f"batch {bs}", "objects_per_s": len(x) / seconds,
                         "seconds": seconds, "agree_pct": float("nan"),
                         "max_dp": float("nan"),
                         "note": "cutouts already normalised, on the device"})
            print(f"  {rows[-1]['what']}: {len(x) / seconds:.0f} img/s", flush=True)
    return rows


def training_rows(args, device, clock, rows):
    """One epoch of ``train`` on CUDA: its settings against plain fp32."""
    from astro_clustercls.models import build_network
    from astro_clustercls.preprocessing import normalize
    from astro_clustercls.simulation import make_training_set
    from astro_clustercls.training import LabelledCutouts, train
    from astro_clustercls.training.loop import _amp_dtype

    if not clock.allows("training", 20.0):
        return rows
    ts = make_training_set(args.train_n, 51, seed=2)
    data = normalize(ts.data)
    train_set = LabelledCutouts(data, ts.labels, normalize="identity")
    amp = _amp_dtype("auto", torch.device(device))
    settings = {"train's settings (channels_last, amp='auto', fused AdamW)":
                dict(channels_last=True, amp="auto", fused=None),
                "plain (NCHW, fp32, unfused AdamW)":
                dict(channels_last=False, amp=False, fused=False)}
    for label, kw in settings.items():
        if not clock.allows(f"training: {label}", 10.0):
            continue
        best = float("inf")
        for _ in range(2):             # the first epoch includes cuDNN autotuning
            torch.manual_seed(0)
            net = build_network("resnet18", n_bands=5)
            _sync(device)
            t0 = time.perf_counter()
            result = train(net, train_set, epochs=1, batch_size=args.train_batch,
                           device=device, seed=0, early_stopping=None, **kw)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
        loss = float(result.history["train_loss"][0])
        rows.append({"what": f"train resnet18 {device}: {label}",
                     "objects_per_s": len(train_set) / best, "seconds": best,
                     "agree_pct": float("nan"), "max_dp": float("nan"),
                     "note": f"autocast {amp if kw['amp'] == 'auto' else None}, "
                             f"batch {args.train_batch}, one epoch of "
                             f"{len(train_set)}, loss {loss:.3f}"})
        print(f"  {rows[-1]['what']}: {len(train_set) / best:.0f} img/s "
              f"(loss {loss:.3f})", flush=True)
    return rows


def print_table(rows):
    head = (f"{'measurement':<72s} {'obj/s':>9s} {'seconds':>8s} {'agree %':>8s} "
            f"{'max|dp|':>8s}  note")
    print(head)
    print("-" * len(head))
    for r in rows:
        agree = "" if np.isnan(r["agree_pct"]) else f"{r['agree_pct']:.2f}"
        dp = "" if np.isnan(r["max_dp"]) else f"{r['max_dp']:.4f}"
        print(f"{r['what']:<72s} {r['objects_per_s']:9.0f} {r['seconds']:8.2f} "
              f"{agree:>8s} {dp:>8s}  {r['note']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda",
                        help="'cuda' (default), 'cuda:N', or 'cpu' for a dry run")
    parser.add_argument("--n", type=int, default=2000, help="objects (2000)")
    parser.add_argument("--shape", type=int, default=1536, help="image side (1536)")
    parser.add_argument("--models", default="resnet18,vgg19_bn",
                        help="comma-separated networks (resnet18,vgg19_bn)")
    parser.add_argument("--precisions", default="fp32,auto,fp16",
                        help="comma-separated precisions (fp32,auto,fp16)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="timings, best kept")
    parser.add_argument("--train-n", type=int, default=4096,
                        help="training cutouts (4096)")
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--max-seconds", type=float, default=BUDGET_S,
                        help=f"time budget (default {BUDGET_S:.0f} s)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--quick", action="store_true",
                        help="300 objects on 512x512, 512 training cutouts, 1 repeat")
    parser.add_argument("--require-gpu", action="store_true",
                        help="exit with status 2 (not 0) when there is no GPU")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.shape, args.train_n, args.repeat = 300, 512, 512, 1
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    device = args.device
    if device.startswith("cuda"):
        reason = no_gpu_reason()
        if reason is not None:
            print(f"gpu_check: no GPU here -- {reason}. Nothing was measured; run "
                  "this on a machine with a CUDA GPU (or --device cpu for a dry run "
                  "of the script).")
            return 2 if args.require_gpu else 0
    clock = Clock(args.max_seconds)
    torch.set_num_threads(os.cpu_count() or 1)

    from astro_clustercls.simulation import simulate_field

    print(f"gpu_check: {describe(device)}", flush=True)
    t0 = time.perf_counter()
    images, truth = simulate_field(seed=1, n_objects=args.n,
                                   shape=(args.shape, args.shape))
    sources = truth["x_centroid", "y_centroid"]
    print(f"input: simulated field {args.shape}x{args.shape} x 5 bands, {len(truth)} "
          f"objects ({time.perf_counter() - t0:.0f} s to simulate); budget "
          f"{args.max_seconds:.0f} s", flush=True)

    rows = []     # each section appends its rows as they are measured
    try:
        classify_rows(args, device, images, sources, clock, rows)
        forward_rows(args, device, images, sources, clock, rows)
        training_rows(args, device, clock, rows)
    except KeyboardInterrupt:       # gpu_check.sh's time limit: keep what is done
        clock.skipped.append("the rest (interrupted)")
    print()
    print_table(rows)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory allocated: {peak:.2f} GiB")
    if clock.skipped:
        print(f"skipped (time budget): {'; '.join(clock.skipped)}")
    print(f"total: {clock.elapsed():.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": describe(device), "rows": rows,
                       "skipped": clock.skipped}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
