# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The simulated objects: physical parameters and light components per class.

Class 1
    A compact, round cluster: one EFF (Elson, Fall & Freeman 1987) profile
    ``I(r) ~ (1 + r^2/a^2)^(-gamma/2)``, axis ratio 0.8-1.
Class 2
    A compact cluster that is elongated (axis ratio 0.35-0.75), has an
    off-centre secondary component or irregular light (a lumpy halo of a few
    faint stars).
Class 3
    A compact association: 3-7 peaks (young stars and small clusters) spread
    over a few pc, on a diffuse underlying component.
Class 4
    Not a cluster: a single bright star, a close pair or triple of stars, a
    background galaxy (exponential disk + bulge, red), a cosmic ray or hot
    pixel in one band, a noise peak on diffuse light ("fluff"), or any object
    at a chip edge (the stamp is cut by a NaN region).

Luminosities follow dN/dL ~ L^-2; colours come from a simple-stellar-population
(SSP) colour table by age plus dust (E(B-V), Milky-Way law); masses from the
SSP mass-to-light ratio. Sizes are EFF effective radii in pc, converted to
pixels at the object's distance.

The SSP table is a hand-digitised approximation of solar-metallicity SSP models
(Bruzual & Charlot 2003 / Yggdrasil trends) in the WFC3 Vega system, good to
~0.1-0.2 mag; it reproduces the blue-to-red sequence with age and the red
supergiant V-I bump near 10 Myr, not precise model colours.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from .._constants import PIXEL_SCALE
from . import _fourier
from ._render import KIND_EXPDISK, KIND_GAUSS, KIND_MOFFAT, KIND_POINT, Components
from .photometry import EXTINCTION_COEFFICIENTS, canonical_band, mag_to_flux

__all__ = [
    "PopulationParameters",
    "DEFAULT_PARAMETERS",
    "ssp_colours",
    "ssp_abs_mag_v",
    "pc_per_pixel",
    "draw_population",
    "CLASS4_SUBTYPES",
    "LEGUS_DISTANCES",
]

# log10(age/yr), U-V, B-V, V-I, NUV-U (F275W-F336W), M_V of a 1e4 Msun SSP
_SSP = np.array(
    [
        [6.0, -1.45, -0.22, -0.20, -0.55, -9.6],
        [6.5, -1.40, -0.20, -0.12, -0.55, -9.6],
        [6.7, -1.30, -0.15, 0.00, -0.50, -9.3],
        [6.9, -1.15, -0.05, 0.45, -0.45, -9.8],
        [7.0, -1.05, 0.00, 0.60, -0.40, -10.0],
        [7.2, -0.90, 0.02, 0.55, -0.35, -9.4],
        [7.5, -0.65, 0.05, 0.45, -0.25, -8.8],
        [7.8, -0.40, 0.10, 0.40, -0.10, -8.3],
        [8.0, -0.25, 0.15, 0.40, 0.05, -8.0],
        [8.5, 0.10, 0.30, 0.55, 0.45, -7.3],
        [9.0, 0.40, 0.55, 0.80, 1.00, -6.6],
        [9.5, 0.60, 0.75, 0.95, 1.40, -5.9],
        [10.0, 0.85, 0.90, 1.15, 1.85, -5.3],
        [10.2, 0.95, 0.95, 1.20, 2.00, -5.0],
    ]
)

#: Distances (Mpc) of the LEGUS fields (Calzetti et al. 2015, table 1; rounded).
LEGUS_DISTANCES = {
    "ic4247": 5.11,
    "ngc3274": 6.55,
    "ngc3351": 10.0,
    "ngc3738": 4.9,
    "ngc4248": 7.8,
    "ngc4395-s": 4.3,
    "ngc4395-n": 4.3,
    "ngc4449": 4.31,
    "ngc4485": 7.6,
    "ngc5238": 4.51,
    "ngc5474": 6.8,
    "ngc5477": 6.4,
    "ngc628-e": 9.9,
    "ngc7793-w": 3.44,
    "ugc1249": 6.9,
    "ugc4305": 3.05,
    "ugc4459": 3.66,
    "ugc5139": 3.98,
    "ugc5340": 12.7,
    "ugc685": 4.37,
    "ugc695": 10.9,
    "ugc7408": 6.7,
    "ugca281": 5.9,
    "eso486-g021": 9.5,
    "ic559": 5.3,
    "ngc1313-e": 4.39,
    "ngc1313-w": 4.39,
    "ngc1566": 18.0,
    "ngc1705": 5.1,
    "ngc4242": 5.8,
    "ngc45": 6.61,
    "ngc6503": 5.27,
    "ugc7242": 5.42,
}

