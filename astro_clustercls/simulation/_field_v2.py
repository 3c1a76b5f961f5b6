# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulator v2 fields: a crowded disk around the candidates (private).

`simulate_field(..., simulator='v2')` adds to v1's disk with spiral arms:

* resolved field stars: young ones (blue main-sequence stars, blue, yellow
  and red supergiants, from a constant star formation rate over 200 Myr whose
  surface density follows the arms) and old red giants (following the disk
  light), drawn per 32 x 32 px tile with `_environment`; those brighter than
  M_V = -6 (LEGUS's limit) get a row in the truth table (class 4, subtype
  ``field_star``) so a detection on them can be matched;
* HII regions along the arms (`_environment.hii_regions`);
* dust lanes on the inner edges of the arms, patchy, attenuating everything
  behind them per band (column ``dust_lane_ebv`` at each object);
* one observing set-up per field drawn as in `DOMAIN_RANDOMISATION` (PSF
  width, noise correlation, zeropoint offsets, exposure set and depth), with
  drizzle-correlated noise, cosmic-ray residuals and hot pixels;
* on request (``acs_bands``), ACS/WFC F435W and/or F606W in the F438W and
  F555W slots: the bands themselves are those of ACS (the objects' light,
  PSF, zeropoint, sky and exposure), as the training stamps' ``acs_F435W`` /
  ``acs_F606W`` draws, but fixed for the whole field.
"""

import numpy as np

from . import _environment as env
from ._populations_v2 import extinction
from ._render import Components
from ._training_v2 import resolve_randomisation
from .observing import PHANGS_EXPTIME, correlated_noise

__all__ = []

_TILE = 32


def _smooth_noise(rng, shape, scale):
    """Gaussian random field with correlation length ~``scale`` px, unit rms."""
    ny, nx = shape
    w = rng.standard_normal(shape)
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    f = np.fft.irfft2(
        np.fft.rfft2(w) * np.exp(-2 * (np.pi * scale) ** 2 * (kx**2 + ky**2)),
        s=shape,
    )
    return f / (f.std() or 1.0)


def v_index(bands):
    """
    The index of the V band in ``bands``: F555W, else ACS F606W observed in
    its place, else the middle band.
    """
    for band in ("F555W", "F606W"):
        if band in bands:
            return list(bands).index(band)
    return len(bands) // 2


def field_setup(rng, bands, randomise):
    """One field's observing set-up (the per-block draws of the training sets)."""
    R = resolve_randomisation(randomise)
    lo, hi = R["depth_scale"]
    sets = list(R["exposure_sets"])
    w = np.array([R["exposure_sets"][s] for s in sets], float)
    scale = rng.uniform(*R["psf_scale"])
    band = np.clip(
        1.0 + R["psf_band_jitter"] * rng.standard_normal(len(bands)), 0.8, 1.2
    )
    return R, {
        "psf_scale": scale,
        "psf_band": band,
        "noise_corr": rng.uniform(*R["noise_corr"]),
        "zp": rng.uniform(-1, 1, len(bands)) * R["zeropoint"],
        "exposure_set": sets[rng.choice(len(sets), p=w / w.sum())],
        "depth_scale": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        "sfr": float(np.exp(rng.uniform(*np.log(R["sfr_density"])))),
    }


