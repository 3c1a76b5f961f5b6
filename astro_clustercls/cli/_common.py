# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Helpers shared by the subcommands: errors, inputs, outputs, summaries."""

import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import QTable

from .._constants import CLASS_NAMES, CLASSES
from ..data.flags import FLAGS
from ..inference.classifier import ClusterClassifier
from ..io.export import to_regions, write_table
from ..models import get_model_weights
from ..utils._progress_bars import stderr_is_terminal
from ._errors import PROG, CLIError

__all__ = ["PROG", "CLIError", "parse_images", "read_sources", "check_output",
           "parse_hdu", "write_outputs", "skycol", "class_summary",
           "has_bundled_weights", "make_classifier", "stage", "progress_of",
           "count", "parse_band_map", "parse_pairs", "renamed_lines"]


def count(n):
    """``12000`` -> ``'12 000'`` (thin groups, as astronomers write numbers)."""
    return f"{int(n):,}".replace(",", " ")


def stage(args, message):
    """Say on stderr what a long command is doing (not with ``--quiet``)."""
    if not getattr(args, "quiet", False):
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def progress_of(args):
    """Progress bars: forced by ``--progress``, off with ``--quiet``, else on a tty."""
    if getattr(args, "progress", False):
        return True
    if getattr(args, "quiet", False):
        return False
    return stderr_is_terminal()


def parse_pairs(option, values, convert=str):
    """``['A=x', 'B=y']`` -> ``{'A': convert('x'), ...}`` (errors name ``option``)."""
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"{option}: expected KEY=VALUE items, got {item!r}")
        if key.upper() in {k.upper() for k in out}:
            raise ValueError(f"{option}: {key!r} given twice")
        try:
            out[key] = convert(value)
        except ValueError:
            raise ValueError(f"{option}: bad value in {item!r}") from None
    return out


def parse_band_map(values):
    """``--band-map F438W=F435W ...`` -> ``{'F438W': 'F435W'}`` (None if not given)."""
    if not values:
        return None
    return parse_pairs("--band-map (NETWORK_BAND=IMAGE_BAND)", values)


def renamed_lines(result):
    """Lines saying which input columns were kept under new names."""
    renamed = result.meta.get("astro_clustercls", {}).get("renamed_columns") or {}
    return [f"  kept the input column {old!r} as {new!r} (never replaced)"
            for old, new in renamed.items()]


def parse_images(specs):
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


def read_sources(path, fmt=None):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"sources table not found: {path}")
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


def check_output(path, overwrite, option):
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OSError(f"{option} {path} already exists; pass --overwrite to replace it")
    if not path.parent.exists():
        raise FileNotFoundError(f"{option}: directory {path.parent} does not exist")
    return path


def parse_hdu(value):
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


def write_outputs(result, out, regions, overwrite, *, wcs=None):
    """
    Write the table (and the regions) all or nothing.

    Both are written under temporary names next to their targets and moved into
    place only once both are complete, so an error or Ctrl-C while writing
    leaves neither a partial file nor a table without its regions. With
    ``wcs`` (the images'), the regions are in sky coordinates.
    """
    targets = [p for p in (out, regions) if p is not None]
    tag = f"{os.getpid()}.{time.monotonic_ns()}"
    temps = [p.with_name(f".{p.name}.{tag}.part") for p in targets]
    try:
        write_table(result, temps[0], overwrite=True)
        if regions is not None:
            to_regions(result, filename=temps[1], overwrite=True, wcs=wcs)
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


def skycol(value):
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and all(parts):
        return tuple(parts)
    raise ValueError(f"--skycol must be a SkyCoord column or RA,DEC columns, got "
                     f"{value!r}")


def class_summary(result):
    """Lines: counts per class and of unclassified rows."""

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


def has_bundled_weights(model):
    """Whether ``model`` has bundled weights files installed (unknown names raise)."""
    enum = get_model_weights(model)
    return any(Path(member.full_path).is_file() for member in enum)


def make_classifier(args, **extra):
    if (args.weights_path is None and getattr(args, "weights", None) is None
            and not has_bundled_weights(args.model)):
        raise CLIError(
            f"no bundled weights for model {args.model!r} in this installation yet "
            "(astro_clustercls/models/data/ holds none); train them with the training "
            "code, or pass a weights file with --weights-path FILE", status=3)
    source = (f"weights file {args.weights_path}" if args.weights_path
              else f"bundled weights {getattr(args, 'weights', None) or 'DEFAULT'}")
    stage(args, f"loading network {args.model} ({source})...")
    if getattr(args, "band_map", None) is not None:
        extra.setdefault("bands", parse_band_map(args.band_map))
    return ClusterClassifier(args.model, weights=getattr(args, "weights", None),
                             weights_path=args.weights_path,
                             weights_sha256=args.weights_sha256, device=args.device,
                             batch_size=args.batch_size, progress_bar=progress_of(args),
                             tta=args.tta, ood=getattr(args, "ood", True), **extra)
