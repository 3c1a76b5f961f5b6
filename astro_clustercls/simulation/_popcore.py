# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Shared pieces of the population models (private): the SSP colour table,
distances, luminosity-function draws and the component builder.

The SSP table is a hand-digitised approximation of solar-metallicity SSP models
(Bruzual & Charlot 2003 / Yggdrasil trends) in the WFC3 Vega system, good to
~0.1-0.2 mag; it reproduces the blue-to-red sequence with age and the red
supergiant V-I bump near 10 Myr, not precise model colours.
"""

import numpy as np

from .._constants import PIXEL_SCALE
from ._render import Components
from .photometry import EXTINCTION_COEFFICIENTS, canonical_band

__all__ = []

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


def _draw_classes(n, classes, fractions, rng):
    """
    The class (1-4) of each of ``n`` objects from the ``classes`` argument.

    An (n,) array is taken as it is; otherwise ``classes`` (None: all four)
    are the allowed classes, drawn with the weights ``fractions[c - 1]``.
    """
    if classes is None:
        classes = [1, 2, 3, 4]
    if isinstance(classes, np.ndarray) and classes.shape == (n,) and n > 0:
        cls = classes.astype(int)
    else:
        allowed = np.unique(np.atleast_1d(np.asarray(classes)).astype(int))
        if not set(allowed.tolist()) <= {1, 2, 3, 4} or allowed.size == 0:
            raise ValueError(f"'classes' must be among 1, 2, 3, 4, got {classes!r}")
        frac = np.array([fractions[c - 1] for c in allowed], float)
        cls = allowed[rng.choice(allowed.size, n, p=frac / frac.sum())]
    if not set(np.unique(cls).tolist()) <= {1, 2, 3, 4}:
        raise ValueError("'classes' must be among 1, 2, 3, 4")
    return cls


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
