# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: end-to-end `ClusterClassifier` against a plain torchvision forward.

On one simulated field (``simulate_field``, 3000 objects on 2048x2048 5-band
images by default) it times, in the same process:

* the baseline: the same ResNet18 (torchvision, 5 input bands) in float32 NCHW,
  batch 256, on cutouts made and normalised beforehand (forward pass only);
* the classifier end to end (positions -> cutouts -> normalisation -> network
  -> table), default settings (channels_last, bf16 autocast where the CPU has
  native bf16, cutouts of the next chunk made in a background thread);
* the forward pass alone in each mode: fp32 NCHW, fp32 channels_last,
  channels_last + bf16 autocast (images per second);
* the per-call overhead: the classifier on a small field (the first
  ``--small`` = 200 sources of the same images, so that nothing but the
  number of sources changes) against the whole field, in objects per second
  (goal: the small field at >= 70 % of the large field's rate);

and reports the speed ratio (goal >= 2x) and how often the default path's
labels agree with the float32 path's (goal >= 99.5 %). torch.compile can be
tried with ``--compile`` (it is not used by the package: see the README).

The run is bounded on every CPU: where bfloat16 is not native (no
AVX512-BF16 / AMX, see `astro_clustercls.runtime.cpu_has_native_bf16`),
oneDNN emulates it several times slower than float32, so the bf16 variants
are skipped and the skips printed (``--force-bf16`` times them on at most
``2 x batch`` cutouts); and after the first timed round, further rounds run
only while the estimated total stays within ``--max-seconds`` (default 300).

Run from the repository root::

    python benchmarks/bench_inference.py             # ~3-6 min on 1 core
    python benchmarks/bench_inference.py --n 1000 --shape 1024 --repeat 2
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from astro_clustercls import make_cutouts
from astro_clustercls.inference.classifier import ClusterClassifier
from astro_clustercls.models import get_model
from astro_clustercls.preprocessing import normalize
from astro_clustercls.runtime import cpu_has_native_bf16
from astro_clustercls.simulation import simulate_field

#: goal of the per-call overhead check: small-field rate / large-field rate
SMALL_FIELD_GOAL = 0.70


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """One line describing the machine, the software and the current load."""
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average n/a"
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
    return (f"{_cpu_model()}, {os.cpu_count()} cores, native bf16: "
            f"{cpu_has_native_bf16()}, {gpu}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), python "
            f"{platform.python_version()}; {load}")


def best_time(func, repeat):
    """The shortest of ``repeat`` wall-clock timings of ``func()``, and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def default_weights():
    """``ASTRO_CLUSTERCLS_WEIGHTS`` if set, else None (the bundled network)."""
    path = os.environ.get("ASTRO_CLUSTERCLS_WEIGHTS")
    return path if path and os.path.exists(path) else None


def forward_runner(net, x, *, channels_last, bf16, batch_size):
    """A function running the bare forward pass over ``x``, returning probabilities."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run():
        net.to(memory_format=fmt)
        out = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=bf16):
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].contiguous(memory_format=fmt)
                out.append(torch.softmax(net(xb).float(), dim=1))
        return torch.cat(out).numpy()

    return run


