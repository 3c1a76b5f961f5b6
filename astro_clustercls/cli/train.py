# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls train``: fine-tune a network on a labelled catalog."""

from pathlib import Path

from ..data.images import BandImages
from ..models import get_model
from ..training import fine_tune
from ._common import PROG, check_output, parse_images, read_sources, skycol

__all__ = ["run"]

def run(args):
    """Fine-tune a network on a labelled catalog; write safetensors weights."""
    out = check_output(args.out, args.overwrite, "--out")
    model = get_model(args.model, weights=None if args.weights_path else args.weights,
                      weights_path=args.weights_path)
    images = BandImages.from_files(parse_images(args.images))
    sources = read_sources(args.sources, args.sources_format)
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
                       xcol=args.xcol, ycol=args.ycol, skycol=skycol(args.skycol),
                       origin=args.origin, **kwargs)
    sha = result.save(out)
    print(f"{PROG}: best epoch {result.best_epoch} of {len(result.history)} "
          f"(validation loss {result.best_val_loss:.3f}); wrote {out} (sha256 "
          f"{sha[:12]}); classify with --weights-path {out}")
    return 0