#: Subtypes of class 4 and their default fractions.
CLASS4_SUBTYPES = {
    "star": 0.24,
    "pair": 0.24,
    "triple": 0.08,
    "galaxy": 0.08,
    "cosmic_ray": 0.06,
    "hot_pixel": 0.04,
    "noise_peak": 0.12,
    "edge": 0.14,
}


def pc_per_pixel(distance, pixel_scale=PIXEL_SCALE):
    """
    Parsecs per pixel at ``distance`` (Mpc).

    Examples
    --------
    >>> from astro_clustercls.simulation import pc_per_pixel
    >>> round(float(pc_per_pixel(10.0, 0.04)), 3)
    1.939
    """
    return np.asarray(distance, float) * 1e6 * np.deg2rad(pixel_scale / 3600.0)


def ssp_colours(log_age, bands, *, ebv=0.0):
    """
    SSP colours ``m_band - m_F555W`` (Vega) at ``log_age`` with dust ``ebv``.

    Parameters
    ----------
    log_age : float or ndarray
        log10(age / yr), 6-10.2.
    bands : sequence of str
        Filter names.
    ebv : float or ndarray, optional
        Colour excess E(B-V) (Milky-Way law, R_V = 3.1).

    Returns
    -------
    ndarray, shape ``log_age.shape + (len(bands),)``

    Examples
    --------
    >>> from astro_clustercls.simulation import ssp_colours
    >>> young, old = ssp_colours([6.5, 9.5], ['F336W', 'F555W', 'F814W'])
    >>> bool(young[0] < old[0]), bool(young[2] > old[2])  # U-V bluer, V-I bluer
    (True, True)
    """
    la = np.clip(np.asarray(log_age, float), _SSP[0, 0], _SSP[-1, 0])
    uv = np.interp(la, _SSP[:, 0], _SSP[:, 1])
    bv = np.interp(la, _SSP[:, 0], _SSP[:, 2])
    vi = np.interp(la, _SSP[:, 0], _SSP[:, 3])
    nuvu = np.interp(la, _SSP[:, 0], _SSP[:, 4])
    return _colours_from(uv, bv, vi, nuvu, bands, ebv)


def _colours_from(uv, bv, vi, nuvu, bands, ebv):
    ebv = np.asarray(ebv, float)
    av = EXTINCTION_COEFFICIENTS["F555W"]
    cols = []
    for band in bands:
        filt = canonical_band(band).split("/")[1]
        if filt == "F275W":
            c = nuvu + uv
        elif filt == "F336W":
            c = uv
        elif filt in ("F435W", "F438W"):
            c = bv
        elif filt == "F555W":
            c = np.zeros_like(uv)
        elif filt == "F606W":
            c = -0.30 * vi
        elif filt == "F814W":
            c = -vi
        else:  # pragma: no cover - canonical_band rejects others
            raise ValueError(band)
        cols.append(c + (EXTINCTION_COEFFICIENTS[filt] - av) * ebv)
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def ssp_abs_mag_v(log_age, mass):
    """Absolute V magnitude of an SSP of ``mass`` (Msun) at ``log_age``."""
    la = np.clip(np.asarray(log_age, float), _SSP[0, 0], _SSP[-1, 0])
    return np.interp(la, _SSP[:, 0], _SSP[:, 5]) - 2.5 * np.log10(
        np.asarray(mass) / 1e4
    )


