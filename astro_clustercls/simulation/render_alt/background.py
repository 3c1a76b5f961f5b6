# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The host galaxy around each cutout: diffuse light and resolved field stars.

Per cutout:

* a smooth diffuse light of V surface brightness ``mu`` (mag/arcsec^2) and
  the colours of a stellar population of random age and dust, with a linear
  gradient and a curvature term (the disk's light profile, a spiral arm);
* one to three broad lumps of younger, bluer light (`galsim.Exponential`
  profiles, a few to ten pixels across);
* sometimes a dust lane: a band of extinction across the stamp, stronger in
  the UV (Milky-Way law);
* faint resolved field stars (M_V -2 to -5: main-sequence stars and red
  giants, below the cluster luminosity function), as point-source
  components to be drawn with the PSF; their number grows with the diffuse
  light and the distance (more of the disk in a pixel).

Independent of the training simulator's diffuse light; it uses only the
physical conversions (`surface_brightness_to_rate`, `ssp_colours`,
`mag_to_flux`).
"""

import galsim
import numpy as np

from ..._constants import PIXEL_SCALE
from ..observing import surface_brightness_to_rate
from ..photometry import EXTINCTION_COEFFICIENTS, canonical_band, mag_to_flux
from ..populations import KIND_POINT, Components, ssp_colours

__all__ = ["diffuse_light", "field_stars"]


def _band_ratio(bands):
    """Flux ratio band / F555W at equal magnitude."""
    zp = np.array([float(mag_to_flux(0.0, b)) for b in bands])
    return zp / float(mag_to_flux(0.0, "F555W"))


def diffuse_light(
    n,
    size,
    bands,
    rng,
    *,
    mu=21.5,
    mu_sigma=0.6,
    age_range=(7.5, 9.5),
    dust_lane_fraction=0.25,
    pixel_scale=PIXEL_SCALE,
):
    """
    Diffuse galaxy light per cutout, electron/s per pixel.

    Parameters
    ----------
    n, size : int
        Number and side of the cutouts.
    bands : sequence of str
        Bands.
    rng : `numpy.random.Generator`
        Random generator.
    mu, mu_sigma : float, optional
        Mean and scatter of the V surface brightness, mag/arcsec^2.
    age_range : (float, float), optional
        log10(age/yr) range of the diffuse population.
    dust_lane_fraction : float, optional
        Fraction of cutouts crossed by a dust lane.

    Returns
    -------
    light : ndarray (n, B, size, size) float32
    truth : dict of ndarray
        The draws: ``background_mu``, ``background_v`` (V rate per pixel at
        the centre), ``background_log_age``, ``background_ebv``,
        ``background_grad_x``, ``background_grad_y``, ``background_curv``,
        ``n_lumps``, ``dust_lane_av`` (0 where none).
    """
    bands = list(bands)
    ratio = _band_ratio(bands)
    mu_i = rng.normal(mu, mu_sigma, n)
    level_v = surface_brightness_to_rate(mu_i, "F555W", pixel_scale)
    la = rng.uniform(*age_range, n)
    ebv = np.abs(rng.normal(0.0, 0.15, n))
    col = ssp_colours(la, bands, ebv=ebv)  # (n, B)
    per_band = level_v[:, None] * ratio[None, :] * 10 ** (-0.4 * col)
    c = size // 2
    yy, xx = (np.mgrid[:size, :size] - c) / float(size)
    gx, gy = rng.normal(0.0, 0.4, (2, n))
    curv = rng.normal(0.0, 0.3, n)
    phi = rng.uniform(0, np.pi, n)
    along = (
        xx[None] * np.cos(phi)[:, None, None] + yy[None] * np.sin(phi)[:, None, None]
    )
    plane = (
        1.0
        + gx[:, None, None] * xx[None]
        + gy[:, None, None] * yy[None]
        + curv[:, None, None] * along**2 * 4.0
    )
    plane = np.clip(plane, 0.1, None)
    light = per_band[:, :, None, None] * plane[:, None]
    # lumps of younger light
    n_lumps = rng.integers(1, 4, n)
    img = galsim.ImageD(size, size, scale=pixel_scale)
    for i in range(n):
        for _ in range(n_lumps[i]):
            r = rng.uniform(0, 0.7 * size)
            ang = rng.uniform(0, 2 * np.pi)
            h = rng.uniform(1.5, 5.0)  # scale length, pixels
            peak_v = level_v[i] * rng.uniform(0.15, 0.8)
            flux_v = peak_v * 2 * np.pi * h**2
            lcol = ssp_colours(rng.uniform(6.7, 8.3), bands)
            prof = galsim.Exponential(scale_radius=h * pixel_scale).shear(
                q=rng.uniform(0.4, 1.0), beta=rng.uniform(0, np.pi) * galsim.radians
            )
            prof = prof.shift(
                r * np.cos(ang) * pixel_scale, r * np.sin(ang) * pixel_scale
            )
            prof.drawImage(image=img, method="no_pixel")
            unit = img.array  # flux per pixel of a unit-flux lump
            light[i] += (flux_v * ratio * 10 ** (-0.4 * lcol))[:, None, None] * unit
    # dust lanes
    av = np.where(rng.random(n) < dust_lane_fraction, rng.uniform(0.2, 1.2, n), 0.0)
    lane = np.flatnonzero(av > 0)
    if lane.size:
        psi = rng.uniform(0, np.pi, lane.size)
        d0 = rng.uniform(-0.4, 0.4, lane.size) * size
        w = rng.uniform(1.5, 5.0, lane.size)
        dist = (
            (xx[None] * size) * np.sin(psi)[:, None, None]
            - (yy[None] * size) * np.cos(psi)[:, None, None]
            - d0[:, None, None]
        )
        prof = np.exp(-0.5 * (dist / w[:, None, None]) ** 2)
        k = (
            np.array(
                [
                    EXTINCTION_COEFFICIENTS[canonical_band(b).split("/")[1]]
                    for b in bands
                ]
            )
            / EXTINCTION_COEFFICIENTS["F555W"]
        )
        a_band = av[lane, None, None, None] * k[None, :, None, None] * prof[:, None]
        light[lane] *= 10 ** (-0.4 * a_band)
    truth = {
        "background_mu": mu_i,
        "background_v": level_v,
        "background_log_age": la,
        "background_ebv": ebv,
        "background_grad_x": gx,
        "background_grad_y": gy,
        "background_curv": curv,
        "n_lumps": n_lumps,
        "dust_lane_av": av,
    }
    return light.astype(np.float32), truth


def field_stars(n, size, bands, rng, distance, level_v, *, density=3.0, keep_clear=4.0):
    """
    Faint resolved stars of the host galaxy, as point-source components.

    Parameters
    ----------
    n, size : int
        Number and side of the cutouts.
    bands : sequence of str
        Bands.
    rng : `numpy.random.Generator`
        Random generator.
    distance : ndarray (n,)
        Distance of each cutout, Mpc.
    level_v : ndarray (n,)
        V diffuse light per pixel (electron/s) of each cutout.
    density : float, optional
        Mean number of stars per cutout at 10 Mpc and V surface brightness
        21.5 mag/arcsec^2.
    keep_clear : float, optional
        No star within this many pixels of the centre (default 4).

    Returns
    -------
    Components
        Points with ``obj`` = cutout index and offsets from the centre.
    ndarray (n,)
        Number of stars per cutout.
    """
    bands = list(bands)
    ref = surface_brightness_to_rate(21.5, "F555W")
    lam = density * (level_v / ref) * (np.asarray(distance) / 10.0) ** 2
    counts = rng.poisson(np.clip(lam, 0, 40))
    obj = np.repeat(np.arange(n), counts)
    m = obj.size
    # L^-2 luminosity function between M_V = -2 and -5; 30 % red giants
    u = rng.random(m)
    lmax = 10 ** (0.4 * 3.0)
    mabs = -2.0 - 2.5 * np.log10(1.0 / (1.0 - u * (1.0 - 1.0 / lmax)))
    red = rng.random(m) < 0.3
    col = np.where(
        red[:, None],
        ssp_colours(np.full(m, 10.0), bands),
        ssp_colours(np.full(m, 6.3), bands),
    ) + rng.normal(0, 0.1, (m, len(bands)))
    dm = 5 * np.log10(np.asarray(distance)[obj] * 1e5)
    ratio = _band_ratio(bands)
    flux = (
        float(mag_to_flux(0.0, "F555W"))
        * ratio[None, :]
        * 10 ** (-0.4 * ((mabs + dm)[:, None] + col))
    )
    # anywhere on the stamp but the central ``keep_clear`` pixels, so that
    # they do not change what the object at the centre looks like
    half = size / 2.0
    dx, dy = rng.uniform(-half, half, (2, m))
    inside = np.hypot(dx, dy) < keep_clear
    while inside.any():
        dx[inside], dy[inside] = rng.uniform(-half, half, (2, inside.sum()))
        inside = np.hypot(dx, dy) < keep_clear
    comp = Components(
        obj=obj.astype(np.intp),
        kind=np.full(m, KIND_POINT, np.intp),
        dx=dx,
        dy=dy,
        size=np.ones(m),
        q=np.ones(m),
        theta=np.zeros(m),
        beta_idx=np.zeros(m, np.intp),
        flux=flux,
    )
    return comp, counts
