# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls classify``: classify the sources of a table on FITS images."""

import time

import numpy as np

from ..data.images import BandImages
from ..inference.ensemble import ClusterEnsemble
from ..io.visualization import plot_cutout_gallery
from ..utils._files import atomic_write
from ..utils._optional_deps import HAS_MATPLOTLIB
from ._common import (
    PROG,
    CLIError,
    check_output,
    class_summary,
    count,
    has_bundled_weights,
    make_classifier,
    parse_band_map,
    parse_hdu,
    parse_images,
    progress_of,
    read_sources,
    renamed_lines,
    skycol,
    stage,
    write_outputs,
)

__all__ = ["run"]

def _split_models(values):
    """``--model`` values (repeated and/or comma-separated) to a list of names."""
    names = []
    for value in values or ["resnet18"]:
        names += [part.strip() for part in value.split(",")]
    if not all(names):
        raise ValueError(f"--model: empty model name in {values!r}")
    return names


def _per_model(option, values, n):
    """One value of a repeatable weights option per model (None where absent)."""
    values = list(values or [])
    if not values:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"{option} given {len(values)} time(s) for {n} --model "
                         "network(s): give it once per model, in order, or not at all")
    return values


def _make_ensemble(args, models, **extra):
    weights = _per_model("--weights", args.weights, len(models))
    paths = _per_model("--weights-path", args.weights_path, len(models))
    hashes = _per_model("--weights-sha256", args.weights_sha256, len(models))
    members = []
    for model, entry, path, sha in zip(models, weights, paths, hashes, strict=True):
        if path is None and entry is None and not has_bundled_weights(model):
            raise CLIError(
                f"no bundled weights for model {model!r} in this installation yet "
                "(astro_clustercls/models/data/ holds none); pass a weights file "
                "for each --model with --weights-path FILE", status=3)
        options = {k: v for k, v in (("weights", entry), ("weights_path", path),
                                     ("weights_sha256", sha)) if v is not None}
        members.append((model, options))
    stage(args, f"loading networks {', '.join(models)}...")
    return ClusterEnsemble(members, device=args.device, batch_size=args.batch_size,
                           progress_bar=progress_of(args), tta=args.tta,
                           ood=getattr(args, "ood", True), **extra)


def _gallery(result, images, path, args):
    """The cutout gallery PNG (matplotlib's Agg backend), written atomically."""
    import matplotlib  # optional: imported on use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_cutout_gallery(result, images, xcol=args.xcol, ycol=args.ycol,
                              skycol=skycol(args.skycol), origin=args.origin)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100,
                                                          format="png"),
                            overwrite=True)
    finally:
        plt.close(fig)


def run(args):
    """Classify the sources of a table on FITS images; write ECSV (+ regions)."""
    out = check_output(args.out, args.overwrite, "--out")
    regions = check_output(args.regions, args.overwrite, "--regions")
    gallery = check_output(args.gallery, args.overwrite, "--gallery")
    if gallery is not None and not HAS_MATPLOTLIB:
        raise CLIError("--gallery needs matplotlib: pip install "
                       "'astro-clustercls[plot]'")
    files = parse_images(args.images)
    # options and weights first: a typo fails before large images are opened
    models = _split_models(args.model)
    extra = {"missing_bands": args.missing_bands,
             "confidence_threshold": args.confidence_threshold,
             "bands": parse_band_map(args.band_map)}
    if len(models) > 1:
        clf = _make_ensemble(args, models, **extra)
    else:
        for option in ("weights", "weights_path", "weights_sha256"):
            values = _per_model("--" + option.replace("_", "-"),
                                getattr(args, option), 1)
            setattr(args, option, values[0])
        args.model = models[0]
        clf = make_classifier(args, **extra)
    stage(args, f"reading {len(files)} images...")
    images = BandImages.from_files(files, hdu=parse_hdu(args.hdu))
    sources = read_sources(args.sources, args.sources_format)
    stage(args, f"classifying {count(len(sources))} sources...")
    t0 = time.perf_counter()
    result = clf(sources, images, xcol=args.xcol, ycol=args.ycol,
                 skycol=skycol(args.skycol), origin=args.origin)
    elapsed = time.perf_counter() - t0
    # sky regions (icrs/fk5) when the images have a WCS: they overlay any image
    wcs = images.wcs if images.wcs is not None and args.xcol is None else None
    written = [str(p) for p in write_outputs(result, out, regions, args.overwrite,
                                             wcs=wcs)]
    if gallery is not None:
        written.append(str(_gallery(result, images, gallery, args)))
    meta = result.meta["astro_clustercls"]
    if meta.get("ensemble"):
        nets = ", ".join(f"{m['model']} (weights {m['weights']}, sha256 "
                         f"{(m.get('weights_sha256') or 'unknown')[:12]})"
                         for m in meta["members"])
        devices = ", ".join(sorted({m["device"] for m in meta["members"]}))
        print(f"{PROG}: classified {meta['n_classified']} of {len(result)} sources "
              f"with the {meta['ensemble']} of {meta['n_members']} networks: {nets} "
              f"on {devices} in {elapsed:.1f} s; positions from {meta['positions']}")
    else:
        sha = meta.get("weights_sha256") or "unknown"
        print(f"{PROG}: classified {meta['n_classified']} of {len(result)} sources "
              f"with {meta['model']} (weights {meta['weights']}, sha256 {sha[:12]}) "
              f"on {meta['device']} in {elapsed:.1f} s; positions from "
              f"{meta['positions']}")
    print("\n".join(class_summary(result) + renamed_lines(result)))
    if meta.get("ensemble"):
        agree = np.asarray(result["class_agreement"], dtype=float)
        agree = agree[np.isfinite(agree)]
        if agree.size:
            print(f"  members agree: {np.count_nonzero(agree == 1)} of {agree.size} "
                  f"classified rows unanimous, mean agreement {agree.mean():.2f}")
    where = ""
    if regions is not None:
        where = (" (regions in sky coordinates)" if wcs is not None
                 else " (regions in 1-based image pixels)")
    print(f"wrote {', '.join(written)}{where}")
    return 0
