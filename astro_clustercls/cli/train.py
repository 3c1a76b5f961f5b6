# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls train``: fine-tune a network on a labelled catalog."""

from pathlib import Path

from ..data.images import BandImages
from ..models import get_model
from ..training import fine_tune
from ._common import (
    PROG,
    check_output,
    count,
    parse_images,
    progress_of,
    read_sources,
    skycol,
    stage,
)

__all__ = ["run"]


def _provenance(model, sources, args):
    """
    The weights' ``training_data`` and ``fine_tuned_on`` meta: the catalog
    and, for a simulated one (``astro-clustercls simulate``), the simulator
    version recorded in its meta. ``simulator_version`` stays that of the
    network's first training.
    """
    base = getattr(model, "clustercls_meta", None) or {}
    simulator = sources.meta.get("simulator_version")
    tuned = {"sources": Path(args.sources).name, "n_sources": len(sources),
             "label_col": args.label_col}
    text = (f"Then fine-tuned (astro-clustercls train, seed {args.seed}) on the "
            f"{len(sources)} labelled sources of {Path(args.sources).name}")
    if simulator is not None:
        tuned["simulator_version"] = str(simulator)
        text += f", simulated by astro_clustercls.simulation {simulator}"
    return {"training_data": f"{base.get('training_data', '')} {text}".strip(),
            "fine_tuned_on": tuned}


def run(args):
    """Fine-tune a network on a labelled catalog; write safetensors weights."""
    out = check_output(args.out, args.overwrite, "--out")
    source = (f"weights file {args.weights_path}" if args.weights_path
              else f"bundled weights {args.weights}")
    stage(args, f"loading network {args.model} ({source})...")
    model = get_model(args.model, weights=None if args.weights_path else args.weights,
                      weights_path=args.weights_path)
    files = parse_images(args.images)
    stage(args, f"reading {len(files)} images and the labelled sources...")
    images = BandImages.from_files(files)
    sources = read_sources(args.sources, args.sources_format)
    kwargs = {}
    if args.workdir:
        workdir = Path(args.workdir).expanduser()
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "checkpoint.pt"
        kwargs.update(checkpoint=checkpoint, log=workdir / "history.ecsv",
                      resume=args.resume and checkpoint.exists())
        args.interrupt_hint = ("the last complete epoch is saved: continue with the "
                               "same command and --resume")
    provenance = _provenance(model, sources, args)  # before training changes it
    stage(args, f"cutting {count(len(sources))} labelled sources and fine-tuning "
                f"for up to {args.epochs} epochs ({args.val_fraction:g} held out to "
                "validate)...")
    result = fine_tune(model, sources, images, label_col=args.label_col,
                       epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                       val_fraction=args.val_fraction, seed=args.seed,
                       device=args.device, progress_bar=progress_of(args),
                       xcol=args.xcol, ycol=args.ycol, skycol=skycol(args.skycol),
                       origin=args.origin, **kwargs)
    sha = result.save(out, meta=provenance)
    for row in result.history:
        print(f"  epoch {int(row['epoch']):>3d}: train loss {row['train_loss']:.3f}, "
              f"validation loss {row['val_loss']:.3f}, balanced accuracy "
              f"{row['val_balanced_acc']:.3f} ({row['seconds']:.0f} s)")
    print(f"{PROG}: best epoch {result.best_epoch} of {len(result.history)} "
          f"(validation loss {result.best_val_loss:.3f}); wrote {out} (sha256 "
          f"{sha[:12]}); classify with --weights-path {out}")
    return 0
