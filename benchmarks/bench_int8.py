# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: int8 inference (ONNX Runtime) against the plain float32 forward.

On the objects of one simulated field (``simulate_field``, 1000 objects on
1024x1024 5-band images by default), cut and normalised as the classifier
does, it times in the same process, in alternating rounds (best of 3):

* the baseline: the bundled network (torchvision layers) in float32 NCHW,
  batch 256, forward pass only;
* float32 with BatchNorm folded, ``channels_last`` (the classifier's float
  path);
* ONNX Runtime float32 (the graph the int8 network is made from);
* int8 without the guard, and the int8 path (`Int8Network`: near-ties
  recomputed in float32);
* the int8 path end to end, serially: cutouts + normalisation + network;

each in images per second, as a ratio to the baseline (goal >= 2x for the int8
path end to end), as a fraction of the measured float32 matrix-product
throughput (a 2048^3 ``torch.mm``, timed in the same rounds) and, for int8,
of ONNX Runtime's int8 matrix-product throughput (``MatMulInteger``); the
label agreement of each path with the float32 network on all the field's
objects (goal >= 99.5 %), and whether the int8 results are bit-identical for
batch sizes 1, 7, 64, 256.

Run from the repository root (needs ``pip install onnxruntime onnx``)::

    python benchmarks/bench_int8.py                 # ~2.5 min on 1 core
    python benchmarks/bench_int8.py --n 3000 --shape 2048   # more objects
    python benchmarks/bench_int8.py --threads 1,2   # both thread counts
    python benchmarks/bench_int8.py --arch vgg19_bn --n 1000
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from astro_clustercls import make_cutouts
from astro_clustercls.models import get_model
from astro_clustercls.models._fusion import fold_batchnorm
from astro_clustercls.models._quantize import (
    CALIBRATION_SEED,
    VALIDATION_SIZE,
    _cpu_flags,
    int8_network,
    int8_support,
    quantize_network,
    simulated_calibration,
)
from astro_clustercls.preprocessing import normalize
from astro_clustercls.simulation import simulate_field


def machine():
    """One line describing the machine, the software and the current load."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = _cpu_flags()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni",
                       "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average n/a"
    try:
        import onnxruntime
        ort = f"onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort = "no onnxruntime"
    return (f"{model}, {os.cpu_count()} cores, ISA {' '.join(isa) or 'n/a'}; torch "
            f"{torch.__version__}, {ort}, python {platform.python_version()}; {load}")


def interleaved(funcs, repeat):
    """Best time of each function, timed in alternating rounds after a warm-up."""
    best = {k: float("inf") for k in funcs}
    for func in funcs.values():
        func()
    for _ in range(repeat):
        for key, func in funcs.items():
            t0 = time.perf_counter()
            func()
            best[key] = min(best[key], time.perf_counter() - t0)
    return best


def matmul_runner(n=2048):
    """A float32 ``torch.mm`` of n x n matrices, and its floating-point operations."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return (lambda: torch.mm(a, b)), 2 * n**3


