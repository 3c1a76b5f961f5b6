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

    python -m astro_clustercls.simulation.calibration [--n 4000] [--out FILE.rst]
        [--simulator v1|v2] [--quick]

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
from ._training_v2 import fix_v2_photometry, make_stamps_v2
from ._version import resolve_version
from .measure import (
    legus_selection,
    measure_stamps,
    quick_measure,
)
from .observing import DEFAULT_CONDITIONS
from .populations import LEGUS_DISTANCES, parameters_for
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
    "check",
    "width",
    "format_table",
    "TOLERANCES",
    "main",
]

#: Tolerances the calibration is held to (test_calibration): medians of CI and
#: of the colours within these many mag of LEGUS's; for simulator v2 also the
#: 16-84 % widths of CI, U-V and V-I within these factors of LEGUS's.
TOLERANCES = {"ci_median": 0.1, "colour_median": 0.25, "width_ratio": (0.75, 1.33)}

_QUANTITIES = ("CI", "U-V", "V-I", "V")

#: Objects drawn per class, times ``n_per_class``: v2's class-4 impostors pass
#: LEGUS's selection 2-3 times less often than clusters, so more are drawn to
#: summarise as many.
_DRAW_FACTORS = {"2.0": {4: 2.5}}


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
        raise FileNotFoundError(
            "LEGUS catalogs not found (expected ../shared/data/legus)"
        )
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
        "outside": np.column_stack(
            [~np.asarray(table[f"{b}_in_footprint"]) for b in bands]
        ),
        "ci": filled("CI"),
        "cls": filled("cluster_class", 0).astype(int),
    }


def _percentiles(x, q, weights=None):
    """Percentiles ``q`` of ``x``, optionally weighted (midpoint convention)."""
    if weights is None:
        return np.percentile(x, q)
    o = np.argsort(x)
    x, w = x[o], np.asarray(weights, float)[o]
    c = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(np.asarray(q, float) / 100.0, c, x)


