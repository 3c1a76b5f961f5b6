# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Individual luminous stars: IMF, lifetimes, luminosities and colours (private).

Simulator v2 draws the brightest stars of young clusters, associations and
the field one by one. The ingredients are deliberately simple and tabulated:

* the Kroupa (2001) IMF, slope ``alpha`` (2.3) above 0.5 Msun, 1.3 below,
  from 0.08 to 120 Msun, normalised to one solar mass of stars formed;
* main-sequence lifetimes by mass (approximate Geneva-model values, 2.8 Myr
  at 120 Msun, 10 Myr at 17 Msun, 100 Myr at 5 Msun); a star then spends a
  further 10 % of that time in its post-main-sequence (supergiant / giant)
  phase, and is gone afterwards;
* main-sequence absolute V magnitudes and colours by mass (O-B-A dwarfs);
* post-main-sequence bolometric magnitudes by mass, split into a blue
  (B/A supergiant, blue loop), yellow and red (red supergiant above ~9 Msun,
  red giant / AGB below) phase with mass-dependent probabilities (red
  supergiants dominate from ~10 to ~30 Myr, blue supergiants above 30 Msun),
  each with its bolometric correction and colours.

All values are approximate (+-0.2-0.3 mag), chosen to give the right
morphology and colour trends; they are no stellar-evolution model. Colours
are WFC3 Vega ``U-V`` (F336W-F555W), ``B-V`` (F438W-F555W), ``V-I``
(F555W-F814W) and ``NUV-U`` (F275W-F336W), as in the SSP table.
"""

import numpy as np

__all__ = []

M_LOW, M_BREAK, M_HIGH = 0.08, 0.5, 120.0

# mass, log10 main-sequence lifetime (yr)
_LIFETIME = np.array(
    [
        [0.9, 10.0],
        [1.5, 9.45],
        [2.0, 9.1],
        [3.0, 8.55],
        [5.0, 8.0],
        [7.0, 7.65],
        [9.0, 7.45],
        [12.0, 7.22],
        [15.0, 7.08],
        [20.0, 6.93],
        [25.0, 6.83],
        [40.0, 6.67],
        [60.0, 6.56],
        [120.0, 6.45],
    ]
)
#: Post-main-sequence lifetime as a fraction of the main-sequence one.
POST_MS_FRACTION = 0.1

# main sequence: mass, M_V, U-V, B-V, V-I, NUV-U
_MS = np.array(
    [
        [0.9, 5.0, 0.6, 0.65, 0.75, 1.6],
        [1.5, 2.3, 0.15, 0.25, 0.30, 0.50],
        [2.0, 1.1, 0.05, 0.02, 0.03, 0.15],
        [3.0, -0.3, -0.45, -0.08, -0.08, -0.15],
        [5.0, -1.4, -0.90, -0.16, -0.17, -0.32],
        [7.0, -2.1, -1.10, -0.20, -0.21, -0.40],
        [9.0, -2.6, -1.22, -0.22, -0.24, -0.45],
        [12.0, -3.2, -1.32, -0.25, -0.27, -0.50],
        [15.0, -3.7, -1.38, -0.27, -0.29, -0.52],
        [20.0, -4.2, -1.42, -0.28, -0.30, -0.55],
        [25.0, -4.5, -1.45, -0.29, -0.31, -0.56],
        [40.0, -5.1, -1.48, -0.30, -0.32, -0.58],
        [60.0, -5.4, -1.50, -0.30, -0.33, -0.60],
        [120.0, -6.0, -1.50, -0.30, -0.33, -0.60],
    ]
)
# post-main sequence: mass, M_bol, P(blue), P(yellow); P(red) = 1 - the rest
_PMS = np.array(
    [
        [0.9, 0.5, 0.05, 0.05],
        [2.0, -1.0, 0.10, 0.10],
        [3.0, -2.0, 0.12, 0.10],
        [5.0, -3.2, 0.15, 0.10],
        [7.0, -4.4, 0.18, 0.10],
        [9.0, -5.4, 0.20, 0.10],
        [12.0, -6.4, 0.22, 0.10],
        [15.0, -7.2, 0.25, 0.10],
        [20.0, -8.0, 0.40, 0.10],
        [25.0, -8.6, 0.60, 0.10],
        [35.0, -9.0, 0.80, 0.08],
        [60.0, -10.0, 0.92, 0.05],
        [120.0, -11.0, 0.95, 0.04],
    ]
)
# per phase, by mass: BC_V, U-V, B-V, V-I, NUV-U
_BLUE = np.array(
    [
        [0.9, -0.2, -0.1, 0.10, 0.15, 0.3],
        [5.0, -0.3, -0.30, 0.05, 0.10, 0.10],
        [10.0, -0.6, -0.70, -0.05, 0.05, -0.15],
        [20.0, -1.2, -1.00, -0.15, -0.05, -0.35],
        [40.0, -2.5, -1.35, -0.25, -0.20, -0.55],
        [120.0, -3.2, -1.45, -0.28, -0.28, -0.60],
    ]
)
_YELLOW = np.array(
    [
        [0.9, -0.1, 0.9, 0.7, 0.8, 1.3],
        [120.0, -0.1, 0.9, 0.7, 0.8, 1.3],
    ]
)
_RED = np.array(
    [
        [0.9, -0.6, 1.9, 1.20, 1.25, 1.7],
        [5.0, -0.8, 2.1, 1.35, 1.40, 1.8],
        [9.0, -1.5, 2.8, 1.70, 2.30, 2.0],
        [120.0, -1.6, 2.9, 1.75, 2.40, 2.0],
    ]
)
PHASE_MS, PHASE_BLUE, PHASE_YELLOW, PHASE_RED = 0, 1, 2, 3
#: rms of the absolute magnitude around the tables (lognormal, mean-preserving).
MAG_SCATTER = 0.15
#: half-width of the uniform colour scatter per phase (MS, blue, yellow, red);
#: applied along a temperature direction (U-V, B-V, V-I, NUV-U) x _COLOUR_DIR.
COLOUR_SCATTER = np.array([0.05, 0.10, 0.15, 0.20])
_COLOUR_DIR = np.array([1.5, 0.7, 1.0, 1.2])
_LOGM = np.log(_MS[:, 0])

# --- IMF normalisation: k2 m^-alpha above M_BREAK (continuous at M_BREAK).


def imf_norm(alpha=2.3):
    """``k2`` of the broken power law, for one solar mass of stars formed."""
    a1 = 1.3
    k1_over_k2 = M_BREAK ** (a1 - alpha)
    low = k1_over_k2 * (M_BREAK ** (2 - a1) - M_LOW ** (2 - a1)) / (2 - a1)
    high = (M_BREAK ** (2 - alpha) - M_HIGH ** (2 - alpha)) / (alpha - 2)
    return 1.0 / (low + high)


def imf_number(m1, m2, alpha=2.3):
    """Stars per solar mass formed with masses in [m1, m2] (m1 >= 0.5)."""
    m1 = np.asarray(m1, float)
    m2 = np.asarray(m2, float)
    n = imf_norm(alpha) * (m1 ** (1 - alpha) - m2 ** (1 - alpha)) / (alpha - 1)
    return np.where(m2 > m1, n, 0.0)


def imf_mass_for_number(n_per_msun, m_top, alpha=2.3):
    """Mass ``m`` with ``imf_number(m, m_top) = n_per_msun``."""
    k = imf_norm(alpha)
    x = np.asarray(n_per_msun, float) * (alpha - 1) / k + np.asarray(m_top, float) ** (
        1 - alpha
    )
    return x ** (1.0 / (1 - alpha))


def imf_sample(rng, m1, m2, alpha=2.3):
    """One mass per element of ``m1``/``m2`` from m^-alpha on [m1, m2]."""
    u = rng.random(np.shape(m1))
    e = 1 - alpha
    return (m1**e + u * (m2**e - m1**e)) ** (1.0 / e)


# --- lifetimes


def ms_lifetime(mass):
    """log10 main-sequence lifetime (yr) of ``mass``."""
    return np.interp(np.log(mass), np.log(_LIFETIME[:, 0]), _LIFETIME[:, 1])


def turnoff_mass(log_age):
    """Mass leaving the main sequence at ``log_age`` (>= 120: all on the MS)."""
    la = np.asarray(log_age, float)
    lm = np.interp(la, _LIFETIME[::-1, 1], np.log(_LIFETIME[::-1, 0]))
    return np.where(la <= _LIFETIME[-1, 1], M_HIGH, np.exp(lm))


def end_mass(log_age):
    """Most massive star still alive (main sequence or evolved) at ``log_age``."""
    la = np.asarray(log_age, float) - np.log10(1 + POST_MS_FRACTION)
    return np.minimum(turnoff_mass(la), M_HIGH)


# --- luminosities and colours


def _interp_rows(table, mass):
    lm = np.log(np.clip(mass, table[0, 0], table[-1, 0]))
    return [np.interp(lm, np.log(table[:, 0]), table[:, j]) for j in range(1, 6)]


def _phase_tables(phase, mass):
    """(M_V, U-V, B-V, V-I, NUV-U) of stars of ``phase`` and ``mass``."""
    mass = np.asarray(mass, float)
    phase = np.asarray(phase)
    out = np.zeros((5,) + mass.shape)
    ms = phase == PHASE_MS
    if ms.any():
        out[:, ms] = _interp_rows(_MS, mass[ms])
    lm = np.log(np.clip(mass, _PMS[0, 0], _PMS[-1, 0]))
    mbol = np.interp(lm, np.log(_PMS[:, 0]), _PMS[:, 1])
    for ph, table in ((PHASE_BLUE, _BLUE), (PHASE_YELLOW, _YELLOW), (PHASE_RED, _RED)):
        s = phase == ph
        if s.any():
            bc, uv, bv, vi, nuvu = _interp_rows(table, mass[s])
            out[:, s] = [mbol[s] - bc, uv, bv, vi, nuvu]
    return out


def phase_probabilities(mass):
    """P(blue), P(yellow), P(red) of post-main-sequence stars of ``mass``."""
    lm = np.log(np.clip(mass, _PMS[0, 0], _PMS[-1, 0]))
    pb = np.interp(lm, np.log(_PMS[:, 0]), _PMS[:, 2])
    py = np.interp(lm, np.log(_PMS[:, 0]), _PMS[:, 3])
    return pb, py, 1.0 - pb - py


def _band_colour_index(bands):
    """Per band: which colour combination gives m_band - m_V (see _colours_from)."""
    idx = []
    for b in bands:
        f = str(b).upper().split("/")[-1]
        idx.append(
            {
                "F275W": "nuv",
                "F336W": "u",
                "F435W": "b",
                "F438W": "b",
                "F555W": "v",
                "F606W": "r",
                "F814W": "i",
            }[f]
        )
    return idx


def colours_to_bands(uv, bv, vi, nuvu, bands):
    """m_band - m_V per band (no dust), shape ``uv.shape + (len(bands),)``."""
    cols = []
    for k in _band_colour_index(bands):
        cols.append(
            {
                "nuv": nuvu + uv,
                "u": uv,
                "b": bv,
                "v": np.zeros_like(uv),
                "r": -0.30 * vi,
                "i": -vi,
            }[k]
        )
    return np.stack(cols, axis=-1)


def _scatter_gain(phase, bands):
    """Mean of 10^(-0.4 delta_band) for the uniform colour scatter, per band."""
    k = _band_colour_index(bands)
    coef = {
        "nuv": _COLOUR_DIR[3] + _COLOUR_DIR[0],
        "u": _COLOUR_DIR[0],
        "b": _COLOUR_DIR[1],
        "v": 0.0,
        "r": -0.30 * _COLOUR_DIR[2],
        "i": -_COLOUR_DIR[2],
    }
    w = COLOUR_SCATTER[np.asarray(phase)]
    s = 0.4 * np.log(10) * w[..., None] * np.array([coef[x] for x in k])
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(np.abs(s) > 1e-9, np.sinh(s) / np.where(s == 0, 1, s), 1.0)
    return g


def star_luminosity(phase, mass, bands):
    """Mean luminosity per band (flux of M = 0 units, no dust) and M_V."""
    mv, uv, bv, vi, nuvu = _phase_tables(phase, mass)
    col = colours_to_bands(uv, bv, vi, nuvu, bands)
    lum = 10 ** (-0.4 * (mv[..., None] + col)) * _scatter_gain(phase, bands)
    return lum, mv


def draw_star_light(rng, phase, mass, bands):
    """
    Luminosities per band (M = 0 units, no dust) of individual stars, with
    mean-preserving scatter in magnitude and colour; and their M_V.
    """
    phase = np.asarray(phase)
    mv, uv, bv, vi, nuvu = _phase_tables(phase, mass)
    d = rng.uniform(-1, 1, phase.shape) * COLOUR_SCATTER[phase]
    uv = uv + d * _COLOUR_DIR[0]
    bv = bv + d * _COLOUR_DIR[1]
    vi = vi + d * _COLOUR_DIR[2]
    nuvu = nuvu + d * _COLOUR_DIR[3]
    s = 0.4 * np.log(10) * MAG_SCATTER
    gain = np.exp(s * rng.standard_normal(phase.shape) - 0.5 * s * s)
    col = colours_to_bands(uv, bv, vi, nuvu, bands)
    lum = 10 ** (-0.4 * (mv[..., None] + col)) * gain[..., None]
    return lum, mv - 2.5 * np.log10(gain)


# --- expected light of the stars of a population in a mass range

_GRID_LOGM = np.linspace(np.log(M_BREAK), np.log(M_HIGH), 3001)
_CUM_CACHE = {}


def _ms_cumulative(bands, alpha):
    """Cumulative integral over mass of IMF x MS luminosity, per band."""
    key = (tuple(bands), float(alpha))
    if key not in _CUM_CACHE:
        m = np.exp(_GRID_LOGM)
        lum, _ = star_luminosity(np.zeros(m.size, int), m, bands)
        f = imf_norm(alpha) * m ** (1 - alpha) * lum.T  # per d ln m
        d = np.diff(_GRID_LOGM)
        cum = np.concatenate(
            [np.zeros((len(bands), 1)), np.cumsum(0.5 * (f[:, 1:] + f[:, :-1]) * d, 1)],
            axis=1,
        )
        _CUM_CACHE[key] = cum
    return _CUM_CACHE[key]


def ms_light(m1, m2, bands, alpha=2.3):
    """Mean MS luminosity per solar mass formed of stars in [m1, m2], per band."""
    cum = _ms_cumulative(bands, alpha)
    l1 = np.log(np.clip(m1, M_BREAK, M_HIGH))
    l2 = np.log(np.clip(m2, M_BREAK, M_HIGH))
    out = np.stack(
        [np.interp(l2, _GRID_LOGM, c) - np.interp(l1, _GRID_LOGM, c) for c in cum], -1
    )
    return np.where((np.asarray(m2) > np.asarray(m1))[..., None], out, 0.0)


def evolved_light(m_to, bands):
    """Mean luminosity per evolved star (mixture of phases) at turn-off ``m_to``."""
    pb, py, pr = phase_probabilities(m_to)
    out = 0.0
    for ph, p in ((PHASE_BLUE, pb), (PHASE_YELLOW, py), (PHASE_RED, pr)):
        lum, _ = star_luminosity(np.full(np.shape(m_to), ph), m_to, bands)
        out = out + p[..., None] * lum
    return out


def draw_phases(rng, mass, evolved):
    """Phase of each star: MS unless ``evolved``; evolved ones by probability."""
    pb, py, _ = phase_probabilities(mass)
    u = rng.random(np.shape(mass))
    ph = np.where(u < pb, PHASE_BLUE, np.where(u < pb + py, PHASE_YELLOW, PHASE_RED))
    return np.where(evolved, ph, PHASE_MS)


def plan_resolved_stars(mass, log_age, m_floor, n_target, alpha=2.3):
    """
    Which stars of a population to draw one by one.

    Parameters
    ----------
    mass : ndarray
        Stellar mass formed (Msun).
    log_age : ndarray
    m_floor : ndarray
        Lowest mass worth drawing (fainter stars stay in the smooth light).
    n_target : ndarray
        Mean number of stars to draw at most.

    Returns
    -------
    m_lim, m_to, m_end : ndarray
        Main-sequence stars in [m_lim, m_to) and evolved stars in
        [m_to, m_end) are drawn ...
    p_evolved : ndarray
        ... the evolved ones each with this probability (thinning, when a
        massive population has more evolved stars than ``n_target``).
    n_ms, n_ev : ndarray
        Mean numbers of drawn MS and evolved stars.
    """
    mass = np.asarray(mass, float)
    m_to = np.minimum(turnoff_mass(log_age), M_HIGH)
    m_end = np.maximum(end_mass(log_age), m_to)
    n_ev_all = mass * imf_number(m_to, m_end, alpha)
    p_ev = np.where(n_ev_all > n_target, n_target / np.maximum(n_ev_all, 1e-30), 1.0)
    m_n = imf_mass_for_number(np.asarray(n_target, float) / mass, m_end, alpha)
    m_lim = np.clip(np.maximum(m_floor, m_n), M_BREAK, None)
    m_lim = np.where(p_ev < 1, m_to, np.minimum(m_lim, m_to))
    n_ms = mass * imf_number(m_lim, m_to, alpha)
    n_ev = p_ev * n_ev_all
    return m_lim, m_to, m_end, p_ev, n_ms, n_ev


def expected_resolved_light(mass, m_lim, m_to, m_end, p_ev, bands, alpha=2.3):
    """Mean luminosity per band (M = 0 units, no dust) of the drawn stars."""
    mass = np.asarray(mass, float)
    ms = mass[:, None] * ms_light(m_lim, m_to, bands, alpha)
    n_ev = mass * p_ev * imf_number(m_to, m_end, alpha)
    ev = n_ev[:, None] * evolved_light(m_to, bands)
    return ms + ev


def draw_resolved_stars(rng, lam_ms, lam_ev, m_lim, m_to, bands, alpha=2.3, n_min=0):
    """
    Draw the stars planned by `plan_resolved_stars`.

    ``lam_ms`` and ``lam_ev`` are the mean numbers of main-sequence stars (in
    [m_lim, m_to)) and evolved stars per population. The number drawn is
    Poisson, or ``n_min`` plus a Poisson number where the mean allows it (the
    mean is kept either way); each star is main-sequence or evolved in
    proportion to the means. Returns ``owner`` (index of the population of
    each star), ``mass``, ``phase``, ``lum`` (N, B) in M = 0 units without
    dust, ``mv``. Evolved stars take the luminosity of the turn-off mass (they
    all have nearly the same mass), so that the mean equals
    `expected_resolved_light`.
    """
    lam = np.asarray(lam_ms, float) + np.asarray(lam_ev, float)
    base = np.where(lam >= n_min, n_min, 0)
    n = base + rng.poisson(lam - base)
    owner = np.repeat(np.arange(lam.size), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_ev = np.where(lam > 0, lam_ev / np.where(lam > 0, lam, 1), 0.0)
    evolved = rng.random(owner.size) < p_ev[owner]
    m = np.where(
        evolved,
        m_to[owner],
        imf_sample(rng, m_lim[owner], np.maximum(m_to[owner], m_lim[owner]), alpha),
    )
    phase = draw_phases(rng, m, evolved)
    lum, mv = draw_star_light(rng, phase, m, bands)
    return owner, m, phase, lum, mv


def ms_mass_for_mv(mv):
    """Main-sequence mass of absolute V magnitude ``mv`` (clipped to the table)."""
    return np.exp(np.interp(-np.asarray(mv, float), -_MS[:, 1], _LOGM))


def draw_field_stars(rng, n_formed_mass, m_floor, max_age, bands, alpha=2.3):
    """
    Young field stars of a region that formed ``n_formed_mass`` Msun at a
    constant rate over ``max_age`` years: those alive now and above
    ``m_floor``. Returns ``owner``, ``mass``, ``phase``, ``lum`` (N, B), ``mv``.
    """
    n_formed_mass = np.asarray(n_formed_mass, float)
    m_floor = np.broadcast_to(np.asarray(m_floor, float), n_formed_mass.shape)
    n = rng.poisson(n_formed_mass * imf_number(m_floor, M_HIGH, alpha))
    owner = np.repeat(np.arange(n.size), n)
    m = imf_sample(rng, m_floor[owner], np.full(owner.size, M_HIGH), alpha)
    age = np.log10(np.maximum(rng.random(owner.size) * max_age, 1.0))
    t_ms = ms_lifetime(m)
    alive = age < t_ms + np.log10(1 + POST_MS_FRACTION)
    evolved = age >= t_ms
    owner, m, evolved = owner[alive], m[alive], evolved[alive]
    phase = draw_phases(rng, m, evolved)
    lum, mv = draw_star_light(rng, phase, m, bands)
    return owner, m, phase, lum, mv
