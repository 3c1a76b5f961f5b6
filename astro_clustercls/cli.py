# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astro-clustercls`` command line (also ``python -m astro_clustercls``).

Subcommands live in `SUBCOMMANDS`, a dict ``name -> (add_arguments, run)``:
``add_arguments(parser)`` declares the options of the subcommand and
``run(args)`` does the work and returns the exit status; the first line of
``run``'s docstring is the subcommand's help. Adding a subcommand is adding one
entry.

Errors a user can cause (missing or unreadable files, wrong extension names,
bad arguments) print one line ``astro-clustercls: error: ...`` on stderr and
exit with a non-zero status, without a traceback; ``--debug`` shows the
traceback instead.
"""

import argparse
import os
import re
import sys
import time
import warnings
from pathlib import Path

__all__ = ["main", "SUBCOMMANDS", "build_parser"]

PROG = "astro-clustercls"


class CLIError(Exception):
    """An error to report in one line (exit status ``status``)."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _parse_images(specs):
    """``BAND=FILE`` items to a dict; bare ``FILE`` items to a list (FILTER keyword)."""
    with_band = [s for s in specs if "=" in s]
    if with_band and len(with_band) != len(specs):
        raise ValueError("--images: give every image as BAND=FILE, or every image as "
                         "FILE (band read from its FILTER keyword), not a mix")
    if not with_band:
        return list(specs)
    files = {}
    for spec in specs:
        band, _, path = spec.partition("=")
        band, path = band.strip(), path.strip()
        if not band or not path:
            raise ValueError(f"--images: expected BAND=FILE, got {spec!r}")
        if band.upper() in {b.upper() for b in files}:
            raise ValueError(f"--images: band {band!r} given twice")
        files[band] = path
    return files


