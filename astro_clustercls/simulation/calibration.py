# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Calibrate the simulator on the real LEGUS catalogs.

Simulated cutouts are measured the way LEGUS measures its candidates
(Adamo et al. 2017): aperture photometry with photutils at the catalog
position, a local sky from the median in an annulus of 7-8 px, the
concentration index ``CI = mag(r = 1 px) - mag(r = 3 px)`` in F555W,
magnitudes in a 4 px aperture plus an average (point-source) aperture
correction, colours U - V = F336W - F555W and V - I = F555W - F814W. The
LEGUS candidate selection is applied to them (CI above the field's cut,
M_V < -6, detected with an error < 0.3 mag in >= 4 bands including V) and,
class by class, the median and 16-84 % range of each quantity are printed
next to LEGUS's. Run::

    python -m astro_clustercls.simulation.calibration [--n 6000] [--out FILE.rst]

The LEGUS tables are read from ``../shared/data/legus`` (see its README);
class counts and the CI cut of each field come from them, distances from
`LEGUS_DISTANCES`.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from .._constants import DEFAULT_BANDS
from ..data.catalogs import read_legus_directory
from ..utils._rst import grid_table
from ._version import SIMULATOR_VERSION
from .measure import (
    legus_selection,
    measure_stamps,
    quick_measure,
)
from .observing import DEFAULT_CONDITIONS
from .populations import DEFAULT_PARAMETERS, LEGUS_DISTANCES
from .training_set import _make_stamps

__all__ = [
    "legus_data_dir",
    "quick_measure",
    "measure_stamps",
    "legus_selection",
    "summarize",
    "legus_summary",
    "simulated_summary",
    "compare",
    "format_table",
    "TOLERANCES",
    "main",
]

#: Tolerances the calibration is held to (test_calibration).
TOLERANCES = {"ci_median": 0.1, "colour_median": 0.25}

_QUANTITIES = ("CI", "U-V", "V-I", "V")
def legus_data_dir():
    """The LEGUS catalog directory (``../shared/data/legus`` from the repo), or None."""
    pkg = Path(__file__).resolve().parents[1] / "__init__.py"
    for cand in (
        pkg.parents[2] / "shared" / "data" / "legus",
        pkg.parents[1] / ".." / "shared" / "data" / "legus",
    ):
        if (cand / "MANIFEST.tsv").is_file():
            return cand
    return None


def _read_legus_for_calibration(directory=None):
    """
    The LEGUS tables as arrays, read with `astro_clustercls.data.catalogs`.

    Returns a dict of arrays: ``field``, ``mag`` (N, 5) in F275W, F336W,
    F435W/F438W, F555W/F606W, F814W (NaN: outside / not detected), ``err``,
    ``outside`` (N, 5) bool, ``ci``, ``cls`` (0 = not inspected; 5 and other
    codes are mapped to 0).
    """
    d = Path(directory) if directory is not None else legus_data_dir()
    if d is None or not (d / "MANIFEST.tsv").is_file():
        raise OSError("LEGUS catalogs not found (expected ../shared/data/legus)")
    table = read_legus_directory(d)

    def filled(name, fill=np.nan):
        col = table[name]
        values = col.filled(fill) if hasattr(col, "filled") else col
        return np.asarray(getattr(values, "value", values), dtype=float)

    bands = DEFAULT_BANDS
    return {
        "field": np.asarray(table["field"], dtype="<U12"),
        "mag": np.column_stack([filled(f"{b}_mag") for b in bands]),
        "err": np.column_stack([filled(f"{b}_mag_err") for b in bands]),
        "outside": np.column_stack([~np.asarray(table[f"{b}_in_footprint"])
                                    for b in bands]),
        "ci": filled("CI"),
        "cls": filled("cluster_class", 0).astype(int),
    }


def summarize(ci, mag, det=None):
    """Median and 16/84 % percentiles of CI, U-V, V-I and V, plus detection fractions.

    ``mag`` columns are F275W, F336W, B, V, F814W.
    """
    q = {
        "CI": ci,
        "U-V": mag[:, 1] - mag[:, 3],
        "V-I": mag[:, 3] - mag[:, 4],
        "V": mag[:, 3],
    }
    out = {}
    for k, x in q.items():
        x = np.asarray(x, float)
        x = x[np.isfinite(x)]
        out[k] = (
            tuple(np.percentile(x, [50, 16, 84]))
            if x.size
            else (np.nan, np.nan, np.nan)
        )
    out["n"] = int(np.isfinite(np.asarray(ci, float)).sum())
    if det is not None:
        out["det"] = tuple(np.nanmean(det, axis=0))
    return out


def legus_summary(cat=None):
    """Per-class summary of the human-classified LEGUS candidates."""
    cat = cat if cat is not None else _read_legus_for_calibration()
    out = {}
    for c in (1, 2, 3, 4):
        s = cat["cls"] == c
        inside = ~cat["outside"][s]
        det = np.where(inside, np.isfinite(cat["mag"][s]), np.nan)
        out[c] = summarize(cat["ci"][s], cat["mag"][s], det)
    return out