def interleaved(funcs, repeat, max_seconds=None, warm=None):
    """Best time and last result of each function, timed in alternating rounds.

    On a shared machine a burst of someone else's load then hits one round of
    every function instead of all rounds of one. ``warm`` maps a key to a
    cheap warm-up call (oneDNN primitive creation; default: the function
    itself). After the first round, another round runs only if the estimated
    total stays within ``max_seconds``. Returns ``(best, results, rounds)``.
    """
    warm = warm or {}
    best = {k: float("inf") for k in funcs}
    results = {}
    for key, func in funcs.items():
        warm.get(key, func)()
    t_start = time.perf_counter()
    rounds = 0
    for _ in range(max(int(repeat), 1)):
        elapsed = time.perf_counter() - t_start
        if rounds and max_seconds is not None \
                and elapsed * (rounds + 1) / rounds > max_seconds:
            break
        for key, func in funcs.items():
            t0 = time.perf_counter()
            results[key] = func()
            best[key] = min(best[key], time.perf_counter() - t0)
        rounds += 1
    return best, results, rounds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="objects (default 3000)")
    parser.add_argument("--shape", type=int, default=2048, help="image side (2048)")
    parser.add_argument("--repeat", type=int, default=3, help="timings, best kept")
    parser.add_argument("--small", type=int, default=200,
                        help="objects of the small field of the per-call overhead "
                        "check (default 200)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="time budget of the timed rounds (default 300): after "
                        "the first round, rounds stop when the next would exceed it")
    parser.add_argument("--force-bf16", action="store_true",
                        help="time the bf16 variants even where bf16 is emulated "
                        "(on at most 2 x batch cutouts, one round)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine more "
                        "threads mostly measure the other jobs)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--weights", default=default_weights(),
                        help="weights file (default: the bundled network)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile (inductor) of the default path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_begin = time.perf_counter()
    native_bf16 = cpu_has_native_bf16()

    t0 = time.perf_counter()
    images, truth = simulate_field(seed=args.seed, n_objects=args.n,
                                   shape=(args.shape, args.shape))
    sources = truth["x_centroid", "y_centroid"]
    small = sources[:min(args.small, len(sources))]
    sim_s = time.perf_counter() - t0
    source = {"weights_path": args.weights} if args.weights else {}
    fast = ClusterClassifier("resnet18", device="cpu", batch_size=args.batch_size,
                             **source)
    ref = ClusterClassifier("resnet18", device="cpu", batch_size=args.batch_size,
                            precision="fp32", **source)
    size = fast.cutout_size
    print(f"machine : {machine()}")
    print(f"input   : simulated field {args.shape}x{args.shape} x 5 bands, "
          f"{len(truth)} objects ({sim_s:.0f} s to simulate), {size}x{size} cutouts, "
          f"weights {os.path.basename(args.weights) if args.weights else 'bundled'}, "
          f"batch {args.batch_size}, default precision {fast.precision}")

    # the baseline's inputs: the same cutouts, made and normalised beforehand
    stack = make_cutouts(images.select(list(fast.bands)), sources, size)
    keep = stack.usable & np.isfinite(stack.data).reshape(len(stack), -1).any(axis=1)
    x = torch.from_numpy(normalize(stack.data[keep], fast.normalization))
    net = get_model("resnet18", **({"weights_path": args.weights} if args.weights
                                   else {"weights": "DEFAULT"}))
    net.eval()

    # bf16 where the CPU does not compute it natively is emulated by oneDNN,
    # several times slower than fp32 (more than 10 min for this benchmark on
    # a 2-core AVX2 machine): skipped, or bounded with --force-bf16
    names = {"fp32 NCHW": (False, False), "fp32 channels_last": (True, False),
             "bf16 channels_last": (True, True)}
    skipped = []
    emulated = {}
    if not native_bf16:
        del names["bf16 channels_last"]
        if args.force_bf16:
            emulated["bf16 channels_last"] = (True, True)
        else:
            skipped.append("forward bf16 channels_last")
    warm_x = x[:args.batch_size]
    funcs, warm = {}, {}
    for name, (cl, bf16) in names.items():
        funcs[name] = forward_runner(net, x, channels_last=cl, bf16=bf16,
                                     batch_size=args.batch_size)
        warm[name] = forward_runner(net, warm_x, channels_last=cl, bf16=bf16,
                                    batch_size=args.batch_size)
    warm_sources = sources[:args.batch_size]
    funcs["classifier"] = lambda: fast(sources, images)
    warm["classifier"] = lambda: fast(warm_sources, images)
    same_path = fast.precision == ref.precision == "fp32"
    if not same_path:
        funcs["classifier fp32"] = lambda: ref(sources, images)
        warm["classifier fp32"] = lambda: ref(warm_sources, images)
    # the per-call overhead: a small field on the same images, in the same
    # rounds, called as many times as it takes to classify as many objects as
    # the large field (so both timings span the same stretch of the load)
    calls = max(1, round(len(sources) / len(small)))
    funcs["classifier small"] = lambda: [fast(small, images) for _ in range(calls)][-1]
    warm["classifier small"] = lambda: fast(small, images)
    best, res, rounds = interleaved(funcs, args.repeat, args.max_seconds, warm)
    if same_path:
        best["classifier fp32"], res["classifier fp32"] = (best["classifier"],
                                                           res["classifier"])
    modes = {name: (len(x) / best[name], best[name], res[name]) for name in names}
    base_rate, base_s, base_probs = modes["fp32 NCHW"]
    fast_s, result = best["classifier"], res["classifier"]
    ref_s, result32 = best["classifier fp32"], res["classifier fp32"]
    n_cls = int(np.count_nonzero(~result["cluster_class"].mask))
    print(f"timing  : best of {rounds} alternating round(s) "
          f"(--repeat {args.repeat}, budget --max-seconds {args.max_seconds:g})")

    for name, (rate, seconds, _) in modes.items():
        print(f"forward {name:<20s}: {rate:8.0f} img/s  ({seconds:.2f} s)")
    emulated_rate = {}
    for name, (cl, bf16) in emulated.items():
        sub = x[:2 * args.batch_size]
        run = forward_runner(net, sub, channels_last=cl, bf16=bf16,
                             batch_size=args.batch_size)
        forward_runner(net, sub[:8], channels_last=cl, bf16=bf16,
                       batch_size=args.batch_size)()
        t0 = time.perf_counter()
        run()
        seconds = time.perf_counter() - t0
        emulated_rate[name] = len(sub) / seconds
        print(f"forward {name:<20s}: {emulated_rate[name]:8.0f} img/s  "
              f"({seconds:.2f} s, {len(sub)} images, one round; bf16 EMULATED on "
              "this CPU)")
    print(f"classifier end to end ({fast.precision}, channels_last): "
          f"{n_cls / fast_s:8.0f} img/s  ({fast_s:.2f} s, cutouts + normalisation "
          "+ network + table)")
    if same_path:
        print("classifier end to end (fp32, channels_last): the default path above "
              "(fp32 on this CPU)")
    else:
        print(f"classifier end to end (fp32, channels_last): {n_cls / ref_s:8.0f} "
              f"img/s  ({ref_s:.2f} s)")
    print(f"speed ratio, classifier end to end / plain fp32 NCHW forward: "
          f"{base_s / fast_s:.2f}x  (goal >= 2x)")
    ratios = [f"fp32 channels_last / fp32 NCHW: "
              f"{modes['fp32 channels_last'][0] / base_rate:.2f}x"]
    if "bf16 channels_last" in modes:
        ratios.insert(0, f"forward bf16 channels_last / fp32 NCHW: "
                      f"{modes['bf16 channels_last'][0] / base_rate:.2f}x")
    elif "bf16 channels_last" in emulated_rate:
        ratios.insert(0, f"forward bf16 channels_last (emulated) / fp32 NCHW: "
                      f"{emulated_rate['bf16 channels_last'] / base_rate:.2f}x")
    print("speed ratio, " + "; ".join(ratios))

    # per-call overhead: objects per second, small field against the whole field
    small_s = best["classifier small"] / calls
    large_rate, small_rate = len(sources) / fast_s, len(small) / small_s
    print(f"per-call overhead: {len(small)}-object field {small_rate:8.0f} objects/s "
          f"({1e3 * small_s:.1f} ms per call, {calls} calls per round), "
          f"{len(sources)}-object field "
          f"{large_rate:8.0f} objects/s: {100 * small_rate / large_rate:.0f} % "
          f"(goal >= {100 * SMALL_FIELD_GOAL:.0f} %)")

    ok = ~result32["cluster_class"].mask
    agree = np.mean(result["cluster_class"][ok] == result32["cluster_class"][ok])
    dp = np.nanmax(np.abs(np.asarray(result["class_prob"])
                          - np.asarray(result32["class_prob"])))
    # the classifier applies its weights' temperature: softmax(log p / T) is
    # softmax(logits / T)
    log_t = np.log(np.clip(base_probs, 1e-30, None)) / ref.temperature
    base_t = np.exp(log_t - log_t.max(axis=1, keepdims=True))
    base_t /= base_t.sum(axis=1, keepdims=True)
    fp32_vs_plain = np.abs(np.asarray(result32["class_prob"])[ok] - base_t).max()
    if same_path:
        print("labels: the default path is the fp32 path on this CPU (nothing to "
              "compare)")
    else:
        print(f"labels {fast.precision} vs fp32: {100 * agree:.2f} % agree on "
              f"{int(ok.sum())} objects ({int(round((1 - agree) * ok.sum()))} "
              f"differ); max |dp| = {dp:.4f}  (goal >= 99.5 %)")
    print(f"classifier fp32 vs plain forward (temperature {ref.temperature:g} "
          f"applied): max |dp| = {fp32_vs_plain:.1e}")
    if fast.precision != "fp32":
        acc = {p: np.mean(r["cluster_class"][ok] == truth["cluster_class"][ok])
               for p, r in ((fast.precision, result), ("fp32", result32))}
        print("accuracy against the simulated truth: " + ", ".join(
            f"{p} {100 * a:.1f} %" for p, a in acc.items()))

    if args.compile:
        bf16 = fast.precision == "bf16"
        net.to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        compiled = torch.compile(net)
        xb = x[:args.batch_size].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=bf16):
            compiled(xb)
        start_s = time.perf_counter() - t0
        cbest, _, _ = interleaved({
            "compiled": forward_runner(compiled, x, channels_last=True, bf16=bf16,
                                       batch_size=args.batch_size),
            "eager": forward_runner(net, x, channels_last=True, bf16=bf16,
                                    batch_size=args.batch_size)}, args.repeat,
            args.max_seconds)
        c_rate, e_rate = len(x) / cbest["compiled"], len(x) / cbest["eager"]
        print(f"torch.compile (inductor) {'bf16' if bf16 else 'fp32'} channels_last: "
              f"{c_rate:.0f} img/s vs eager {e_rate:.0f} img/s "
              f"({c_rate / e_rate:.2f}x) after {start_s:.0f} s of compilation")
    if skipped:
        print(f"skipped : {', '.join(skipped)} -- bf16 is not native on this CPU (no "
              "avx512_bf16 / amx_bf16): oneDNN would emulate it, several times slower "
              "than fp32, and the classifier does not use it here (precision "
              f"'{fast.precision}'); --force-bf16 times it on "
              f"{min(2 * args.batch_size, len(x))} cutouts")
    print(f"total   : {time.perf_counter() - t_begin:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
