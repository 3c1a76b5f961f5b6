# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Crowded-disk neighbourhoods of simulator v2 (private).

Around each candidate (a training cutout) or over a whole field:

* resolved young field stars, from a constant star formation rate over the
  last 200 Myr (surface density ``sfr`` in Msun/yr/kpc^2, boosted in spiral
  arms), drawn star by star with the IMF, lifetimes and stellar tables of
  `_stars` (blue main-sequence stars, blue, yellow and red supergiants), at
  most ``field_star_cap`` of the brightest per cutout;
* resolved old red giants / AGB stars of the underlying disk (their number
  follows the old disk's surface brightness), at most ``red_giant_cap``;
* HII regions: Gaussian blobs 5-40 pc (sigma) of ionised gas, bright in
  F336W and F555W (F606W with H-alpha), faint in F438W and F814W;
* diffuse lumps (as v1) whose number follows ``background_structure``;
* dust lanes: a lane of extinction (E(B-V) 0.1-0.8 at its centre, 1.5-6 px
  wide, patchy along its length) across the cutout, more often in arms.

Stars, HII regions and lumps are light components (rendered with the
objects); the background light and the dust are real-space maps.
"""

import numpy as np

from . import _stars
from ._popcore import pc_per_pixel
from ._populations_v2 import extinction, nebular_colours, ssp_colours_z
from ._render import KIND_GAUSS, KIND_POINT, Components
from .observing import surface_brightness_to_rate
from .photometry import mag_to_flux, zeropoint

__all__ = []

#: Star formation history of the field: constant over this many years.
FIELD_SF_AGE = 2e8
_PIX_ARCSEC = 0.03962


def _zp(bands):
    return np.array([float(mag_to_flux(0.0, b)) for b in bands])


def _comp(obj, kind, dx, dy, flux, size=None, q=None, theta=None):
    m = obj.size
    return Components(
        obj=obj,
        kind=np.full(m, kind, np.intp),
        dx=np.asarray(dx, float),
        dy=np.asarray(dy, float),
        size=np.ones(m) if size is None else np.asarray(size, float),
        q=np.ones(m) if q is None else np.asarray(q, float),
        theta=np.zeros(m) if theta is None else np.asarray(theta, float),
        beta_idx=np.zeros(m, np.intp),
        flux=np.asarray(flux, float),
    )


def _brightest(owner, key, cap):
    """Mask keeping at most ``cap`` entries per owner, the largest ``key`` first."""
    if owner.size == 0:
        return np.zeros(0, bool)
    order = np.lexsort((-key, owner))
    o = owner[order]
    first = np.searchsorted(o, o)
    rank = np.arange(o.size) - first
    keep = np.zeros(owner.size, bool)
    keep[order[rank < cap]] = True
    return keep


def young_field_stars(
    rng, sfr, area_kpc2, dist, bands, *, limit_mag, cap, half_width, ebv_scale=0.2
):
    """
    Resolved young field stars of ``sfr.size`` regions (squares of side
    ``2 * half_width`` px centred on the cutouts).

    Returns Components (obj = region index, point sources) and the number of
    stars per region.
    """
    n = sfr.size
    formed = sfr * FIELD_SF_AGE * area_kpc2
    dm = 5 * np.log10(dist * 1e5)
    m_vis = _stars.ms_mass_for_mv(limit_mag + 2.5 - dm)
    # do not draw (many) more than needed for the brightest ``cap``
    m_cap = _stars.imf_mass_for_number(4.0 * cap / np.maximum(formed, 1e-9), 120.0)
    m_floor = np.clip(np.maximum(m_vis, m_cap), 0.9, 100.0)
    owner, _, _, lum, mv = _stars.draw_field_stars(
        rng, formed, m_floor, FIELD_SF_AGE, bands
    )
    ebv = np.abs(rng.normal(0, ebv_scale, owner.size))
    a = extinction(bands, ebv)
    flux = lum * _zp(bands)[None, :] * 10 ** (-0.4 * (dm[owner][:, None] + a))
    vis = mv + dm[owner] + a[:, _vband(bands)] < limit_mag
    owner, flux, mv = owner[vis], flux[vis], mv[vis]
    keep = _brightest(owner, -mv, cap)
    owner, flux = owner[keep], flux[keep]
    x = rng.uniform(-half_width, half_width, owner.size)
    y = rng.uniform(-half_width, half_width, owner.size)
    return _comp(owner, KIND_POINT, x, y, flux), np.bincount(owner, minlength=n)


def _vband(bands):
    up = [str(b).upper() for b in bands]
    for name in ("F555W", "F606W"):
        if name in up:
            return up.index(name)
    return len(up) // 2


def red_giants(
    rng, old_level_v, area_arcsec2, dist, bands, *, limit_mag, cap, half_width
):
    """
    The brightest red giants / AGB stars of the old disk: about one star
    brighter than M_V = -1.5 per 2e4 Lsun of V light, M_V from -3.2 to -0.5
    (dN/dM ~ 10^(0.3 M)), V-I 1.3-2.2.
    """
    n = old_level_v.size
    dm = 5 * np.log10(dist * 1e5)
    # V rate per pixel -> Lsun per region
    mu = zeropoint("F555W") - 2.5 * np.log10(
        np.maximum(old_level_v, 1e-12) / _PIX_ARCSEC**2
    )
    lum_v = 10 ** (-0.4 * (mu - dm - 4.83)) * area_arcsec2
    m_bright, m_faint = -3.2, -0.5
    m_lim = np.clip(limit_mag - dm, m_bright + 0.3, m_faint)

    def count(m):  # stars brighter than m
        return lum_v / 2e4 * (10 ** (0.3 * (m + 1.5)) - 10 ** (0.3 * (m_bright + 1.5)))

    lam = count(m_lim)
    over = lam > 2 * cap
    # keep only the brightest ~cap: raise the magnitude limit where needed
    if over.any():
        m_lim[over] = (
            np.log10(2 * cap / (lum_v[over] / 2e4) + 10 ** (0.3 * (m_bright + 1.5)))
            / 0.3
            - 1.5
        )
        lam = count(m_lim)
    k = rng.poisson(lam)
    owner = np.repeat(np.arange(n), k)
    u = rng.random(owner.size)
    lo = 10 ** (0.3 * m_bright)
    hi = 10 ** (0.3 * m_lim[owner])
    mv = np.log10(lo + u * (hi - lo)) / 0.3
    vi = rng.uniform(1.3, 2.2, owner.size)
    uv = 1.2 + 0.8 * vi + rng.normal(0, 0.15, owner.size)
    bv = 0.55 + 0.45 * vi
    nuvu = np.full(owner.size, 2.5)
    col = _stars.colours_to_bands(uv, bv, vi, nuvu, bands)
    ebv = np.abs(rng.normal(0, 0.1, owner.size))
    a = extinction(bands, ebv)
    flux = _zp(bands)[None, :] * 10 ** (-0.4 * ((mv + dm[owner])[:, None] + col + a))
    keep = _brightest(owner, -mv, cap)
    owner, flux = owner[keep], flux[keep]
    x = rng.uniform(-half_width, half_width, owner.size)
    y = rng.uniform(-half_width, half_width, owner.size)
    return _comp(owner, KIND_POINT, x, y, flux), np.bincount(owner, minlength=n)


def hii_regions(rng, have, level_v, dist, bands, *, half_width):
    """One HII region (a Gaussian blob of ionised gas) per region with ``have``."""
    idx = np.flatnonzero(have)
    m = idx.size
    pcpix = pc_per_pixel(dist[idx])
    sig = np.clip(rng.uniform(5.0, 40.0, m) / pcpix, 1.5, 14.0)
    peak = level_v[idx] * rng.uniform(0.3, 2.0, m)  # V rate per pixel at the centre
    q = rng.uniform(0.5, 1.0, m)
    fv = peak * 2 * np.pi * sig**2 * q
    col = nebular_colours(rng, m, bands)
    col = (
        col
        + extinction(bands, np.abs(rng.normal(0, 0.2, m)))
        - extinction(["F555W"], np.zeros(m))
    )
    zp = _zp(bands)
    zpv = float(mag_to_flux(0.0, "F555W"))
    flux = fv[:, None] * (zp / zpv)[None, :] * 10 ** (-0.4 * col)
    x = rng.uniform(-half_width, half_width, m)
    y = rng.uniform(-half_width, half_width, m)
    return _comp(idx, KIND_GAUSS, x, y, flux, sig, q, rng.uniform(0, np.pi, m))


def lumps(rng, mean_number, level_v, bands, *, half_width):
    """Round diffuse Gaussian lumps of unresolved light (as v1's, but round)."""
    n = level_v.size
    nl = rng.poisson(mean_number)
    lh = np.repeat(np.arange(n), nl)
    m = lh.size
    la = rng.uniform(6.8, 8.5, m)
    col = ssp_colours_z(la, bands, np.zeros(m), np.zeros(m))
    sig = rng.uniform(2.5, 6.0, m)
    amp = level_v[lh] * rng.uniform(0.1, 0.6, m)
    fv = amp * 2 * np.pi * sig**2
    zp = _zp(bands)
    zpv = float(mag_to_flux(0.0, "F555W"))
    flux = fv[:, None] * (zp / zpv)[None, :] * 10 ** (-0.4 * col)
    r = rng.uniform(0, half_width, m)
    ang = rng.uniform(0, 2 * np.pi, m)
    return _comp(
        lh,
        KIND_GAUSS,
        r * np.cos(ang),
        r * np.sin(ang),
        flux,
        sig,
        np.ones(m),  # circular: separable, cheap to render
        np.zeros(m),
    )


def background_maps(rng, n, size, bands, *, mu, age_range, arm):
    """
    Diffuse light: an old disk (level, colour, gradient) plus a young arm
    ridge crossing the cutout, whose strength follows ``arm``.

    Returns ``coef`` (n, B, 2): per band the weights of the two maps,
    the disk's and the arm's V level per pixel, and ``maps`` (n, 2, S, S)
    float32 (the disk, normalised to its V level, and the ridge); the light in
    band ``b`` is ``coef[:, b, 0] * maps[:, 0] + coef[:, b, 1] * maps[:, 1]``
    (`add_background`).
    """
    level_v = surface_brightness_to_rate(mu, "F555W").astype(np.float32)
    la = rng.uniform(*age_range, n)
    col = ssp_colours_z(la, bands, np.abs(rng.normal(0, 0.15, n)), np.zeros(n))
    zp = _zp(bands)
    zpv = float(mag_to_flux(0.0, "F555W"))
    c_disk = (zp / zpv)[None, :] * 10 ** (-0.4 * col)
    col_arm = ssp_colours_z(
        rng.uniform(6.8, 7.8, n), bands, np.abs(rng.normal(0, 0.2, n)), np.zeros(n)
    )
    c_arm = (zp / zpv)[None, :] * 10 ** (-0.4 * col_arm)
    arm_v = (level_v * arm * rng.uniform(0.3, 1.5, n)).astype(np.float32)
    c = size // 2
    g = (np.arange(size, dtype=np.float32) - c) / size
    gx, gy = rng.normal(0, 0.35, (2, n)).astype(np.float32)
    maps = np.empty((n, 2, size, size), np.float32)
    plane = maps[:, 0]
    plane[...] = 1.0 + gx[:, None, None] * g[None, None, :]
    plane += gy[:, None, None] * g[None, :, None]
    np.clip(plane, 0.05, None, out=plane)
    plane *= level_v[:, None, None]
    phi = rng.uniform(0, np.pi, n).astype(np.float32)
    off = rng.uniform(-size, size, n).astype(np.float32)
    width = rng.uniform(8.0, 30.0, n).astype(np.float32)
    yy = np.arange(size, dtype=np.float32) - c
    d = (
        np.cos(phi)[:, None, None] * yy[None, None, :]
        + np.sin(phi)[:, None, None] * yy[None, :, None]
        - off[:, None, None]
    )
    d /= width[:, None, None]
    d *= d
    d *= -0.5
    np.exp(d, out=maps[:, 1])
    maps[:, 1] *= arm_v[:, None, None]
    coef = np.stack([c_disk, c_arm], axis=-1).astype(np.float32)
    return coef, level_v, arm_v, maps


def add_background(img, coef, maps):
    """``img[:, b] += coef[:, b, 0] * maps[:, 0] + coef[:, b, 1] * maps[:, 1]``."""
    for b in range(img.shape[1]):
        img[:, b] += coef[:, b, 0, None, None] * maps[:, 0]
        img[:, b] += coef[:, b, 1, None, None] * maps[:, 1]


def dust_lanes(rng, have, size, r_band):
    """
    Attenuation maps (k, B, S, S) float32 for the regions ``have``: a patchy
    lane of E(B-V) ``ebv0`` at its centre line; ``r_band`` (k, B) is
    A_band / E(B-V) of each region's bands. Returns the maps, the indices, the
    peak E(B-V) and E(B-V) at the cutout centre.
    """
    idx = np.flatnonzero(have)
    k = idx.size
    c = size // 2
    yy = np.arange(size, dtype=np.float32) - c
    phi = rng.uniform(0, np.pi, k).astype(np.float32)
    off = rng.uniform(-0.6 * c, 0.6 * c, k).astype(np.float32)
    w = rng.uniform(1.5, 6.0, k).astype(np.float32)
    e0 = rng.uniform(0.1, 0.8, k).astype(np.float32)
    cp, sp = np.cos(phi)[:, None, None], np.sin(phi)[:, None, None]
    d = cp * yy[None, None, :] + sp * yy[None, :, None] - off[:, None, None]
    t = -sp * yy[None, None, :] + cp * yy[None, :, None]
    # patchy along the lane: three random, incommensurate modulations
    patchy = np.ones_like(t)
    for _ in range(3):
        lam = rng.uniform(8.0, 40.0, k).astype(np.float32)[:, None, None]
        ph = rng.uniform(0, 2 * np.pi, k).astype(np.float32)[:, None, None]
        amp = rng.uniform(0.0, 0.25, k).astype(np.float32)[:, None, None]
        patchy += amp * np.sin(2 * np.pi * t / lam + ph + 0.3 * d)
    ebv = e0[:, None, None] * np.exp(-0.5 * (d / w[:, None, None]) ** 2) * patchy
    r = np.asarray(r_band, np.float32).reshape(k, np.shape(r_band)[-1])
    att = 10 ** (-0.4 * r[:, :, None, None] * ebv[:, None])
    return att.astype(np.float32), idx, e0, ebv[:, c, c]