def _field_table(cat):
    """Per LEGUS field: distance, CI cut (lowest classified CI), class counts."""
    fields = {}
    for f in np.unique(cat["field"]):
        s = (cat["field"] == f) & (cat["cls"] > 0)
        if not s.any() or f not in LEGUS_DISTANCES:
            continue
        counts = np.array([(cat["cls"][s] == c).sum() for c in (1, 2, 3, 4)])
        fields[f] = (
            LEGUS_DISTANCES[f],
            np.floor(cat["ci"][s].min() * 100) / 100,
            counts,
        )
    return fields


def simulated_summary(
    n_per_class=1500,
    seed=0,
    *,
    params=None,
    cat=None,
    conditions=None,
    use_photutils=True,
    size=31,
    return_raw=False,
):
    """
    Simulate LEGUS-like candidates per class, measure, select and summarise.

    Each simulated class-c object gets the distance and CI cut of a LEGUS field
    drawn with the weight of that field's class-c count.
    """
    cat = cat if cat is not None else _read_legus_for_calibration()
    fields = _field_table(cat)
    names = list(fields)
    rng = np.random.default_rng(seed)
    p = params or DEFAULT_PARAMETERS
    conditions = conditions or DEFAULT_CONDITIONS
    bands = DEFAULT_BANDS
    out, raw = {}, {}
    for c in (1, 2, 3, 4):
        w = np.array([fields[f][2][c - 1] for f in names], float)
        m = int(n_per_class)
        pick = rng.choice(len(names), m, p=w / w.sum())
        dist = np.array([fields[names[i]][0] for i in pick])
        cut = np.array([fields[names[i]][1] for i in pick])
        img, var, tab = _make_stamps(
            m,
            size,
            rng,
            bands=bands,
            distance=dist,
            classes=np.full(m, c),
            params=p,
            conditions=conditions,
            psf_scale=1.0,
            psf_jitter=0.0,
            background_mu=21.5,
            background_age=(7.5, 9.5),
            crowding=0.8,
            position_jitter=0.25,
        )
        meas = (
            measure_stamps(img, bands, variance=var)
            if use_photutils
            else quick_measure(img, var, bands)
        )
        sel = legus_selection(meas, dist, bands, ci_cut=cut, rng=rng)
        det = (np.nan_to_num(meas["err"][sel], nan=9) <= 0.3).astype(float)
        out[c] = summarize(meas["ci"][sel], meas["mag"][sel], det)
        out[c]["selected_fraction"] = float(sel.mean())
        raw[c] = (meas, sel, tab)
    return (out, raw) if return_raw else out


def compare(sim, legus):
    """Differences of medians (sim - LEGUS) per class and quantity."""
    return {c: {k: sim[c][k][0] - legus[c][k][0] for k in _QUANTITIES} for c in sim}


def _fmt(t):
    return f"{t[0]:6.2f} [{t[1]:6.2f}, {t[2]:6.2f}]"


def format_table(sim, legus):
    """An RST grid table: per class, simulator vs LEGUS, median [16 %, 84 %]."""
    head = [
        "Class",
        "Quantity",
        "Simulator median [16%, 84%]",
        "LEGUS median [16%, 84%]",
        "Diff.",
    ]
    rows = []
    for c in (1, 2, 3, 4):
        for k in _QUANTITIES:
            rows.append(
                [
                    str(c),
                    k,
                    _fmt(sim[c][k]),
                    _fmt(legus[c][k]),
                    f"{sim[c][k][0] - legus[c][k][0]:+.2f}",
                ]
            )
        det_s = " ".join(f"{x:.2f}" for x in sim[c].get("det", ()))
        det_l = " ".join(f"{x:.2f}" for x in legus[c].get("det", ()))
        rows.append([str(c), "det. frac. (5 bands)", det_s, det_l, ""])
        rows.append(
            [
                str(c),
                "N selected",
                f"{sim[c]['n']} "
                f"({100 * sim[c].get('selected_fraction', 1):.0f}% of drawn)",
                str(legus[c]["n"]),
                "",
            ]
        )
    return grid_table(head, rows)


def main(argv=None):
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m astro_clustercls.simulation.calibration",
        description="Compare simulated candidates with the LEGUS catalogs, per class.",
    )
    parser.add_argument("--n", type=int, default=4000, help="objects drawn per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the RST table to this file")
    args = parser.parse_args(argv)
    cat = _read_legus_for_calibration()
    legus = legus_summary(cat)
    sim = simulated_summary(args.n, args.seed, cat=cat)
    table = format_table(sim, legus)
    text = (
        f".. Generated by `python -m astro_clustercls.simulation.calibration "
        f"--n {args.n} --seed {args.seed}` (simulator {SIMULATOR_VERSION}).\n\n"
        f"{table}\n"
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
