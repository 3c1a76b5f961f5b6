# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Gallery of simulated cutouts, one PNG per class (needs matplotlib).

Run ``python -m astro_clustercls.simulation.gallery [--out docs/_static/simulation]
[--simulator v1|v2]``: writes ``class1.png`` ... ``class4.png`` (12
LEGUS-selected candidates each, colour composites of F814W / F555W /
F336W+F438W with an asinh stretch, and the F555W image below each) and
``field.png`` (a simulated field in F555W); with ``--simulator v2`` the files
are ``v2_class1.png`` ... ``v2_class4.png`` and ``v2_field.png`` (the field in
F555W and in colour).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from .._constants import CLASS_NAMES
from ._version import resolve_version
from .field import simulate_field
from .training_set import make_training_set

__all__ = ["make_gallery", "main"]


def _rgb(cut, bands):
    idx = {b: i for i, b in enumerate(bands)}
    r = cut[idx["F814W"]]
    g = cut[idx["F555W"]]
    b = 0.5 * (cut[idx["F336W"]] + cut[idx["F438W"]])
    stack = np.stack([r, g, b], -1)
    stack = np.nan_to_num(stack, nan=0.0)
    c = cut.shape[-1] // 2
    peak = np.nanmax(stack[c - 3 : c + 4, c - 3 : c + 4]) or 1.0
    return np.clip(np.arcsinh(stack / (0.05 * peak)) / np.arcsinh(1 / 0.05), 0, 1)


def _rgb_field(images):
    """Colour composite of a whole field (asinh, F814W / F555W / F336W+F438W)."""
    r = np.nan_to_num(images["F814W"].data)
    g = np.nan_to_num(images["F555W"].data)
    b = 0.5 * np.nan_to_num(images["F336W"].data + images["F438W"].data)
    stack = np.stack([r, g, b], -1)
    scale = np.nanpercentile(g, 99.5) or 1.0
    return np.clip(np.arcsinh(stack / (0.05 * scale)) / np.arcsinh(1 / 0.05), 0, 1)


def make_gallery(
    out_dir, *, n=12, size=31, seed=5, distance=(4.0, 12.0), simulator=None
):
    """Write one PNG per class (and a field) to ``out_dir``; return the paths.

    ``simulator`` ('v1' or 'v2', default v1) picks the simulator; v2's files
    are prefixed ``v2_``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    version = resolve_version(simulator)
    prefix = "v2_" if version == "2.0" else ""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in (1, 2, 3, 4):
        ts = make_training_set(
            n,
            size,
            seed=seed + c,
            classes=[c],
            select=True,
            distance=distance,
            simulator=version,
        )
        fig, axes = plt.subplots(4, n // 2, figsize=(1.5 * (n // 2), 6.3))
        for k in range(n):
            row, col = 2 * (k // (n // 2)), k % (n // 2)
            cut = ts.data[k]
            axes[row, col].imshow(_rgb(cut, ts.bands), origin="lower")
            v = np.nan_to_num(cut[ts.bands.index("F555W")], nan=0.0)
            vc = (
                v[size // 2 - 3 : size // 2 + 4, size // 2 - 3 : size // 2 + 4].max()
                or 1
            )
            axes[row + 1, col].imshow(
                np.arcsinh(v / (0.05 * vc)),
                origin="lower",
                cmap="gray",
                vmin=0,
                vmax=np.arcsinh(20),
            )
            t = ts.table[k]
            axes[row, col].set_title(
                f"{t['subtype']}\n{t['distance']:.0f} Mpc", fontsize=7
            )
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(
            f"Simulated (v{version[0]}) class {c}: {CLASS_NAMES[c - 1]} "
            f"({size}x{size} px; RGB = F814W/F555W/F336W+F438W, then F555W)",
            fontsize=9,
        )
        fig.tight_layout()
        path = out_dir / f"{prefix}class{c}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    images, truth = simulate_field(
        seed=seed, n_objects=120, shape=(400, 400), distance=8.0, simulator=version
    )
    v = images["F555W"].data
    if version == "2.0":
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 6))
        ax2.imshow(_rgb_field(images), origin="lower")
        ax2.set_title("The same field in colour (F814W/F555W/F336W+F438W)", fontsize=9)
        ax2.set_xticks([])
        ax2.set_yticks([])
        truth = truth[~np.asarray(truth["from_field"], bool)]
    else:
        fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(
        np.arcsinh(v / 0.02),
        origin="lower",
        cmap="gray_r",
        vmin=0,
        vmax=np.nanpercentile(np.arcsinh(v / 0.02), 99.7),
    )
    colours = {1: "tab:blue", 2: "tab:green", 3: "tab:orange", 4: "tab:red"}
    for c, col in colours.items():
        s = truth["cluster_class"] == c
        ax.scatter(
            truth["x_centroid"][s],
            truth["y_centroid"][s],
            s=60,
            facecolors="none",
            edgecolors=col,
            label=f"class {c}",
            lw=0.8,
        )
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(
        f'Simulated (v{version[0]}) F555W field, 8 Mpc, 400x400 px (16"), '
        "chip gap in NaN",
        fontsize=9,
    )
    fig.tight_layout()
    path = out_dir / f"{prefix}field.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
    return paths


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m astro_clustercls.simulation.gallery"
    )
    parser.add_argument("--out", default="docs/_static/simulation")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--simulator", default="v1", help="v1 (default) or v2")
    args = parser.parse_args(argv)
    for p in make_gallery(args.out, seed=args.seed, simulator=args.simulator):
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