def _read_sources(path, fmt=None):
    from astropy.table import QTable

    path = Path(path)
    if not path.exists():
        raise OSError(f"sources table not found: {path}")
    kwargs = {"format": fmt} if fmt else {}
    if not fmt and path.suffix.lower() == ".csv":
        kwargs["format"] = "ascii.csv"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unit-parsing chatter
            return QTable.read(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds here
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "" if fmt else " (name its format with --sources-format)"
        raise OSError(f"cannot read sources table {path}: {msg}{hint}") from None


def _check_output(path, overwrite, option):
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OSError(f"{option} {path} already exists; pass --overwrite to replace it")
    if not path.parent.exists():
        raise OSError(f"{option}: directory {path.parent} does not exist")
    return path


def _parse_hdu(value):
    """``--hdu``: an index (``1``), a name (``SCI``) or ``NAME,VER`` (``SCI,2``)."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    name, sep, ver = text.partition(",")
    if not sep:
        return text
    if not name.strip() or not re.fullmatch(r"\d+", ver.strip()):
        raise ValueError("--hdu must be an extension index (1), name (SCI) or "
                         f"NAME,VERSION (SCI,2), got {value!r}")
    return (name.strip(), int(ver))


def _write_outputs(result, out, regions, overwrite):
    """
    Write the table (and the regions) all or nothing.

    Both are written under temporary names next to their targets and moved into
    place only once both are complete, so an error or Ctrl-C while writing
    leaves neither a partial file nor a table without its regions.
    """
    from .export import to_regions, write_table

    targets = [p for p in (out, regions) if p is not None]
    tag = f"{os.getpid()}.{time.monotonic_ns()}"
    temps = [p.with_name(f".{p.name}.{tag}.part") for p in targets]
    try:
        write_table(result, temps[0], overwrite=True)
        if regions is not None:
            to_regions(result, filename=temps[1], overwrite=True)
        for tmp, path in zip(temps, targets, strict=True):
            if path.exists():
                if not overwrite:
                    raise OSError(f"{path} appeared while writing; pass --overwrite "
                                  "to replace it")
                os.chmod(tmp, path.stat().st_mode & 0o777)
        for tmp, path in zip(temps, targets, strict=True):
            os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: leave no partial output
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return targets


def _skycol(value):
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and all(parts):
        return tuple(parts)
    raise ValueError(f"--skycol must be a SkyCoord column or RA,DEC columns, got "
                     f"{value!r}")


def _class_summary(result):
    """Lines: counts per class and of unclassified rows."""
    import numpy as np

    from ._constants import CLASS_NAMES, CLASSES
    from .flags import FLAGS

    cls = result["cluster_class"]
    mask = np.ma.getmaskarray(cls)
    values = np.ma.filled(np.ma.asarray(cls), 0)
    n = len(result)
    lines = [f"  class  {'name':<34s} {'count':>7s}"]
    for c, name in zip(CLASSES, CLASS_NAMES, strict=True):
        count = np.count_nonzero(values[~mask] == c)
        lines.append(f"  {c:>5d}  {name:<34s} {count:>7d}")
    lines.append(f"  {'-':>5s}  {'not classified':<34s} {np.count_nonzero(mask):>7d}")
    flags = np.asarray(result["classify_flags"])
    flagged = [f"{f.name}: {np.count_nonzero(flags & f.bit)}" for f in FLAGS
               if np.any(flags & f.bit)]
    if flagged:
        lines.append("  flags set: " + ", ".join(flagged))
    lines.append(f"  total {n} rows")
    return lines


def _add_classifier_options(parser, *, with_weights=True, ensemble=False):
    from ._constants import CLASSES  # noqa: F401 - cheap, keeps imports local

    group = parser.add_argument_group("classifier")
    if ensemble:
        # repeatable: several networks make an ensemble (the mode of their classes)
        group.add_argument("--model", action="append", default=None,
                           metavar="MODEL",
                           help="network: resnet18 (default) or vgg19_bn; several "
                                "(--model resnet18 --model vgg19_bn, or "
                                "--model resnet18,vgg19_bn) classify with an ensemble "
                                "(the mode of their classes and the fraction that "
                                "agree)")
        many = {"action": "append"}
        each = "; with several --model, give it once per model, in order"
    else:
        group.add_argument("--model", default="resnet18",
                           help="network: resnet18 (default) or vgg19_bn")
        many, each = {}, ""
    if with_weights:
        group.add_argument("--weights", default=None, **many,
                           help="bundled weights entry (default: the model's "
                                f"DEFAULT){each}")
    group.add_argument("--weights-path", default=None, metavar="FILE", **many,
                       help="external checkpoint (safetensors or a torch state "
                            f"dict){each}")
    group.add_argument("--weights-sha256", default=None, metavar="HEX", **many,
                       help="expected SHA-256 (or a prefix of >= 8 hex digits) of "
                            f"the --weights-path file{each}")
    group.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:N, mps or auto (default: "
                            "astro_clustercls.conf.device)")
    group.add_argument("--batch-size", type=int, default=None, metavar="N",
                       help="cutouts per forward pass (results do not depend on it)")
    group.add_argument("--tta", action="store_true",
                       help="test-time augmentation over the 8 rotations/flips")
    group.add_argument("--progress", action="store_true", help="show progress bars")


def _make_classifier(args, **extra):
    from .classify import ClusterClassifier

    if (args.weights_path is None and getattr(args, "weights", None) is None
            and not _has_bundled_weights(args.model)):
        raise CLIError(
            f"no bundled weights for model {args.model!r} in this installation yet "
            "(astro_clustercls/models/data/ holds none); train them with the training "
            "code, or pass a weights file with --weights-path FILE", status=3)
    return ClusterClassifier(args.model, weights=getattr(args, "weights", None),
                             weights_path=args.weights_path,
                             weights_sha256=args.weights_sha256, device=args.device,
                             batch_size=args.batch_size, progress_bar=args.progress,
                             tta=args.tta, **extra)


# ---------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------
def add_classify_arguments(parser):
    parser.add_argument("--images", nargs="+", required=True, metavar="BAND=FILE",
                        help="one FITS image per band, e.g. F275W=f275w_drc.fits ...; "
                             "or FILE alone to read the band from the FILTER keyword")
    parser.add_argument("--hdu", default=None,
                        help="extension holding the image: a name (SCI), an index "
                             "(1) or NAME,VERSION (SCI,2 for the second chip of an "
                             "flt file); default: SCI if present, else the first 2D "
                             "HDU")
    parser.add_argument("--sources", required=True, metavar="TABLE",
                        help="source table (ECSV, FITS, CSV...: e.g. photutils output)")
    parser.add_argument("--sources-format", default=None, metavar="FORMAT",
                        help="astropy format of --sources if not guessed "
                             "(e.g. ascii.commented_header)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output ECSV table (input columns + classes)")
    parser.add_argument("--regions", default=None, metavar="FILE",
                        help="also write a DS9 region file coloured by class")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    pos = parser.add_argument_group("positions")
    pos.add_argument("--xcol", default=None, help="x pixel column")
    pos.add_argument("--ycol", default=None, help="y pixel column")
    pos.add_argument("--skycol", default=None,
                     help="SkyCoord column, or RA,DEC column names (degrees)")
    pos.add_argument("--origin", type=int, choices=(0, 1), default=0,
                     help="0 (default) for 0-based pixel positions, 1 for 1-based")
    _add_classifier_options(parser, ensemble=True)
    parser.add_argument("--missing-bands", choices=("error", "zero"), default="error",
                        help="a band the network needs is missing: error (default) "
                             "or feed zeros and flag BAND_MISSING")
    parser.add_argument("--confidence-threshold", type=float, default=None,
                        metavar="P", help="flag LOW_CONFIDENCE below this probability")


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
    from .ensemble import ClusterEnsemble

    weights = _per_model("--weights", args.weights, len(models))
    paths = _per_model("--weights-path", args.weights_path, len(models))
    hashes = _per_model("--weights-sha256", args.weights_sha256, len(models))
    members = []
    for model, entry, path, sha in zip(models, weights, paths, hashes, strict=True):
        if path is None and entry is None and not _has_bundled_weights(model):
            raise CLIError(
                f"no bundled weights for model {model!r} in this installation yet "
                "(astro_clustercls/models/data/ holds none); pass a weights file "
                "for each --model with --weights-path FILE", status=3)
        options = {k: v for k, v in (("weights", entry), ("weights_path", path),
                                     ("weights_sha256", sha)) if v is not None}
        members.append((model, options))
    return ClusterEnsemble(members, device=args.device, batch_size=args.batch_size,
                           progress_bar=args.progress, tta=args.tta, **extra)


def run_classify(args):
    """Classify the sources of a table on FITS images; write ECSV (+ regions)."""
    from .classify import ClusterClassifier  # noqa: F401 - fail early on import
    from .images import BandImages

    out = _check_output(args.out, args.overwrite, "--out")
    regions = _check_output(args.regions, args.overwrite, "--regions")
    files = _parse_images(args.images)
    # options and weights first: a typo fails before large images are opened
    models = _split_models(args.model)
    extra = {"missing_bands": args.missing_bands,
             "confidence_threshold": args.confidence_threshold}
    if len(models) > 1:
        clf = _make_ensemble(args, models, **extra)
    else:
        for option in ("weights", "weights_path", "weights_sha256"):
            values = _per_model("--" + option.replace("_", "-"),
                                getattr(args, option), 1)
            setattr(args, option, values[0])
        args.model = models[0]
        clf = _make_classifier(args, **extra)
    images = BandImages.from_files(files, hdu=_parse_hdu(args.hdu))
    sources = _read_sources(args.sources, args.sources_format)
    t0 = time.perf_counter()
    result = clf(sources, images, xcol=args.xcol, ycol=args.ycol,
                 skycol=_skycol(args.skycol), origin=args.origin)
    elapsed = time.perf_counter() - t0
    written = [str(p) for p in _write_outputs(result, out, regions, args.overwrite)]
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
    print("\n".join(_class_summary(result)))
    if meta.get("ensemble"):
        import numpy as np

        agree = np.asarray(result["class_agreement"], dtype=float)
        agree = agree[np.isfinite(agree)]
        if agree.size:
            print(f"  members agree: {np.count_nonzero(agree == 1)} of {agree.size} "
                  f"classified rows unanimous, mean agreement {agree.mean():.2f}")
    print(f"wrote {', '.join(written)}")
    return 0


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------
def add_demo_arguments(parser):
    parser.add_argument("--outdir", default="clustercls-demo", metavar="DIR",
                        help="output directory (default ./clustercls-demo)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--n-objects", type=int, default=150, metavar="N",
                        help="simulated objects (default 150)")
    parser.add_argument("--detect-band", default="F555W",
                        help="band used for detection (default F555W)")
    parser.add_argument("--match-radius", type=float, default=1.5, metavar="PIX",
                        help="detection-truth matching radius in pixels (default 1.5)")
    _add_classifier_options(parser)


def _detect(image, *, fwhm=2.5, nsigma=5.0):
    """DAOStarFinder on the background-subtracted image (sigma-clipped stats)."""
    import numpy as np
    from astropy.stats import SigmaClip, sigma_clipped_stats
    from photutils.background import Background2D, MedianBackground
    from photutils.detection import DAOStarFinder

    data = np.asarray(image, dtype=float)
    bad = ~np.isfinite(data)  # e.g. the chip gap
    box = max(16, min(64, min(data.shape) // 4))
    bkg = Background2D(data, box, mask=bad, filter_size=3,
                       sigma_clip=SigmaClip(sigma=3.0),
                       bkg_estimator=MedianBackground())
    resid = np.where(bad, 0.0, data - bkg.background)
    _, _, std = sigma_clipped_stats(resid, mask=bad, sigma=3.0)
    finder = DAOStarFinder(threshold=nsigma * std, fwhm=fwhm)
    return finder(resid, mask=bad)


def _match(det_xy, true_xy, radius):
    """Index of the matched truth object of each detection (-1: none), one-to-one."""
    import numpy as np
    from scipy.spatial import cKDTree

    match = np.full(len(det_xy), -1, dtype=int)
    if len(det_xy) == 0 or len(true_xy) == 0:
        return match
    dist, idx = cKDTree(true_xy).query(det_xy, distance_upper_bound=radius)
    order = np.argsort(dist)
    taken = set()
    for i in order:
        if np.isfinite(dist[i]) and idx[i] not in taken:
            match[i] = idx[i]
            taken.add(idx[i])
    return match


def _recall_lines(result, truth, match):
    import numpy as np

    from ._constants import CLASSES

    true_cls = np.asarray(truth["cluster_class"]).astype(int)
    pred = result["cluster_class"]
    pred_mask = np.ma.getmaskarray(pred)
    pred_val = np.ma.filled(np.ma.asarray(pred), 0)
    matched = match >= 0
    lines = [f"  {'class':>5s} {'true':>6s} {'found':>6s} {'correct':>8s} "
             f"{'recall':>7s}"]
    for c in CLASSES:
        n_true = int(np.count_nonzero(true_cls == c))
        sel = matched & ~pred_mask
        sel &= np.where(matched, true_cls[np.clip(match, 0, None)] == c, False)
        found = int(np.count_nonzero(sel))
        correct = int(np.count_nonzero(pred_val[sel] == c))
        recall = f"{correct / found:7.2f}" if found else f"{'-':>7s}"
        lines.append(f"  {c:>5d} {n_true:>6d} {found:>6d} {correct:>8d} {recall}")
    sel = matched & ~pred_mask
    correct = int(np.count_nonzero(
        pred_val[sel] == true_cls[match[sel]])) if np.any(sel) else 0
    acc = f"{correct / np.count_nonzero(sel):7.2f}" if np.any(sel) else f"{'-':>7s}"
    lines.append(f"  {'all':>5s} {len(true_cls):>6d} {int(np.count_nonzero(sel)):>6d} "
                 f"{correct:>8d} {acc}")
    return lines


def run_demo(args):
    """Simulate a field, detect, classify and compare with the truth (offline)."""
    import numpy as np

    from .export import to_regions, write_table

    outdir = Path(args.outdir).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise OSError(f"--outdir {outdir} exists and is not a directory")

    # the classifier first: without weights there is no point simulating
    clf = _make_classifier(args)

    from .simulation import simulate_field

    t0 = time.perf_counter()
    images, truth = simulate_field(seed=args.seed, n_objects=args.n_objects)
    t_sim = time.perf_counter() - t0
    band = args.detect_band.upper()
    if band not in images.bands:
        raise ValueError(f"--detect-band {args.detect_band!r} is not a simulated band "
                         f"{images.bands}")
    sources = _detect(images[band].data)
    if sources is None or len(sources) == 0:
        raise CLIError("no source detected in the simulated field", status=4)
    t1 = time.perf_counter()
    result = clf(sources, images)
    t_cls = time.perf_counter() - t1

    det_xy = np.column_stack([np.asarray(result["x_centroid"], float),
                              np.asarray(result["y_centroid"], float)])
    true_xy = np.column_stack([np.asarray(truth["x_centroid"], float),
                               np.asarray(truth["y_centroid"], float)])
    match = _match(det_xy, true_xy, args.match_radius)
    true_cls = np.asarray(truth["cluster_class"]).astype(int)
    result["true_class"] = np.ma.MaskedArray(
        np.where(match >= 0, true_cls[np.clip(match, 0, None)], 0), mask=match < 0)

    outdir.mkdir(parents=True, exist_ok=True)
    table_path = write_table(result, outdir / "out.ecsv", overwrite=True)
    reg_path = outdir / "classes.reg"
    to_regions(result, filename=reg_path, overwrite=True, use_sky=False)
    written = [str(table_path), str(reg_path)]
    gallery = _gallery(result, images, clf, outdir / "gallery.png")
    if gallery is not None:
        written.append(str(gallery))

    meta = result.meta["astro_clustercls"]
    print(f"{PROG} demo: simulated {len(truth)} objects in {images.bands} "
          f"({images.shape[1]}x{images.shape[0]} px, seed {args.seed}) in "
          f"{t_sim:.1f} s")
    print(f"detected {len(result)} sources in {band} (DAOStarFinder), "
          f"{int(np.count_nonzero(match >= 0))} matched to the truth within "
          f"{args.match_radius} px")
    print(f"classified {meta['n_classified']} with {meta['model']} (weights "
          f"{meta['weights']}) on {meta['device']} in {t_cls:.1f} s")
    if meta.get("weights_notes"):
        print(f"weights notes: {meta['weights_notes']}")
    print("\n".join(_class_summary(result)))
    print("recall per true class (matched, classified detections):")
    print("\n".join(_recall_lines(result, truth, match)))
    print(f"wrote {', '.join(written)}")
    return 0


def _has_bundled_weights(model):
    """Whether ``model`` has bundled weights files installed (unknown names raise)."""
    from .models import get_model_weights

    enum = get_model_weights(model)
    return any(Path(member.full_path).is_file() for member in enum)


def _gallery(result, images, clf, path):
    """A cutout gallery PNG when matplotlib (and the plotting module) are there."""
    from .utils._optional_deps import HAS_MATPLOTLIB

    if not HAS_MATPLOTLIB:
        print(f"{PROG}: matplotlib is not installed: no gallery")
        return None
    try:
        from .visualization import plot_cutout_gallery
    except ImportError:
        print(f"{PROG}: astro_clustercls.visualization is not available: no gallery")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_cutout_gallery(result, images, size=clf.cutout_size)
    fig = getattr(fig, "figure", fig)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------
# the parser and main
# ---------------------------------------------------------------------------
#: name -> (add_arguments(parser), run(args) -> exit status)
# ---------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------
def add_simulate_arguments(parser):
    parser.add_argument("--outdir", required=True, metavar="DIR",
                        help="directory for one FITS file per band and truth.ecsv")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed")
    parser.add_argument("--n-objects", type=int, default=300, metavar="N",
                        help="objects to simulate (default 300)")
    parser.add_argument("--shape", type=int, nargs=2, default=(1024, 1024),
                        metavar=("NY", "NX"), help="image shape (default 1024 1024)")
    parser.add_argument("--distance", type=float, default=10.0, metavar="MPC",
                        help="galaxy distance in Mpc (default 10)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files")


def run_simulate(args):
    """Simulate a five-band HST field with true classes; write FITS + truth table."""
    from .export import write_table
    from .simulation import simulate_field

    outdir = Path(args.outdir).expanduser()
    outdir.mkdir(parents=True, exist_ok=True)
    truth_path = _check_output(outdir / "truth.ecsv", args.overwrite, "--outdir")
    images, truth = simulate_field(seed=args.seed, n_objects=args.n_objects,
                                   shape=tuple(args.shape), distance=args.distance)
    paths = images.write(outdir, pattern="{band}_sim.fits", overwrite=args.overwrite)
    write_table(truth, truth_path, overwrite=args.overwrite)
    counts = ", ".join(f"class {c}: {int((truth['cluster_class'] == c).sum())}"
                       for c in (1, 2, 3, 4))
    print(f"{PROG}: simulated {len(truth)} objects ({counts}) at {args.distance} Mpc "
          f"on {args.shape[0]}x{args.shape[1]} px")
    print(f"wrote {', '.join(str(p) for p in paths.values())}, {truth_path}")
    return 0


# ---------------------------------------------------------------------------
# train (fine-tune on a labelled catalog) and evaluate
# ---------------------------------------------------------------------------
def _add_labelled_arguments(parser):
    parser.add_argument("--images", nargs="+", required=True, metavar="BAND=FILE",
                        help="one FITS image per band (BAND=FILE, or FILE with a "
                             "FILTER keyword)")
    parser.add_argument("--sources", required=True, metavar="TABLE",
                        help="labelled source table (ECSV, FITS, ...)")
    parser.add_argument("--sources-format", default=None, metavar="FORMAT")
    parser.add_argument("--label-col", default="cluster_class",
                        help="column of the true classes 1-4 (default cluster_class)")
    pos = parser.add_argument_group("positions")
    pos.add_argument("--xcol", default=None)
    pos.add_argument("--ycol", default=None)
    pos.add_argument("--skycol", default=None)
    pos.add_argument("--origin", type=int, choices=(0, 1), default=0)


def add_train_arguments(parser):
    _add_labelled_arguments(parser)
    parser.add_argument("--model", default="resnet18",
                        help="network: resnet18 (default) or vgg19_bn")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--weights", default="DEFAULT",
                       help="bundled weights to start from (default DEFAULT)")
    start.add_argument("--weights-path", default=None, metavar="FILE",
                       help="start from this checkpoint instead")
    parser.add_argument("--out", required=True, metavar="FILE.safetensors",
                        help="where to write the fine-tuned weights")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="checkpoint and per-epoch ECSV log (resumable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --workdir")
    parser.add_argument("--device", default=None)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--overwrite", action="store_true")


def run_train(args):
    """Fine-tune a network on a labelled catalog; write safetensors weights."""
    from .images import BandImages
    from .models import get_model
    from .training import fine_tune

    out = _check_output(args.out, args.overwrite, "--out")
    model = get_model(args.model, weights=None if args.weights_path else args.weights,
                      weights_path=args.weights_path)
    images = BandImages.from_files(_parse_images(args.images))
    sources = _read_sources(args.sources, args.sources_format)
    kwargs = {}
    if args.workdir:
        workdir = Path(args.workdir).expanduser()
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "checkpoint.pt"
        kwargs.update(checkpoint=checkpoint, log=workdir / "history.ecsv",
                      resume=args.resume and checkpoint.exists())
    result = fine_tune(model, sources, images, label_col=args.label_col,
                       epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                       val_fraction=args.val_fraction, seed=args.seed,
                       device=args.device, progress_bar=args.progress,
                       xcol=args.xcol, ycol=args.ycol, skycol=_skycol(args.skycol),
                       origin=args.origin, **kwargs)
    sha = result.save(out)
    print(f"{PROG}: best epoch {result.best_epoch} of {len(result.history)} "
          f"(validation loss {result.best_val_loss:.3f}); wrote {out} (sha256 "
          f"{sha[:12]}); classify with --weights-path {out}")
    return 0


def add_evaluate_arguments(parser):
    _add_labelled_arguments(parser)
    _add_classifier_options(parser)
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the per-class report as ECSV")
    parser.add_argument("--overwrite", action="store_true")


def run_evaluate(args):
    """Classify a labelled catalog and report per-class accuracy vs the paper."""
    from .images import BandImages
    from .metrics import compare_with_paper, evaluate

    out = _check_output(args.out, args.overwrite, "--out")
    clf = _make_classifier(args)
    images = BandImages.from_files(_parse_images(args.images))
    sources = _read_sources(args.sources, args.sources_format)
    report = evaluate(clf, sources, images, label_col=args.label_col, xcol=args.xcol,
                      ycol=args.ycol, skycol=_skycol(args.skycol), origin=args.origin)
    print(f"{PROG}: evaluated {report.meta['n_evaluated']} labelled sources "
          f"(overall accuracy {report.meta['overall_accuracy']:.3f})")
    comparison = compare_with_paper(report)
    for table in (report, comparison):
        for name in table.colnames:
            if table[name].dtype.kind == "f":
                table[name].info.format = ".3f"
    report.pprint(max_width=-1)
    print("\nagainst Wei et al. 2020 (NGC 1559) and human consistency:")
    comparison.pprint(max_width=-1)
    if out is not None:
        from .export import write_table

        write_table(report, out, overwrite=args.overwrite)
        print(f"wrote {out}")
    return 0


SUBCOMMANDS = {
    "classify": (add_classify_arguments, run_classify),
    "demo": (add_demo_arguments, run_demo),
    "simulate": (add_simulate_arguments, run_simulate),
    "train": (add_train_arguments, run_train),
    "evaluate": (add_evaluate_arguments, run_evaluate),
}


def _version():
    from . import __version__

    return __version__


def build_parser():
    """The argparse parser with one subparser per entry of `SUBCOMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        description="Classify star-cluster candidates in HST images into the four "
                    "classes of Wei et al. (2020).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, run) in SUBCOMMANDS.items():
        doc = (run.__doc__ or "").strip().splitlines()
        help_ = doc[0] if doc else None
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        add_arguments(sp)
        sp.set_defaults(_run=run)
    return parser


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def main(argv=None):
    """
    Run the ``astro-clustercls`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 for errors in files or arguments (printed in one
        line); 2 for usage errors; 3 when no network weights are available;
        130 if interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    debug = getattr(args, "debug", False)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        if not sys.warnoptions:  # a command line shows warnings, never raises them
            warnings.simplefilter("default")
        try:
            return int(args._run(args) or 0)
        except CLIError as exc:
            if debug:
                raise
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return exc.status
        except (OSError, ValueError, TypeError, KeyError) as exc:
            if debug:
                raise
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