def int8_matmul_runner(threads, n=2048):
    """ONNX Runtime ``MatMulInteger`` (uint8 x int8) of n x n, and its operations.

    None without onnx and onnxruntime.
    """
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    b = rng.integers(-64, 64, (n, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    return (lambda: session.run(None, {"a": a})), 2 * n**3


def _timed(func):
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def flops_per_cutout(net, shape):
    """Floating-point operations of one forward pass (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros((1, *shape)))
    return counter.get_total_flops()


def batched(func, x, batch_size):
    """Apply ``func`` to ``x`` in batches; concatenated numpy logits."""
    with torch.inference_mode():
        return np.concatenate([np.asarray(func(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18", help="bundled network")
    parser.add_argument("--n", type=int, default=1000, help="objects (1000)")
    parser.add_argument("--shape", type=int, default=1024, help="image side (1024)")
    parser.add_argument("--timing-n", type=int, default=512,
                        help="cutouts per timing round (512)")
    parser.add_argument("--repeat", type=int, default=3, help="timings, best kept")
    parser.add_argument("--threads", default="1",
                        help="torch and ONNX Runtime threads, e.g. '1' or '1,2'")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=640,
                        help="cutouts per int8 call: the classifier's chunk at 51 px, "
                        "5 bands (640); run in batches of --batch-size inside")
    parser.add_argument("--margin", default="auto",
                        help="int8 guard margin: a logit gap, or 'auto' (default: "
                        "chosen on simulated validation cutouts, as int8_network)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    t_start = time.perf_counter()
    skipped = []
    torch.set_num_threads(threads[0])

    print(f"machine : {machine()}")
    ok, reason = int8_support("cpu")
    print(f"int8_support: {ok}" + (f" ({reason})" if reason else ""))
    net = get_model(args.arch, weights="DEFAULT").eval()
    meta = net.clustercls_meta
    size, bands = int(meta["cutout_size"]), list(meta["bands"])
    t0 = time.perf_counter()
    images, truth = simulate_field(seed=args.seed, n_objects=args.n,
                                   shape=(args.shape, args.shape))
    sources = truth["x_centroid", "y_centroid"]
    sim_s = time.perf_counter() - t0

    def cut(src):
        stack = make_cutouts(images.select(bands), src, size)
        keep = stack.usable & np.isfinite(stack.data).reshape(len(stack), -1).any(
            axis=1)
        return normalize(stack.data[keep], meta["normalization"])

    x = cut(sources)
    print(f"input   : simulated field {args.shape}x{args.shape} x {len(bands)} bands, "
          f"{len(x)} usable objects of {len(truth)} ({sim_s:.0f} s to simulate), "
          f"{args.arch} {meta.get('weights')}, {size}x{size} px, batch "
          f"{args.batch_size}")

    folded = fold_batchnorm(get_model(args.arch, weights="DEFAULT").eval())
    folded.to(memory_format=torch.channels_last)
    flops = flops_per_cutout(net, x.shape[1:])

    qnet = None
    try:
        t0 = time.perf_counter()
        if args.margin == "auto":
            qnet = int8_network(net)  # the package's settings
        else:
            qnet = quantize_network(
                net, simulated_calibration(meta), margin=float(args.margin),
                validation=simulated_calibration(meta, VALIDATION_SIZE,
                                                 CALIBRATION_SEED + 1))
        qnet.block_rows = args.batch_size
        info = qnet.info
        print(f"int8    : built in {time.perf_counter() - t0:.0f} s ("
              f"{info['n_calibration']} simulated calibration cutouts, export, "
              f"quantization, {info['n_validation']} validation cutouts); guard "
              f"margin {qnet.margin:g} ({args.margin}); on the validation cutouts "
              f"{100 * info['agreement']:.2f} % of labels = fp32 "
              f"({100 * info['agreement_unguarded']:.2f} % unguarded), "
              f"{100 * info['recomputed']:.1f} % recomputed")
    except ImportError as exc:
        skipped.append(f"int8 rows: {exc}")

    # labels: every path against the float32 network, on all the objects
    bs = args.batch_size
    ref = batched(lambda b: net(torch.from_numpy(b)), x, bs)
    labels = ref.argmax(1)
    logits = {"fp32 folded channels_last": batched(
        lambda b: folded(torch.from_numpy(b).contiguous(
            memory_format=torch.channels_last)), x, bs)}
    if qnet is not None:
        logits["onnxruntime fp32"] = batched(lambda b: qnet.run(b, "float"), x, bs)
        logits["int8, no guard"] = batched(lambda b: qnet.run(b, "int8"), x, bs)
        qnet.reset_counts()
        logits["int8 path"] = batched(qnet, x, args.chunk)
        recomputed = qnet.n_recomputed / max(qnet.n_rows, 1)
    agree = {"fp32 plain NCHW (baseline)": 1.0}
    agree.update({k: float(np.mean(v.argmax(1) == labels)) for k, v in logits.items()})
    agree["int8 end to end (serial)"] = agree.get("int8 path")

    xt = x[:args.timing_n]
    positions = sources[:min(len(sources), args.timing_n)]
    n_e2e = len(cut(positions))
    for nt in threads:
        torch.set_num_threads(nt)
        if qnet is not None:
            qnet.num_threads = nt
        funcs = {
            "fp32 plain NCHW (baseline)": lambda: batched(
                lambda b: net(torch.from_numpy(b)), xt, bs),
            "fp32 folded channels_last": lambda: batched(
                lambda b: folded(torch.from_numpy(b).contiguous(
                    memory_format=torch.channels_last)), xt, bs),
        }
        if qnet is not None:
            funcs["onnxruntime fp32"] = lambda: batched(
                lambda b: qnet.run(b, "float"), xt, bs)
            funcs["int8, no guard"] = lambda: batched(
                lambda b: qnet.run(b, "int8"), xt, bs)
            # a chunk at a time, as the classifier would pass it (near-ties
            # recomputed per chunk; batches of batch_size rows inside)
            funcs["int8 path"] = lambda: batched(qnet, xt, args.chunk)
            funcs["int8 end to end (serial)"] = lambda: batched(
                qnet, cut(positions), args.chunk)
        # the matrix-product limits are timed in the same rounds (same load)
        funcs["mm"], mm_ops = matmul_runner()
        mm8_runner = int8_matmul_runner(nt) if qnet is not None else None
        if mm8_runner is not None:
            funcs["mm8"], mm8_ops = mm8_runner
        best = interleaved(funcs, args.repeat)
        mm = mm_ops / best.pop("mm") / 1e9
        mm8 = mm8_ops / best.pop("mm8") / 1e9 if "mm8" in best else None
        rates = {k: (n_e2e if "end to end" in k else len(xt)) / v
                 for k, v in best.items()}
        base = rates["fp32 plain NCHW (baseline)"]
        print(f"\nthreads {nt}: float32 torch.mm 2048^3: {mm:.1f} GFLOP/s"
              + (f"; int8 MatMulInteger 2048^3 (onnxruntime): {mm8:.1f} GOP/s"
                 if mm8 else "") + f"; network {flops / 1e9:.4f} GFLOP per cutout")
        print(f"{'path':<28s} {'img/s':>7s} {'x plain':>8s} {'of fp32 mm':>10s} "
              f"{'of int8 mm':>10s} {'labels = fp32':>14s}")
        for key, rate in rates.items():
            frac = rate * flops / 1e9 / mm
            frac8 = (f"{rate * flops / 1e9 / mm8:10.2f}" if mm8 and "int8" in key
                     else f"{'':10s}")
            agreement = agree.get(key)
            agreement = f"{100 * agreement:13.2f}%" if agreement is not None else ""
            print(f"{key:<28s} {rate:7.0f} {rate / base:7.2f}x {frac:10.2f} {frac8} "
                  f"{agreement}")
    if qnet is None:
        print("\nskipped: " + "; ".join(skipped))
        return 0

    diff = logits["int8 path"] - ref
    kept = logits["int8 path"] != logits["onnxruntime fp32"]
    prob = torch.softmax(torch.from_numpy(logits["int8 path"]), 1) - torch.softmax(
        torch.from_numpy(ref), 1)
    print(f"\nint8 path: {100 * recomputed:.1f} % of rows recomputed in float32 "
          f"(margin {qnet.margin:g}); labels differ on "
          f"{int(np.sum(logits['int8 path'].argmax(1) != labels))} of {len(x)}; "
          f"|dlogit| median {np.median(np.abs(diff[kept.any(1)])):.3f} over the "
          f"int8 rows; max |dprob| {prob.abs().max():.3f}")
    # batch-size independence: each row bit-identical whatever the batch
    xb = x[:256]
    full = batched(qnet, xb, 256)
    same = {b: bool(np.array_equal(batched(qnet, xb[:n], b), full[:n]))
            for b, n in ((1, 32), (7, 256), (64, 256))}
    print("int8 path bit-identical to batch 256 for batch sizes "
          + ", ".join(f"{b}: {'yes' if s else 'NO'}" for b, s in same.items()))
    print(f"\nthe classifier end to end (cutouts in a background thread) is timed by "
          f"bench_inference.py once it takes precision='int8'; total "
          f"{time.perf_counter() - t_start:.0f} s")
    if skipped:
        print("skipped: " + "; ".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
