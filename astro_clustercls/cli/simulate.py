# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls simulate``: a five-band HST field with true classes."""

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..io.export import write_table
from ..simulation import simulate_field
from ..simulation.field import ACS_SLOTS, field_bands
from ..utils._files import atomic_write_all
from ._common import PROG, check_output, count, progress_of, stage

__all__ = ["run"]


def _fits_writer(ccd):
    """``write(tmp)`` of one band: image, WCS and the simulation's cards."""
    header = ccd.wcs.to_header() if ccd.wcs is not None else fits.Header()
    header.update(ccd.meta)  # FILTER, INSTRUME, EXPTIME, BUNIT, SIMVERS...
    hdu = fits.PrimaryHDU(np.asarray(ccd.data), header)
    return lambda tmp: hdu.writeto(tmp, overwrite=True)


def run(args):
    """Simulate a five-band HST field with true classes; write FITS + truth table."""
    outdir = Path(args.outdir).expanduser()
    outdir.mkdir(parents=True, exist_ok=True)
    bands = field_bands(acs_bands=args.acs_bands)
    # every output checked before the (possibly long) simulation
    truth_path = check_output(outdir / "truth.ecsv", args.overwrite, "--outdir")
    paths = {b: check_output(outdir / f"{b.lower()}_sim.fits", args.overwrite,
                             "--outdir") for b in bands}
    acs = [f"ACS/WFC {b} in the {ACS_SLOTS[b]} slot" for b in args.acs_bands or []]
    stage(args, f"simulating {count(args.n_objects)} objects on {args.shape[0]}x"
                f"{args.shape[1]} px at {args.distance:g} Mpc with simulator "
                f"{args.simulator}{''.join(', ' + a for a in acs)} (seed "
                f"{args.seed})...")
    images, truth = simulate_field(seed=args.seed, n_objects=args.n_objects,
                                   shape=tuple(args.shape), distance=args.distance,
                                   simulator=args.simulator,
                                   acs_bands=args.acs_bands,
                                   progress_bar=progress_of(args))
    # all or nothing: an error or Ctrl-C while writing leaves no partial file
    writes = {paths[b]: _fits_writer(images[b]) for b in bands}
    writes[truth_path] = lambda tmp: write_table(truth, tmp, overwrite=True)
    atomic_write_all(writes, overwrite=args.overwrite)
    counts = ", ".join(f"class {c}: {int((truth['cluster_class'] == c).sum())}"
                       for c in (1, 2, 3, 4))
    print(f"{PROG}: simulated {len(truth)} objects ({counts}) at {args.distance} Mpc "
          f"on {args.shape[0]}x{args.shape[1]} px (simulator "
          f"{truth.meta['simulator_version']})")
    if args.acs_bands:
        band_map = " ".join(f"{ACS_SLOTS[b]}={b}" for b in args.acs_bands)
        print(f"bands {' '.join(bands)}: classify with --band-map {band_map}")
    print(f"wrote {', '.join(str(p) for p in paths.values())}, {truth_path}")
    return 0
