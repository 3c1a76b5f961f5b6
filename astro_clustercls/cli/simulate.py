# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls simulate``: a five-band HST field with true classes."""

from pathlib import Path

from ..io.export import write_table
from ..simulation import simulate_field
from ._common import PROG, check_output, count, stage

__all__ = ["run"]

def run(args):
    """Simulate a five-band HST field with true classes; write FITS + truth table."""
    outdir = Path(args.outdir).expanduser()
    outdir.mkdir(parents=True, exist_ok=True)
    truth_path = check_output(outdir / "truth.ecsv", args.overwrite, "--outdir")
    stage(args, f"simulating {count(args.n_objects)} objects on {args.shape[0]}x"
                f"{args.shape[1]} px at {args.distance:g} Mpc (seed {args.seed})...")
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