def summarize(ci, mag, det=None, weights=None):
    """Median and 16/84 % percentiles of CI, U-V, V-I and V, plus detection fractions.

    ``mag`` columns are F275W, F336W, B, V, F814W; ``weights``, optional,
    weight each object.
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
        ok = np.isfinite(x)
        w = None if weights is None else np.asarray(weights, float)[ok]
        x = x[ok]
        out[k] = (
            tuple(_percentiles(x, [50, 16, 84], w))
            if x.size
            else (np.nan, np.nan, np.nan)
        )
    out["n"] = int(np.isfinite(np.asarray(ci, float)).sum())
    if det is not None:
        out["det"] = tuple(np.nanmean(det, axis=0))
    return out


def legus_summary(cat=None, fields=None):
    """Per-class summary of the human-classified LEGUS candidates (of the
    ``fields`` named, if given)."""
    cat = cat if cat is not None else _read_legus_for_calibration()
    keep = np.ones(cat["cls"].size, bool)
    if fields is not None:
        keep = np.isin(cat["field"], list(fields))
    out = {}
    for c in (1, 2, 3, 4):
        s = (cat["cls"] == c) & keep
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
    simulator=None,
    fields=None,
    reweight_fields=None,
    classes=(1, 2, 3, 4),
):
    """
    Simulate LEGUS-like candidates per class, measure, select and summarise.

    Each simulated class-c object gets the distance and CI cut of a LEGUS field
    drawn with the weight of that field's class-c count (only the ``fields``
    named, if given). ``simulator`` picks the version (default: that of
    ``params``, else v1); v2 objects get v2's randomised observing set-ups
    (each LEGUS field is observed differently), and 2.5 times as many class-4
    objects are drawn (fewer pass the selection). ``classes``: the classes to
    simulate (default all four).

    The selection keeps objects at some distances more often than at others,
    so the selected objects' mix of fields drifts from LEGUS's. With
    ``reweight_fields`` (default: True for v2, False for v1, whose published
    table was made without), each selected object is weighted by LEGUS's
    count in its field over the number selected there, so the summaries
    compare samples with the same mix of fields.
    """
    cat = cat if cat is not None else _read_legus_for_calibration()
    table = _field_table(cat)
    names = [f for f in table if fields is None or f in set(fields)]
    if not names:
        raise ValueError(f"no LEGUS field among {fields!r}")
    fields = table
    rng = np.random.default_rng(seed)
    version = resolve_version(simulator, params)
    p = params or parameters_for(version)
    conditions = conditions or DEFAULT_CONDITIONS
    bands = DEFAULT_BANDS
    out, raw = {}, {}
    factors = _DRAW_FACTORS.get(version, {})
    for c in classes:
        w = np.array([fields[f][2][c - 1] for f in names], float)
        m = int(round(n_per_class * factors.get(c, 1.0)))
        pick = rng.choice(len(names), m, p=w / w.sum())
        dist = np.array([fields[names[i]][0] for i in pick])
        cut = np.array([fields[names[i]][1] for i in pick])
        if version == "2.0":
            img, var, tab = make_stamps_v2(
                m,
                size,
                rng,
                bands=bands,
                distance=dist,
                classes=np.full(m, c),
                params=p,
                conditions=conditions,
            )
        else:
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
        if version == "2.0":
            fix_v2_photometry(meas, tab, bands)
        sel = legus_selection(meas, dist, bands, ci_cut=cut, rng=rng)
        det = (np.nan_to_num(meas["err"][sel], nan=9) <= 0.3).astype(float)
        weights = None
        if reweight_fields if reweight_fields is not None else version == "2.0":
            got = np.bincount(pick[sel], minlength=len(names)).astype(float)
            want = w / w.sum() * sel.sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                per_field = np.where(got > 0, want / got, 0.0)
            weights = per_field[pick[sel]]
        out[c] = summarize(meas["ci"][sel], meas["mag"][sel], det, weights)
        out[c]["selected_fraction"] = float(sel.mean())
        raw[c] = (meas, sel, tab)
    return (out, raw) if return_raw else out


def width(t):
    """16-84 % width of a (median, 16 %, 84 %) summary."""
    return t[2] - t[1]


def compare(sim, legus):
    """
    Per class and quantity: the difference of medians (sim - LEGUS) and the
    ratio of the 16-84 % widths (sim / LEGUS).
    """
    return {
        c: {
            k: (sim[c][k][0] - legus[c][k][0], width(sim[c][k]) / width(legus[c][k]))
            for k in _QUANTITIES
        }
        for c in sim
    }


def check(sim, legus, *, widths=True, tolerances=None):
    """
    The calibration's failures: a list of strings, empty when every median
    (CI, U-V, V-I) and, with ``widths``, every 16-84 % width of CI, U-V and
    V-I is within `TOLERANCES`.
    """
    tol = dict(TOLERANCES, **(tolerances or {}))
    lo, hi = tol["width_ratio"]
    bad = []
    for c, row in compare(sim, legus).items():
        for k in ("CI", "U-V", "V-I"):
            d, r = row[k]
            lim = tol["ci_median"] if k == "CI" else tol["colour_median"]
            if not abs(d) <= lim:
                bad.append(f"class {c} {k} median {d:+.2f} (tolerance {lim})")
            if widths and not lo <= r <= hi:
                bad.append(f"class {c} {k} width ratio {r:.2f} (tolerance {lo}-{hi})")
    return bad


def _fmt(t):
    return f"{t[0]:6.2f} [{t[1]:6.2f}, {t[2]:6.2f}]"


def format_table(sim, legus):
    """
    An RST grid table: per class, simulator vs LEGUS, median [16 %, 84 %],
    the difference of medians and the ratio of the 16-84 % widths.
    """
    head = [
        "Class",
        "Quantity",
        "Simulator median [16%, 84%]",
        "LEGUS median [16%, 84%]",
        "Diff.",
        "Width ratio",
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
                    f"{width(sim[c][k]) / width(legus[c][k]):.2f}",
                ]
            )
        det_s = " ".join(f"{x:.2f}" for x in sim[c].get("det", ()))
        det_l = " ".join(f"{x:.2f}" for x in legus[c].get("det", ()))
        rows.append([str(c), "det. frac. (5 bands)", det_s, det_l, "", ""])
        rows.append(
            [
                str(c),
                "N selected",
                f"{sim[c]['n']} "
                f"({100 * sim[c].get('selected_fraction', 1):.0f}% of drawn)",
                str(legus[c]["n"]),
                "",
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
    parser.add_argument(
        "--simulator", default="v2", help="simulator version, v1 or v2 (default)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="numpy apertures instead of photutils (faster, for tuning)",
    )
    parser.add_argument(
        "--fields",
        default=None,
        help="compare on these LEGUS fields only (comma-separated names)",
    )
    args = parser.parse_args(argv)
    version = resolve_version(args.simulator)
    fields = None if args.fields is None else args.fields.split(",")
    cat = _read_legus_for_calibration()
    legus = legus_summary(cat, fields=fields)
    sim = simulated_summary(
        args.n,
        args.seed,
        cat=cat,
        simulator=version,
        use_photutils=not args.quick,
        fields=fields,
    )
    table = format_table(sim, legus)
    bad = check(sim, legus, widths=version != "1.0")
    verdict = (
        "Every median and width is within tolerance."
        if not bad
        else "Outside tolerance: " + "; ".join(bad) + "."
    )
    text = (
        f".. Generated by `python -m astro_clustercls.simulation.calibration "
        f"--n {args.n} --seed {args.seed} --simulator {args.simulator}"
        f"{' --quick' if args.quick else ''}"
        f"{' --fields ' + args.fields if args.fields else ''}` "
        f"(simulator {version}).\n\n"
        f"{table}\n\n{verdict}\n"
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
