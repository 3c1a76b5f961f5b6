# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``astro-clustercls adapt``: fine-tune a network to one's own field.

Simulated objects of the four classes are injected into the user's images,
part of them is held back, the network is fine-tuned on the rest, and the
per-class recall before and after on the held-back objects is printed and
written as ECSV next to the weights.
"""

from pathlib import Path

from ..data.images import BandImages
from ..io.export import write_table
from ..training.adaptation import adapt
from ._common import (
    PROG,
    check_output,
    count,
    parse_band_map,
    parse_hdu,
    parse_images,
    parse_pairs,
    progress_of,
    stage,
)

__all__ = ["run"]


def _report_path(out, report):
    if report is not None:
        return report
    out = Path(out)
    return out.with_name(f"{out.stem}-report.ecsv")


def run(args):
    """Fine-tune a network to your own field on simulated objects injected into it."""
    if args.resume and args.workdir is None:
        raise ValueError("--resume needs the --workdir of the interrupted run")
    out = check_output(args.out, args.overwrite, "--out")
    report_path = check_output(_report_path(args.out, args.report), args.overwrite,
                               "--report")
    psfs = parse_pairs("--psf-fwhm (BAND=ARCSEC)", args.psf_fwhm, float) or None
    bands = parse_band_map(args.band_map)
    files = parse_images(args.images)
    stage(args, f"reading {len(files)} images...")
    images = BandImages.from_files(files, hdu=parse_hdu(args.hdu))
    if args.workdir is not None:
        args.interrupt_hint = (f"{args.workdir} keeps the injected objects and the "
                               "last complete epoch: continue with the same command "
                               "and --resume")
    result = adapt(images, args.model, weights=args.weights,
                   weights_path=args.weights_path, distance=args.distance, psfs=psfs,
                   bands=bands, n_objects=args.n_objects,
                   test_fraction=args.test_fraction, epochs=args.epochs, lr=args.lr,
                   batch_size=args.batch_size, seed=args.seed, device=args.device,
                   workdir=args.workdir, resume=args.resume,
                   progress_bar=progress_of(args),
                   on_stage=lambda message: stage(args, message + "..."))
    sha = result.save(out)
    write_table(result.report, report_path, overwrite=True)
    meta = result.report.meta["adapt"]
    print(f"{PROG}: adapted {args.model} to the field: {count(meta['n_train'])} "
          f"injected objects trained on, {count(meta['n_test'])} held back, "
          f"{args.epochs} epoch(s), {meta['seconds']:.0f} s")
    print("recall on the held-back injected objects, before and after:")
    print("\n".join(result.summary()))
    print(f"wrote {out} (sha256 {sha[:12]}), {report_path}; classify with "
          f"--weights-path {out}")
    return 0