@dataclass
class PopulationParameters:
    """
    Per-class parameter distributions of the simulated objects.

    These are the knobs tuned in `astro_clustercls.simulation.calibration`
    against the LEGUS catalogs. Ages are log10(yr) normal distributions
    (mean, sigma, clipped to 6.0-10.1); E(B-V) is half-normal with the given
    scale; effective radii are log-normal (median pc, sigma in dex, clipped
    to 0.5-10 pc); ``mv_range`` bounds the L^-2 luminosity function in
    absolute V magnitudes.
    """

    class_fractions: tuple = (0.15, 0.18, 0.19, 0.48)
    mv_range: tuple = (-5.0, -12.5)
    lf_slope: float = 2.0
    age: dict = field(
        default_factory=lambda: {
            1: (8.2, 0.8),
            2: (7.3, 0.7),
            3: (6.75, 0.3),
            4: (6.9, 0.5),
        }
    )
    ebv: dict = field(default_factory=lambda: {1: 0.2, 2: 0.2, 3: 0.12, 4: 0.12})
    reff_pc: dict = field(
        default_factory=lambda: {1: (1.4, 0.25), 2: (1.5, 0.25), 3: (1.5, 0.2)}
    )
    eff_gamma: tuple = (2.6, 3.6)
    assoc_size_pc: tuple = (4.0, 12.0)
    assoc_peaks: tuple = (3, 6)
    assoc_main_peak: tuple = (0.4, 0.65)
    class4_subtypes: dict = field(default_factory=lambda: dict(CLASS4_SUBTYPES))
    star_mv_range: tuple = (-5.5, -9.5)
    red_star_fraction: float = 0.12
    galaxy_mag_range: tuple = (21.0, 24.0)

    def copy(self, **changes):
        """A copy with some parameters changed."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kw.items()}
        kw.update(changes)
        return PopulationParameters(**kw)


DEFAULT_PARAMETERS = PopulationParameters()


def _lf_draw(rng, n, bright, faint, slope):
    """Absolute magnitudes from dN/dL ~ L^-slope between ``faint`` and ``bright``."""
    lmin, lmax = 1.0, 10 ** (-0.4 * (bright - faint))
    u = rng.random(n)
    if abs(slope - 1.0) < 1e-9:
        lum = lmin * (lmax / lmin) ** u
    else:
        e = 1.0 - slope
        lum = (lmin**e + u * (lmax**e - lmin**e)) ** (1.0 / e)
    return faint - 2.5 * np.log10(lum)


def _star_colours(rng, n, bands, red_fraction, ebv):
    """Colours of luminous single stars: blue supergiants or red supergiants."""
    red = rng.random(n) < red_fraction
    uv = np.where(red, rng.uniform(1.0, 2.2, n), rng.uniform(-1.5, -0.8, n))
    bv = np.where(red, rng.uniform(1.2, 1.8, n), rng.uniform(-0.25, 0.1, n))
    vi = np.where(red, rng.uniform(1.4, 2.3, n), rng.uniform(-0.1, 0.5, n))
    nuvu = np.where(red, rng.uniform(1.5, 3.0, n), rng.uniform(-0.6, -0.2, n))
    return _colours_from(uv, bv, vi, nuvu, bands, ebv), red


class _Builder:
    """Accumulates light components for many objects."""

    def __init__(self, n_bands):
        self.n_bands = n_bands
        self.cols = {
            k: []
            for k in (
                "obj",
                "kind",
                "dx",
                "dy",
                "size",
                "q",
                "theta",
                "beta_idx",
                "flux",
                "ref",
            )
        }
        self.arts = {
            k: [] for k in ("art_obj", "art_band", "art_dx", "art_dy", "art_flux")
        }

    def add(
        self,
        obj,
        kind,
        dx,
        dy,
        flux,
        *,
        size=1.0,
        q=1.0,
        theta=0.0,
        beta_idx=0,
        ref=True,
    ):
        obj = np.atleast_1d(np.asarray(obj, np.intp))
        n = obj.size
        b = lambda v, dt=float: np.broadcast_to(np.asarray(v, dt), (n,)).copy()  # noqa: E731
        self.cols["obj"].append(obj)
        self.cols["kind"].append(b(kind, np.intp))
        self.cols["dx"].append(b(dx))
        self.cols["dy"].append(b(dy))
        self.cols["size"].append(np.maximum(b(size), 1e-3))
        self.cols["q"].append(b(q))
        self.cols["theta"].append(b(theta))
        self.cols["beta_idx"].append(b(beta_idx, np.intp))
        self.cols["flux"].append(np.broadcast_to(flux, (n, self.n_bands)).astype(float))
        self.cols["ref"].append(b(ref, bool))

    def add_artifact(self, obj, band, dx, dy, flux):
        obj = np.atleast_1d(np.asarray(obj, np.intp))
        n = obj.size
        self.arts["art_obj"].append(obj)
        self.arts["art_band"].append(np.broadcast_to(band, (n,)).astype(np.intp))
        self.arts["art_dx"].append(np.broadcast_to(dx, (n,)).astype(np.intp))
        self.arts["art_dy"].append(np.broadcast_to(dy, (n,)).astype(np.intp))
        self.arts["art_flux"].append(np.broadcast_to(flux, (n,)).astype(float))

    def build(self):
        cat = {}
        ref = self.cols.pop("ref")
        ref = np.concatenate(ref) if ref else np.zeros(0, bool)
        for k, v in self.cols.items():
            if v:
                cat[k] = np.concatenate(v)
            else:
                cat[k] = np.zeros(
                    (0, self.n_bands) if k == "flux" else 0,
                    float
                    if k in ("dx", "dy", "size", "q", "theta", "flux")
                    else np.intp,
                )
        for k, v in self.arts.items():
            cat[k] = (
                np.concatenate(v)
                if v
                else np.zeros(0, float if k == "art_flux" else np.intp)
            )
        order = np.argsort(cat["obj"], kind="stable")
        comp = Components(**cat)
        comp = Components.concatenate([comp])
        return comp, ref[order]


def _resolve_distance(distance, n, rng):
    """Per-object distances (Mpc) and field names from the ``distance`` argument."""
    if isinstance(distance, str):
        if distance.lower() != "legus":
            raise ValueError(
                f"'distance' must be a number, a (min, max) pair, an "
                f"array or 'legus', got {distance!r}"
            )
        names = np.array(sorted(LEGUS_DISTANCES))
        pick = rng.integers(0, names.size, n)
        return np.array([LEGUS_DISTANCES[k] for k in names])[pick], names[pick]
    arr = np.asarray(distance, float)
    if arr.ndim == 0:
        d = np.full(n, float(arr))
    elif arr.shape == (2,) and n != 2:
        lo, hi = sorted(arr)
        d = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    elif arr.shape == (n,):
        d = arr.copy()
    else:
        raise ValueError(
            f"'distance' must be a number, a (min, max) pair or one value "
            f"per object, got shape {arr.shape}"
        )
    if not np.all(d > 0):
        raise ValueError("'distance' must be > 0 Mpc")
    return d, np.full(n, "", dtype="<U1")


def draw_population(n, *, rng, bands, distance=10.0, classes=None, params=None):
    """
    Draw ``n`` objects: their parameters and their light components.

    Parameters
    ----------
    n : int
        Number of objects.
    rng : `numpy.random.Generator`
        Random generator.
    bands : sequence of str
        Band names (fluxes are in electron/s through each band's zeropoint).
    distance : float, (min, max), ndarray or 'legus', optional
        Distance in Mpc: one value, a log-uniform range, one value per object,
        or ``'legus'`` (the distances of the LEGUS fields).
    classes : int, sequence of int or ndarray, optional
        The class of each object (an ndarray of length ``n``), or the classes
        allowed (an int or a list; drawn with ``params.class_fractions``
        renormalised). Default: all four.
    params : PopulationParameters, optional
        Distributions (default `DEFAULT_PARAMETERS`).

    Returns
    -------
    table : dict of ndarray
        Per-object parameters: ``cluster_class``, ``subtype``, ``distance``,
        ``log_age``, ``age``, ``mass``, ``ebv``, ``abs_mag_v``, ``reff_pc``,
        ``reff_pix``, ``eff_gamma``, ``axis_ratio``, ``n_peaks``, ``edge``,
        ``field``, ``mag_<band>`` (total Vega) and ``flux_<band>`` (electron/s).
    components : Components
        Light components with offsets relative to the object's reference point:
        the F555W light centroid of its main body (for class 2, without the
        off-centre secondary light; for class 3, the brightest peak, where a
        detection algorithm puts the candidate).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.simulation import draw_population
    >>> tab, comp = draw_population(100, rng=np.random.default_rng(1),
    ...                             bands=['F555W', 'F814W'], classes=[1, 3])
    >>> sorted(set(tab['cluster_class'].tolist()))
    [1, 3]
    """
    p = params or DEFAULT_PARAMETERS
    bands = list(bands)
    nb = len(bands)
    n = int(n)
    # --- classes
    if classes is None:
        classes = [1, 2, 3, 4]
    if isinstance(classes, np.ndarray) and classes.shape == (n,) and n > 0:
        cls = classes.astype(int)
    else:
        allowed = np.unique(np.atleast_1d(np.asarray(classes)).astype(int))
        if not set(allowed.tolist()) <= {1, 2, 3, 4} or allowed.size == 0:
            raise ValueError(f"'classes' must be among 1, 2, 3, 4, got {classes!r}")
        frac = np.array([p.class_fractions[c - 1] for c in allowed], float)
        cls = allowed[rng.choice(allowed.size, n, p=frac / frac.sum())]
    if not set(np.unique(cls).tolist()) <= {1, 2, 3, 4}:
        raise ValueError("'classes' must be among 1, 2, 3, 4")
    dist, field_names = _resolve_distance(distance, n, rng)
    pcpix = pc_per_pixel(dist)
    vband = "F555W" if "F555W" in [b.upper() for b in bands] else bands[nb // 2]
    vcol = [b.upper() for b in bands].index(vband.upper())
    zp_flux = np.array([float(mag_to_flux(0.0, b)) for b in bands])
    dm = 5 * np.log10(dist * 1e5)

    subtype = np.empty(n, dtype="<U12")
    log_age = np.full(n, np.nan)
    ebv = np.zeros(n)
    mv = np.full(n, np.nan)
    reff_pc = np.full(n, np.nan)
    gamma = np.full(n, np.nan)
    qax = np.ones(n)
    npk = np.ones(n, int)
    edge = np.zeros(n, bool)
    colours = np.zeros((n, nb))
    B = _Builder(nb)

    def lf(k):
        return _lf_draw(rng, k, p.mv_range[1], p.mv_range[0], p.lf_slope)

    def flux_of(mabs, col, idx):
        """(k, nb) electron/s for absolute V mags and colours."""
        m = (mabs + dm[idx])[:, None] + col
        return zp_flux[None, :] * 10 ** (-0.4 * m)

    def eff(idx, reff_pix, g, q, theta, f, dx=0.0, dy=0.0, ref=True):
        bi = _fourier.nu_index(g / 2.0)
        beta = _fourier.beta_of_index(bi)
        # reff is circularised: major-axis half-light radius = reff / sqrt(q)
        a = reff_pix / np.sqrt(q) / np.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)
        B.add(
            idx, KIND_MOFFAT, dx, dy, f, size=a, q=q, theta=theta, beta_idx=bi, ref=ref
        )

    # --- clusters, classes 1-3
    for c in (1, 2, 3):
        idx = np.flatnonzero(cls == c)
        k = idx.size
        if k == 0:
            continue
        mu, sig = p.age[c]
        la = np.clip(rng.normal(mu, sig, k), 6.0, 10.1)
        e = np.abs(rng.normal(0, p.ebv[c], k))
        log_age[idx], ebv[idx] = la, e
        col = ssp_colours(la, bands, ebv=e)
        colours[idx] = col
        mv[idx] = lf(k)
        med, sdex = p.reff_pc[c]
        r = np.clip(10 ** rng.normal(np.log10(med), sdex, k), 0.5, 10.0)
        reff_pc[idx] = r
        g = rng.uniform(*p.eff_gamma, k)
        gamma[idx] = g
        rpix = r / pcpix[idx]
        ftot = flux_of(mv[idx], col, idx)
        theta = rng.uniform(0, np.pi, k)
        if c == 1:
            q = rng.uniform(0.8, 1.0, k)
            qax[idx] = q
            subtype[idx] = "cluster"
            eff(idx, rpix, g, q, theta, ftot)
        elif c == 2:
            kind = rng.choice(3, k, p=[0.35, 0.40, 0.25])
            subtype[idx] = np.array(["elongated", "offcentre", "irregular"])[kind]
            q = np.where(
                kind == 0, rng.uniform(0.35, 0.7, k), rng.uniform(0.55, 0.95, k)
            )
            qax[idx] = q
            # secondary light: fraction and offset
            fsec = np.where(kind == 0, 0.0, rng.uniform(0.15, 0.4, k))
            eff(idx, rpix, g, q, theta, ftot * (1 - fsec)[:, None])
            sec = np.flatnonzero(kind == 1)
            if sec.size:
                rr = rng.uniform(1.2, 2.5, sec.size) * np.maximum(rpix[sec], 0.8)
                ang = rng.uniform(0, 2 * np.pi, sec.size)
                eff(
                    idx[sec],
                    0.5 * rpix[sec],
                    g[sec],
                    1.0,
                    0.0,
                    ftot[sec] * fsec[sec, None],
                    rr * np.cos(ang),
                    rr * np.sin(ang),
                    ref=False,
                )
            irr = np.flatnonzero(kind == 2)
            if irr.size:  # 3 faint stars scattered in a lopsided halo
                base = rng.uniform(0, 2 * np.pi, irr.size)
                for _ in range(3):
                    ang = base + rng.normal(0, 0.7, irr.size)
                    rr = rng.uniform(1.0, 3.0, irr.size) * np.maximum(rpix[irr], 0.8)
                    B.add(
                        idx[irr],
                        KIND_POINT,
                        rr * np.cos(ang),
                        rr * np.sin(ang),
                        ftot[irr] * (fsec[irr] / 3)[:, None],
                        ref=False,
                    )
        else:
            subtype[idx] = "association"
            npeaks = rng.integers(p.assoc_peaks[0], p.assoc_peaks[1] + 1, k)
            npk[idx] = npeaks
            size_pix = rng.uniform(*p.assoc_size_pc, k) / pcpix[idx]
            size_pix = np.clip(size_pix, 2.5, 6.0)
            fdiff = rng.uniform(0.08, 0.2, k)
            eff(
                idx,
                np.maximum(rpix, 0.5 * size_pix),
                g,
                rng.uniform(0.5, 1.0, k),
                theta,
                ftot * fdiff[:, None],
                ref=False,
            )
            # the brightest peak near the middle, the others spread around it
            kmax = p.assoc_peaks[1]
            w = rng.dirichlet(np.full(kmax, 0.8), k)
            w[:, 0] = rng.uniform(*p.assoc_main_peak, k)
            others = np.where(
                np.arange(1, kmax)[None, :] < npeaks[:, None], w[:, 1:], 0.0
            )
            w[:, 1:] = others / others.sum(1, keepdims=True) * (1 - w[:, :1])
            for j in range(kmax):
                ii = np.flatnonzero(npeaks > j)
                if ii.size == 0:
                    continue
                if j == 0:
                    rr = rng.uniform(0.0, 0.7, ii.size)
                else:
                    rr = rng.uniform(2.2, size_pix[ii])
                ang = rng.uniform(0, 2 * np.pi, ii.size)
                # each peak: a star or small cluster with its own age scatter
                dcol = ssp_colours(
                    np.clip(log_age[idx[ii]] + rng.normal(0, 0.15, ii.size), 6.0, 10.1),
                    bands,
                    ebv=ebv[idx[ii]],
                )
                f = (
                    ftot[ii]
                    * ((1 - fdiff[ii]) * w[ii, j])[:, None]
                    * 10 ** (-0.4 * (dcol - colours[idx[ii]]))
                )
                eff(
                    idx[ii],
                    np.full(ii.size, 0.35),
                    np.full(ii.size, 3.0),
                    1.0,
                    0.0,
                    f,
                    rr * np.cos(ang),
                    rr * np.sin(ang),
                    ref=(j == 0),
                )

    # --- class 4 impostors
    idx4 = np.flatnonzero(cls == 4)
    if idx4.size:
        names = list(p.class4_subtypes)
        fr = np.array([p.class4_subtypes[s] for s in names], float)
        st = np.array(names)[rng.choice(len(names), idx4.size, p=fr / fr.sum())]
        subtype[idx4] = st
        for s in names:
            idx = idx4[st == s]
            k = idx.size
            if k == 0:
                continue
            e = np.abs(rng.normal(0, p.ebv[4], k))
            ebv[idx] = e
            if s in ("star", "pair", "triple"):
                nstar = {"star": 1, "pair": 2, "triple": 3}[s]
                npk[idx] = nstar
                base = np.zeros((k, 2))
                for j in range(nstar):
                    col, _ = _star_colours(rng, k, bands, p.red_star_fraction, e)
                    m = _lf_draw(rng, k, p.star_mv_range[1], p.star_mv_range[0], 2.0)
                    f = flux_of(m, col, idx)
                    if j == 0:
                        colours[idx], mv[idx] = col, m
                        pos = base
                    else:
                        rr = rng.uniform(1.0, 3.0, k)
                        ang = rng.uniform(0, 2 * np.pi, k)
                        pos = np.stack([rr * np.cos(ang), rr * np.sin(ang)], 1)
                        mv[idx] = -2.5 * np.log10(
                            10 ** (-0.4 * mv[idx]) + 10 ** (-0.4 * m)
                        )
                    B.add(idx, KIND_POINT, pos[:, 0], pos[:, 1], f)
            elif s == "galaxy":
                # apparent magnitude; red, old-looking SED, slight redshift reddening
                la = rng.uniform(9.3, 10.1, k)
                log_age[idx] = la
                col = ssp_colours(la, bands, ebv=e + rng.uniform(0.0, 0.3, k))
                colours[idx] = col
                mapp = rng.uniform(*p.galaxy_mag_range, k)
                mv[idx] = mapp - dm[idx]
                ftot = zp_flux[None, :] * 10 ** (-0.4 * (mapp[:, None] + col))
                h = rng.uniform(1.0, 4.0, k)
                q = rng.uniform(0.25, 1.0, k)
                qax[idx] = q
                th = rng.uniform(0, np.pi, k)
                fb = rng.uniform(0.1, 0.5, k)
                B.add(
                    idx,
                    KIND_EXPDISK,
                    0.0,
                    0.0,
                    ftot * (1 - fb)[:, None],
                    size=h,
                    q=q,
                    theta=th,
                )
                bi = _fourier.nu_index(2.0)
                B.add(
                    idx,
                    KIND_MOFFAT,
                    0.0,
                    0.0,
                    ftot * fb[:, None],
                    size=0.5 * h,
                    q=np.clip(q + 0.3, 0, 1),
                    theta=th,
                    beta_idx=bi,
                )
            elif s in ("cosmic_ray", "hot_pixel"):
                band = rng.integers(0, nb, k)
                amp = 10 ** rng.uniform(0.0, 1.5, k)  # e/s in the brightest pixel
                mv[idx] = np.nan
                B.add_artifact(idx, band, 0, 0, amp)
                if s == "cosmic_ray":  # a short streak of 2-4 pixels
                    ang = rng.uniform(0, 2 * np.pi, k)
                    for j in (1, 2, 3):
                        on = rng.random(k) < (1.0 if j == 1 else 0.5)
                        dx = np.rint(j * np.cos(ang)).astype(int)
                        dy = np.rint(j * np.sin(ang)).astype(int)
                        B.add_artifact(
                            idx[on],
                            band[on],
                            dx[on],
                            dy[on],
                            amp[on] * rng.uniform(0.3, 0.9, on.sum()),
                        )
            elif s == "noise_peak":
                # a faint diffuse lump ("fluff") of young light on which noise peaks
                la = rng.uniform(6.5, 8.0, k)
                log_age[idx] = la
                col = ssp_colours(la, bands, ebv=e)
                colours[idx] = col
                m = _lf_draw(rng, k, -7.5, -5.0, 2.0)
                mv[idx] = m
                f = flux_of(m, col, idx)
                B.add(
                    idx,
                    KIND_GAUSS,
                    0.0,
                    0.0,
                    f,
                    size=rng.uniform(1.0, 2.5, k),
                    q=rng.uniform(0.4, 1.0, k),
                    theta=rng.uniform(0, np.pi, k),
                )
                B.add(
                    idx,
                    KIND_POINT,
                    rng.normal(0, 0.7, k),
                    rng.normal(0, 0.7, k),
                    0.15 * f,
                )
            elif s == "edge":
                # a cluster or a star that sits at a chip edge (NaN region added
                # when the stamp is made); half clusters, half stars
                edge[idx] = True
                la = np.clip(rng.normal(7.3, 0.6, k), 6.0, 10.1)
                log_age[idx] = la
                col = ssp_colours(la, bands, ebv=e)
                colours[idx] = col
                m = lf(k)
                mv[idx] = m
                f = flux_of(m, col, idx)
                isc = rng.random(k) < 0.6
                r = np.clip(10 ** rng.normal(np.log10(2.0), 0.25, k), 0.5, 10)
                reff_pc[idx] = np.where(isc, r, np.nan)
                g = rng.uniform(*p.eff_gamma, k)
                ii = np.flatnonzero(isc)
                eff(idx[ii], r[ii] / pcpix[idx[ii]], g[ii], 1.0, 0.0, f[ii])
                jj = np.flatnonzero(~isc)
                B.add(idx[jj], KIND_POINT, 0.0, 0.0, f[jj])

    comp, ref = B.build()
    # --- re-centre every object on the V light centroid of its main body (all
    # components except class-2 secondaries and class-3 satellites / halo)
    fv = comp.flux[:, vcol] * ref
    tot = np.bincount(comp.obj, fv, minlength=n)
    sx = np.bincount(comp.obj, fv * comp.dx, minlength=n)
    sy = np.bincount(comp.obj, fv * comp.dy, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(tot > 0, sx / np.where(tot > 0, tot, 1), 0.0)
        cy = np.where(tot > 0, sy / np.where(tot > 0, tot, 1), 0.0)
    comp.dx -= cx[comp.obj]
    comp.dy -= cy[comp.obj]
    flux_tot = np.zeros((n, nb))
    np.add.at(flux_tot, comp.obj, comp.flux)
    if comp.art_obj.size:
        np.add.at(flux_tot, (comp.art_obj, comp.art_band), comp.art_flux)
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(
            flux_tot > 0,
            -2.5 * np.log10(np.where(flux_tot > 0, flux_tot, 1) / zp_flux[None, :]),
            np.nan,
        )
    age_ok = np.isfinite(log_age)
    mass = np.full(n, np.nan)
    is_pop = (
        age_ok & np.isin(cls, [1, 2, 3])
        | (subtype == "edge")
        | (subtype == "noise_peak")
    )
    mass[is_pop] = 1e4 * 10 ** (
        -0.4 * (mv[is_pop] - ssp_abs_mag_v(log_age[is_pop], 1e4))
    )
    table = {
        "cluster_class": cls.astype(int),
        "subtype": subtype,
        "distance": dist,
        "field": field_names,
        "log_age": log_age,
        "age": np.where(age_ok, 10 ** np.where(age_ok, log_age, 0), np.nan),
        "mass": mass,
        "ebv": ebv,
        "abs_mag_v": mv,
        "reff_pc": reff_pc,
        "reff_pix": reff_pc / pcpix,
        "eff_gamma": gamma,
        "axis_ratio": qax,
        "n_peaks": npk,
        "edge": edge,
    }
    for j, b in enumerate(bands):
        table[f"flux_{b}"] = flux_tot[:, j]
    for j, b in enumerate(bands):
        table[f"mag_{b}"] = mags[:, j]
    return table, comp
