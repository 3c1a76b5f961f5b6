# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Galleries of the two renderers side by side, per class.

Run ``python -m astro_clustercls.simulation.render_alt.gallery --out DIR``:
writes ``galsim.png`` (this renderer) and ``simulator.png`` (the training
simulator), 8 objects of each class at 4-12 Mpc, 31 x 31 px, as colour
composites (F814W / F438W+F555W / F275W+F336W, asinh) with F555W below.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from ..training_set import make_training_set
from .testset import make_test_set

__all__ = ["make_gallery", "main"]


def _rgb(cut, bands):
    idx = {b: i for i, b in enumerate(bands)}
    r = cut[idx["F814W"]]
    g = 0.5 * (cut[idx["F555W"]] + cut[idx["F438W"]])
    b = 1.5 * (cut[idx["F336W"]] + cut[idx["F275W"]])
    stack = np.nan_to_num(np.stack([r, g, b], -1), nan=0.0)
    c = cut.shape[-1] // 2
    peak = stack[c - 3:c + 4, c - 3:c + 4].max() or 1.0
    return np.clip(np.arcsinh(stack / (0.03 * peak)) / np.arcsinh(1 / 0.03), 0, 1)


def make_gallery(renderer, path, *, n=8, size=31, seed=11, distance=(4.0, 12.0)):
    """Write one renderer's per-class gallery to ``path`` (a PNG); return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if renderer == "galsim":
        ts = make_test_set(8 * n, size, seed, psf_variants=2, distance=distance)
    elif renderer == "simulator":
        ts = make_training_set(8 * n, size, seed, class_balance="equal",
                               distance=distance)
    else:
        raise ValueError("'renderer' must be 'galsim' or 'simulator', got "
                         f"{renderer!r}")
    bands = list(ts.bands)
    v = bands.index("F555W")
    fig, axes = plt.subplots(8, n, figsize=(1.6 * n, 13.5))
    for ci, c in enumerate((1, 2, 3, 4)):
        for k, i in enumerate(np.flatnonzero(ts.true_labels == c)[:n]):
            cut = ts.data[i]
            ax = axes[2 * ci, k]
            ax.imshow(_rgb(cut, bands), origin="lower", interpolation="nearest")
            row = ts.table[i]
            ax.set_title(f"{str(row['subtype'])[:8]} {float(row['distance']):.0f} Mpc\n"
                         f"M_V {float(row['abs_mag_v']):.1f}", fontsize=7)
            img = np.nan_to_num(cut[v], nan=0.0)
            s = img.shape[-1] // 2
            peak = img[s - 3:s + 4, s - 3:s + 4].max() or 1.0
            axes[2 * ci + 1, k].imshow(np.arcsinh(img / (0.05 * peak)), origin="lower",
                                       cmap="gray", interpolation="nearest")
        axes[2 * ci, 0].set_ylabel(f"class {c}")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{renderer}: F814W / F438W+F555W / F275W+F336W (asinh); F555W below")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def main(argv=None):
    """Command line: write both renderers' galleries."""
    parser = argparse.ArgumentParser(
        prog="python -m astro_clustercls.simulation.render_alt.gallery")
    parser.add_argument("--out", default="docs/_static/simulation")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for renderer in ("galsim", "simulator"):
        print(make_gallery(renderer, out / f"{renderer}.png", seed=args.seed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
