# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark: training-step throughput of `astro_clustercls.training.train`'s
settings against a plain float32 loop.

Both loops run the same network (ResNet18 by default, 5 bands) on the same
simulated, normalised cutouts (``make_training_set``, by default of the
bundled recipe's size, 51x51 px), batch 128, AdamW, cross-entropy, in the
same process, alternating rounds:

* plain: float32, NCHW, torch's default (unfused) AdamW;
* train's settings: the model and each batch in ``channels_last``, the
  forward pass under bfloat16 autocast (``amp='auto'`` where the CPU has
  native bf16), the loss in float32, the fused AdamW step (``fused=None``)
  -- the step ``train`` runs.

It prints images per second of each and the ratio (goal >= 1.5x).

Run from the repository root::

    python benchmarks/bench_training.py            # ~1-2 min on 2 cores
    python benchmarks/bench_training.py --steps 4 --repeat 2 --size 31
"""

import argparse
import sys
import time

import numpy as np
import torch

from astro_clustercls.evaluation.experiments import BUNDLED_RECIPES
from astro_clustercls.models import build_network
from astro_clustercls.preprocessing import normalize
from astro_clustercls.simulation import make_training_set
from astro_clustercls.training.loop import _amp_dtype

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_inference import machine  # noqa: E402


def step_loop(model, x, y, *, channels_last, amp_dtype, batch_size, steps,
              fused=None):
    """Run ``steps`` training steps; return the seconds taken."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4,
                            fused=fused)
    criterion = torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for s in range(steps):
        i = (s * batch_size) % (len(x) - batch_size + 1)
        xb = x[i:i + batch_size].contiguous(memory_format=fmt)
        yb = y[i:i + batch_size]
        with torch.autocast("cpu", dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            logits = model(xb)
        loss = criterion(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1024, help="cutouts (1024)")
    parser.add_argument("--arch", default="resnet18", choices=sorted(BUNDLED_RECIPES))
    parser.add_argument("--size", type=int, default=None,
                        help="cutout side (default: the bundled recipe's)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="steps per round (8)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, best kept")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the machine is shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    size = args.size or BUNDLED_RECIPES[args.arch].cutout_size
    ts = make_training_set(args.n, size, seed=2)
    x = torch.from_numpy(normalize(ts.data))
    y = torch.from_numpy(np.asarray(ts.labels) - 1).long()
    amp = _amp_dtype("auto", torch.device("cpu"))
    print(f"machine : {machine()}")
    print(f"input   : {args.n} simulated 5x{size}x{size} cutouts, {args.arch}, batch "
          f"{args.batch_size}, AdamW, {args.steps} steps per round, best of "
          f"{args.repeat}; train's amp='auto' here is {amp}")

    torch.manual_seed(0)
    plain = build_network(args.arch)
    torch.manual_seed(0)
    fast = build_network(args.arch).to(memory_format=torch.channels_last)
    kw = {"batch_size": args.batch_size}
    step_loop(plain, x, y, channels_last=False, amp_dtype=None, steps=1, **kw)
    step_loop(fast, x, y, channels_last=True, amp_dtype=amp, steps=1, fused=True, **kw)
    times = {"plain": [], "train": [], "cl": []}
    for _ in range(args.repeat):  # alternate: the machine's load hits both
        times["plain"].append(step_loop(plain, x, y, channels_last=False,
                                        amp_dtype=None, steps=args.steps, **kw))
        times["train"].append(step_loop(fast, x, y, channels_last=True,
                                        amp_dtype=amp, steps=args.steps, fused=True,
                                        **kw))
        times["cl"].append(step_loop(fast, x, y, channels_last=True, amp_dtype=None,
                                     steps=args.steps, **kw))
    imgs = args.steps * args.batch_size
    rate = {k: imgs / min(v) for k, v in times.items()}
    print(f"plain fp32 NCHW loop              : {rate['plain']:7.0f} img/s")
    print(f"fp32 channels_last                : {rate['cl']:7.0f} img/s")
    prec = "bf16" if amp else "fp32"
    print(f"train's settings (channels_last + {prec} + fused AdamW): "
          f"{rate['train']:7.0f} img/s")
    print(f"speed ratio, train's settings / plain fp32 loop: "
          f"{rate['train'] / rate['plain']:.2f}x  (goal >= 1.5x)")
    print(f"speed ratio, fp32 channels_last / plain fp32 loop: "
          f"{rate['cl'] / rate['plain']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