def field_environment(rng, shape, bands, distance, light, density, R, setup):
    """
    Field stars, HII regions (Components with obj = tile, offsets from the
    tile centres), and the tile centres; a dust E(B-V) map.
    """
    ny, nx = shape
    ty = np.arange(_TILE // 2, ny + _TILE // 2, _TILE)
    tx = np.arange(_TILE // 2, nx + _TILE // 2, _TILE)
    cy, cx = [a.ravel().astype(float) for a in np.meshgrid(ty, tx, indexing="ij")]
    iy = np.clip(cy.astype(int), 0, ny - 1)
    ix = np.clip(cx.astype(int), 0, nx - 1)
    nt = cy.size
    dens = density / max(density.max(), 1e-12)
    arm = np.clip(dens[iy, ix], 0, 1)
    dist = np.full(nt, float(distance))
    sfr = setup["sfr"] * (0.2 + R["arm_boost"] * arm)
    pcpix = float(np.asarray(distance) * 1e6 * np.deg2rad(0.03962 / 3600.0))
    hw = _TILE / 2.0
    fs, nfs = env.young_field_stars(
        rng,
        sfr,
        np.full(nt, (2 * hw * pcpix / 1e3) ** 2),
        dist,
        bands,
        limit_mag=R["star_limit_mag"],
        cap=4 * R["field_star_cap"],
        half_width=hw,
    )
    level_v = np.maximum(light[v_index(bands)][iy, ix], 1e-6)
    rg, nrg = env.red_giants(
        rng,
        level_v,
        np.full(nt, (2 * hw * 0.03962) ** 2),
        dist,
        bands,
        limit_mag=R["star_limit_mag"],
        cap=4 * R["red_giant_cap"],
        half_width=hw,
    )
    hii = rng.random(nt) < R["hii_probability"] * arm
    hr = env.hii_regions(rng, hii, level_v, dist, bands, half_width=hw)
    comp = Components.concatenate([fs, rg, hr])
    # dust lanes: on the inner edge of the arms (the arm pattern shifted),
    # patchy
    shift = rng.uniform(4.0, 12.0)
    ang = rng.uniform(0, 2 * np.pi)
    sy, sx = int(round(shift * np.sin(ang))), int(round(shift * np.cos(ang)))
    lanes = np.roll(dens, (sy, sx), axis=(0, 1)) ** 3
    patch = np.clip(1.0 + 0.6 * _smooth_noise(rng, shape, rng.uniform(8, 25)), 0, None)
    ebv = rng.uniform(0.3, 0.8) * lanes * patch
    return (
        comp,
        cx,
        cy,
        ebv,
        {
            "n_field_stars": int(nfs.sum()),
            "n_red_giants": int(nrg.sum()),
            "n_hii": int(hii.sum()),
        },
    )


def observe(rng, model, bands, conditions, setup, R, gap):
    """Noise (drizzle-correlated), cosmic rays and hot pixels on ``model``."""
    nb, ny, nx = model.shape
    exps = PHANGS_EXPTIME if setup["exposure_set"] == "phangs" else conditions.exptime
    rn2 = conditions.n_exp * conditions.read_noise**2
    noise = correlated_noise(model.shape, setup["noise_corr"], rng, dtype=np.float64)
    images = np.empty_like(model, dtype=np.float32)
    for j, b in enumerate(bands):
        t = exps[b] * conditions.depth_scale * setup["depth_scale"]
        var = (np.maximum(model[j], 0) + conditions.sky[b]) / t + rn2 / t**2
        images[j] = model[j] + noise[j] * np.sqrt(var)
    sig_sky = {
        b: np.sqrt(
            conditions.sky[b] / (exps[b] * setup["depth_scale"])
            + rn2 / (exps[b] * setup["depth_scale"]) ** 2
        )
        for b in bands
    }
    area = ny * nx
    n_cr = rng.poisson(area / 2e4 * rng.uniform(*R["cosmic_rays"]) * 4)
    n_hot = rng.poisson(area / 2e4 * rng.uniform(*R["hot_pixels"]) * 4)
    for count, streak in ((n_cr, True), (n_hot, False)):
        band = rng.integers(0, nb, count)
        x = rng.integers(0, nx, count)
        y = rng.integers(0, ny, count)
        amp = np.array([sig_sky[bands[b]] for b in band]) * np.exp(
            rng.uniform(np.log(5), np.log(60), count)
        )
        np.add.at(images, (band, y, x), amp.astype(np.float32))
        if streak and count:
            ang = rng.uniform(0, 2 * np.pi, count)
            for j in (1, 2):
                xx = np.clip(x + np.rint(j * np.cos(ang)).astype(int), 0, nx - 1)
                yy = np.clip(y + np.rint(j * np.sin(ang)).astype(int), 0, ny - 1)
                np.add.at(
                    images,
                    (band, yy, xx),
                    (amp * rng.uniform(0.3, 0.9, count)).astype(np.float32),
                )
    images[:, gap] = np.nan
    return images, {"n_cosmic_rays": int(n_cr), "n_hot_pixels": int(n_hot)}


def attenuate(model, bands, ebv):
    """Multiply ``model`` (B, ny, nx) by the dust lanes' attenuation."""
    r = extinction(bands, np.ones(1))[0]
    for j in range(len(bands)):
        model[j] *= 10 ** (-0.4 * r[j] * ebv)
    return model
