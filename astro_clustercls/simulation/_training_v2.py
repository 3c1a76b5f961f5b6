# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulator v2 cutouts: crowded neighbourhoods and domain randomisation (private).

`make_training_set(..., simulator='v2')` renders its stamps here. Objects are
drawn in blocks of ``DOMAIN_RANDOMISATION['block']``; every block gets its
own observing set-up and every cutout its own neighbourhood, and every draw is
recorded per object in the truth table:

========================  ===================================================
column                    draw
========================  ===================================================
``psf_family``            ``'moffat'`` (the analytic core + halo, `get_psf`)
                          or ``'instrument'`` (the tabulated WFC3/UVIS and
                          ACS/WFC models, `get_instrument_psf`, drizzled with
                          ``psf_pixfrac``), probability ``instrument_psf``
``psf_pixfrac``           drizzle drop size of an instrument-PSF block,
                          uniform over ``pixfrac`` (NaN for Moffat blocks)
``psf_scale``             PSF width factor of the block (focus, drizzle),
                          uniform over ``psf_scale``; ``psf_scale_<band>``
                          adds a per-band jitter of rms ``psf_band_jitter``
``noise_corr``            lag-1 correlation of the pixel noise (drizzle),
                          uniform over ``noise_corr``
``zp_offset_<band>``      zeropoint offset (mag), uniform within
                          +-``zeropoint``: the band's image is scaled by
                          10^(-0.4 offset)
``acs_F435W``/``F606W``   ACS/WFC F435W (F606W) observed in the F438W
                          (F555W) slot, probabilities ``acs_f435w`` and
                          ``acs_f606w``: the object's light, PSF, zeropoint and
                          exposure are those of the ACS band
``exposure_set``          ``'legus'`` or ``'phangs'`` exposure times
``depth_scale``           exposure-time factor, log-uniform over
                          ``depth_scale``
``background_mu``         diffuse V surface brightness (block mean uniform
                          over ``background_mu``, +-0.5 mag rms per cutout)
``arm``                   spiral-arm strength 0-1 (arm ridge of young light,
                          field-star density, HII regions, dust)
``sfr_density``           star formation rate surface density of the field
                          stars (Msun/yr/kpc^2)
``background_structure``  0-1: number of diffuse lumps
``n_field_stars``         resolved young field stars in the cutout region
``n_red_giants``          resolved old red giants / AGB stars
``hii_region``            an HII region in the cutout region
``dust_lane_ebv``         peak E(B-V) of a dust lane (0: none);
                          ``dust_ebv_centre`` at the cutout centre
``n_cosmic_rays``         cosmic-ray residuals (1-3 px, one band)
``n_hot_pixels``          hot pixels (one pixel, one band)
``edge_distance``         distance (px) of a chip edge from the centre (NaN:
                          none); class-4 ``edge`` objects 1.5-6 px, others
                          7-15 px with probability ``chip_edge``
``distance``              3-25 Mpc, log-uniform, by default
========================  ===================================================
"""

import numpy as np

from ..utils._parameters import validate_positive_int
from . import _environment as env
from ._popcore import _draw_classes, _resolve_distance, pc_per_pixel
from ._populations_v2 import extinction
from ._render import Components, VariantStampRenderer
from .instrument_psf import get_instrument_psf
from .measure import _aperture_corrections
from .observing import PHANGS_EXPTIME, correlated_noise
from .photometry import zeropoint
from .populations import _crowding_neighbours, draw_population
from .psf import get_psf

__all__ = [
    "DOMAIN_RANDOMISATION",
    "NOMINAL_CONDITIONS",
    "make_stamps_v2",
    "fix_v2_photometry",
]

#: Ranges of simulator v2's domain randomisation (see the module docstring).
DOMAIN_RANDOMISATION = {
    "block": 128,
    "psf_scale": (0.92, 1.15),
    "psf_band_jitter": 0.03,
    "instrument_psf": 0.5,
    "pixfrac": (0.6, 1.0),
    "noise_corr": (0.0, 0.45),
    "zeropoint": 0.1,
    "acs_f435w": 0.25,
    "acs_f606w": 0.2,
    "exposure_sets": {"legus": 0.5, "phangs": 0.5},
    "depth_scale": (0.5, 1.5),
    "background_mu": (19.8, 22.8),
    "background_age": (7.5, 9.5),
    "sfr_density": (0.002, 0.04),
    "arm_boost": 4.0,
    "cosmic_rays": (0.0, 0.6),
    "hot_pixels": (0.0, 0.4),
    "chip_edge": (0.0, 0.06),
    "hii_probability": 0.3,
    "dust_probability": 0.35,
    "lumps": (0.3, 2.0),
    "field_star_cap": 25,
    "red_giant_cap": 10,
    "star_limit_mag": 27.5,
}

#: What ``randomise=False`` fixes: one nominal set-up (WFC3 bands, LEGUS
#: exposures, white noise, nominal PSFs and zeropoints, no artefacts).
NOMINAL_CONDITIONS = {
    "psf_scale": (1.0, 1.0),
    "psf_band_jitter": 0.0,
    "instrument_psf": 0.0,
    "noise_corr": (0.0, 0.0),
    "zeropoint": 0.0,
    "acs_f435w": 0.0,
    "acs_f606w": 0.0,
    "exposure_sets": {"legus": 1.0},
    "depth_scale": (1.0, 1.0),
    "background_mu": (21.5, 21.5),
    "cosmic_rays": (0.0, 0.0),
    "hot_pixels": (0.0, 0.0),
    "chip_edge": (0.0, 0.0),
}


def resolve_randomisation(randomise):
    """The randomisation ranges for a ``randomise`` argument."""
    R = dict(DOMAIN_RANDOMISATION)
    if randomise is False:
        R.update(NOMINAL_CONDITIONS)
    elif isinstance(randomise, dict):
        unknown = set(randomise) - set(R)
        if unknown:
            raise ValueError(
                f"unknown 'randomise' entries {sorted(unknown)}; known: {sorted(R)}"
            )
        R.update(randomise)
    elif randomise is not True:
        raise TypeError("'randomise' must be True, False or a dict of ranges")
    R["block"] = validate_positive_int("randomise['block']", R["block"])
    return R


#: the ACS/WFC bands observed in the F438W / F555W slots
_ACS_SUBSTITUTES = ("F435W", "F606W")


def _slot_bands(bands, acs_b, acs_v):
    out = []
    for b in bands:
        if b == "F438W" and acs_b:
            out.append("F435W")
        elif b == "F555W" and acs_v:
            out.append("F606W")
        else:
            out.append(b)
    return tuple(out)


def _psf_for(psfs, slot, band, j, pixfrac=None):
    """
    The PSF of ``band`` observed in slot ``j`` (named ``slot``): the given
    ``psfs``, else the instrument model drizzled with ``pixfrac`` (not None)
    or the analytic one.
    """
    if psfs is None:
        if pixfrac is not None:
            camera = "ACS/WFC" if band in _ACS_SUBSTITUTES else "WFC3/UVIS"
            return get_instrument_psf(band, camera, pixfrac=float(pixfrac))
        return get_psf(band)
    if isinstance(psfs, dict):
        for key in (band, slot):
            if key in psfs:
                return psfs[key]
        return get_psf(band)
    return psfs[j] if band == slot else get_psf(band)


def _draw_blocks(nblk, rng, R, bands):
    """Per-block observing set-ups."""
    lo, hi = R["depth_scale"]
    sets = list(R["exposure_sets"])
    w = np.array([R["exposure_sets"][s] for s in sets], float)
    blk = {
        "psf_scale": rng.uniform(*R["psf_scale"], nblk),
        "psf_band": 1.0
        + R["psf_band_jitter"] * rng.standard_normal((nblk, len(bands))),
        "noise_corr": rng.uniform(*R["noise_corr"], nblk),
        "zp": rng.uniform(-1, 1, (nblk, len(bands))) * R["zeropoint"],
        "acs_b": rng.random(nblk) < R["acs_f435w"],
        "acs_v": rng.random(nblk) < R["acs_f606w"],
        "exposure_set": np.array(sets)[rng.choice(len(sets), nblk, p=w / w.sum())],
        "depth_scale": np.exp(rng.uniform(np.log(lo), np.log(hi), nblk)),
        "background_mu": rng.uniform(*R["background_mu"], nblk),
        "sfr": np.exp(rng.uniform(*np.log(R["sfr_density"]), nblk)),
        "cosmic_rays": rng.uniform(*R["cosmic_rays"], nblk),
        "hot_pixels": rng.uniform(*R["hot_pixels"], nblk),
        "chip_edge": rng.uniform(*R["chip_edge"], nblk),
        "instrument_psf": rng.random(nblk) < R["instrument_psf"],
        "pixfrac": rng.uniform(*R["pixfrac"], nblk),
    }
    blk["pixfrac"] = np.where(
        blk["instrument_psf"], np.round(blk["pixfrac"], 2), np.nan
    )
    blk["psf_band"] = np.clip(blk["psf_band"], 0.8, 1.2)
    return blk


def _offset(comp, dx, dy):
    comp.dx = comp.dx + dx[comp.obj]
    comp.dy = comp.dy + dy[comp.obj]
    return comp


def make_stamps_v2(
    n,
    size,
    rng,
    *,
    bands,
    distance,
    classes,
    params,
    conditions,
    psfs=None,
    randomise=True,
    crowding=0.8,
    position_jitter=0.25,
    fixed=None,
):
    """
    Render ``n`` v2 stamps. Returns data (n, B, S, S) float32, the noise
    variance, and the truth table (dict of arrays). ``fixed`` overrides
    per-block draws (e.g. the held-out galaxy's depth, background and PSF).
    """
    R = resolve_randomisation(randomise)
    bands = tuple(bands)
    nb = len(bands)
    S = int(size)
    nblk = -(-n // R["block"])
    blk = _draw_blocks(nblk, rng, R, bands)
    for key, value in (fixed or {}).items():
        blk[key] = np.broadcast_to(np.asarray(value), blk[key].shape).copy()
    block = np.arange(n) // R["block"]
    cls = _draw_classes(n, classes, params.class_fractions, rng)
    dist, field_names = _resolve_distance(distance, n, rng)
    field_names = field_names.astype("<U16")
    # per cutout: neighbourhood
    mu = blk["background_mu"][block] + rng.normal(0, 0.5, n)
    arm = rng.random(n) ** 1.5
    sfr = blk["sfr"][block] * 10 ** rng.normal(0, 0.3, n) * (1 + R["arm_boost"] * arm)
    structure = rng.random(n)
    hii = rng.random(n) < R["hii_probability"] * (0.3 + arm)
    dusty = rng.random(n) < R["dust_probability"] * (0.3 + arm)
    n_cr = rng.poisson(blk["cosmic_rays"][block])
    n_hot = rng.poisson(blk["hot_pixels"][block])
    far_edge = rng.random(n) < blk["chip_edge"][block]
    off = (
        rng.normal(0, position_jitter, (2, n)) if position_jitter else np.zeros((2, n))
    )
    pad = int(np.ceil((S + 17) / 16.0) * 16)
    hw = min(S / 2.0 + 3.0, pad / 2.0 - 2.0)
    # all bands any cutout may have (the ACS substitutes), then per cutout
    # the columns of its own band set
    bands_all = list(bands)
    for slot, sub in (("F438W", "F435W"), ("F555W", "F606W")):
        if slot in bands and sub not in bands_all:
            bands_all.append(sub)
    blk_bands = [
        _slot_bands(bands, bool(blk["acs_b"][b]), bool(blk["acs_v"][b]))
        for b in range(nblk)
    ]
    blk_cols = np.array([[bands_all.index(x) for x in gb] for gb in blk_bands])
    cols = blk_cols[block]  # (n, nb)
    gain = (10 ** (-0.4 * blk["zp"][block])).astype(np.float32)  # zeropoints
    tab, comp = draw_population(
        n, rng=rng, bands=bands_all, distance=dist, classes=cls, params=params
    )
    comp = _offset(comp, off[0], off[1])
    comp.art_dx = comp.art_dx + np.rint(off[0][comp.art_obj]).astype(np.intp)
    comp.art_dy = comp.art_dy + np.rint(off[1][comp.art_obj]).astype(np.intp)
    table = {}
    for k, v in tab.items():
        if k.startswith(("flux_", "mag_")):
            continue
        table[k] = v
    rows = np.arange(n)[:, None]
    for kind in ("flux", "mag"):
        allv = np.column_stack([tab[f"{kind}_{b}"] for b in bands_all])[rows, cols]
        for j, b in enumerate(bands):
            table[f"{kind}_{b}"] = allv[:, j]
    # the neighbourhood
    bg_coef, level_v, arm_v, maps = env.background_maps(
        rng, n, S, bands_all, mu=mu, age_range=R["background_age"], arm=arm
    )
    pcpix = pc_per_pixel(dist)
    fs, nfs = env.young_field_stars(
        rng,
        sfr,
        (2 * hw * pcpix / 1e3) ** 2,
        dist,
        bands_all,
        limit_mag=R["star_limit_mag"],
        cap=R["field_star_cap"],
        half_width=hw,
    )
    rg, nrg = env.red_giants(
        rng,
        level_v,
        (2 * hw * 0.03962) ** 2,
        dist,
        bands_all,
        limit_mag=R["star_limit_mag"],
        cap=R["red_giant_cap"],
        half_width=hw,
    )
    hr = env.hii_regions(rng, hii, level_v + arm_v, dist, bands_all, half_width=hw)
    lm = env.lumps(
        rng,
        R["lumps"][0] + (R["lumps"][1] - R["lumps"][0]) * structure,
        level_v,
        bands_all,
        half_width=0.6 * S,
    )
    parts = [comp, fs, rg, hr, lm]
    neighbours, host = _crowding_neighbours(
        n, rng, bands_all, dist, params, crowding, min(0.75 * S, hw + 4.0)
    )
    if neighbours is not None:
        parts.append(neighbours)
    allc = Components.concatenate(parts)
    # each cutout's own bands, scaled by its zeropoint offsets
    allc.flux = allc.flux[np.arange(allc.obj.size)[:, None], cols[allc.obj]]
    allc.flux *= gain[allc.obj]
    # artefacts drawn in an ACS substitute band sit in that band's slot
    sub_slot = {"F435W": "F438W", "F606W": "F555W"}
    slot_of = np.array(
        [j if j < nb else bands.index(sub_slot[x]) for j, x in enumerate(bands_all)]
    )
    allc.art_band = slot_of[allc.art_band]
    allc.art_flux = allc.art_flux * gain[allc.art_obj, allc.art_band]
    bg_coef = (
        bg_coef[rows[:, :, None], cols[:, :, None], np.arange(2)] * gain[:, :, None]
    )
    extra = {
        "n_field_stars": nfs,
        "n_red_giants": nrg,
        "n_neighbours": np.bincount(host, minlength=n),
        "background_v": level_v,
        "arm_v": arm_v,
        "dust_lane_ebv": np.zeros(n),
        "dust_ebv_centre": np.zeros(n),
    }
    # render: one PSF set per block
    psf_sets = []
    for b in range(nblk):
        scale = blk["psf_scale"][b] * blk["psf_band"][b]
        pixfrac = blk["pixfrac"][b] if blk["instrument_psf"][b] else None
        psf_sets.append(
            [
                _psf_for(psfs, slot, band, j, pixfrac).scaled(round(float(scale[j]), 2))
                for j, (slot, band) in enumerate(zip(bands, blk_bands[b], strict=True))
            ]
        )
    renderer = VariantStampRenderer(psf_sets, S, pad=pad)
    img = renderer.render(allc, n, variant=block)
    env.add_background(img, bg_coef, maps)
    del maps
    r_all = extinction(bands_all, np.ones(1))[0]
    att, di, e0, ec = env.dust_lanes(rng, dusty, S, r_all[cols[dusty]])
    if di.size:
        img[di] *= att
        extra["dust_lane_ebv"][di] = e0
        extra["dust_ebv_centre"][di] = ec
    del att
    # noise: Poisson + read noise for each block's exposure, drizzle-correlated
    t_blk = np.empty((nblk, nb), np.float32)
    sky_blk = np.empty((nblk, nb), np.float32)
    for b in range(nblk):
        exps = (
            PHANGS_EXPTIME if blk["exposure_set"][b] == "phangs" else conditions.exptime
        )
        for j, band in enumerate(blk_bands[b]):
            t_blk[b, j] = exps[band] * conditions.depth_scale * blk["depth_scale"][b]
            sky_blk[b, j] = conditions.sky[band]
    t = t_blk[block]
    sky = sky_blk[block]
    rn2 = conditions.n_exp * conditions.read_noise**2
    # variance = ((signal + sky) t + n_exp rn^2) / t^2
    var = np.maximum(img, 0)
    var += sky[:, :, None, None]
    var *= (1.0 / t)[:, :, None, None]
    var += (rn2 / t**2)[:, :, None, None]
    rho = blk["noise_corr"][block][:, None]
    noise = correlated_noise((n, nb, S, S), np.broadcast_to(rho, (n, nb)), rng)
    noise *= np.sqrt(var)
    img += noise
    del noise
    # cosmic-ray residuals and hot pixels, one band each
    sig_sky = np.sqrt(sky * t + conditions.n_exp * conditions.read_noise**2) / t
    for count, streak in ((n_cr, True), (n_hot, False)):
        own = np.repeat(np.arange(n), count)
        if own.size == 0:
            continue
        band = rng.integers(0, nb, own.size)
        amp = sig_sky[own, band] * np.exp(rng.uniform(np.log(5), np.log(60), own.size))
        x = rng.integers(0, S, own.size)
        y = rng.integers(0, S, own.size)
        np.add.at(img, (own, band, y, x), amp.astype(np.float32))
        if streak:
            ang = rng.uniform(0, 2 * np.pi, own.size)
            for j in (1, 2):
                on = rng.random(own.size) < (0.7 if j == 1 else 0.35)
                xx = x + np.rint(j * np.cos(ang)).astype(int)
                yy = y + np.rint(j * np.sin(ang)).astype(int)
                on &= (xx >= 0) & (xx < S) & (yy >= 0) & (yy < S)
                np.add.at(
                    img,
                    (own[on], band[on], yy[on], xx[on]),
                    (amp[on] * rng.uniform(0.3, 0.9, on.sum())).astype(np.float32),
                )
    # chip edges: a NaN half-plane
    edge_d = np.full(n, np.nan)
    is_edge = np.asarray(table["edge"], bool)
    edge_d[is_edge] = rng.uniform(1.5, 6.0, is_edge.sum())
    far = far_edge & ~is_edge
    edge_d[far] = rng.uniform(7.0, 15.0, far.sum())
    cut_idx = np.flatnonzero(np.isfinite(edge_d))
    if cut_idx.size:
        c = S // 2
        yy, xx = np.mgrid[:S, :S].astype(np.float32) - c
        phi = rng.uniform(0, 2 * np.pi, cut_idx.size)
        cut = (
            xx[None] * np.cos(phi)[:, None, None]
            + yy[None] * np.sin(phi)[:, None, None]
        ) > edge_d[cut_idx][:, None, None]
        img[cut_idx] = np.where(cut[:, None], np.nan, img[cut_idx])
    # the truth table
    table["field"] = field_names
    table["x_offset"] = off[0]
    table["y_offset"] = off[1]
    table.update(extra)
    table["block"] = block
    given = psfs is not None
    table["psf_family"] = np.where(
        given, "given", np.where(blk["instrument_psf"][block], "instrument", "moffat")
    ).astype("<U10")
    table["psf_pixfrac"] = np.where(given, np.nan, blk["pixfrac"][block])
    table["psf_scale"] = blk["psf_scale"][block]
    for j, b in enumerate(bands):
        table[f"psf_scale_{b}"] = (blk["psf_scale"][:, None] * blk["psf_band"])[
            block, j
        ]
    table["noise_corr"] = blk["noise_corr"][block]
    for j, b in enumerate(bands):
        table[f"zp_offset_{b}"] = blk["zp"][block, j]
    table["acs_F435W"] = blk["acs_b"][block] & ("F438W" in bands)
    table["acs_F606W"] = blk["acs_v"][block] & ("F555W" in bands)
    table["exposure_set"] = blk["exposure_set"][block]
    table["depth_scale"] = blk["depth_scale"][block] * conditions.depth_scale
    table["background_mu"] = mu
    table["background_structure"] = structure
    table["arm"] = arm
    table["sfr_density"] = sfr
    table["hii_region"] = hii
    table["n_cosmic_rays"] = n_cr
    table["n_hot_pixels"] = n_hot
    table["edge_distance"] = edge_d
    return img, var, table


def _observed_bands(table, bands):
    """(N, B) array of the band each cutout observed in each slot (ACS or not)."""
    n = len(next(iter(table.values()))) if isinstance(table, dict) else len(table)
    observed = np.tile(np.array(bands, dtype="<U8"), (n, 1))
    for slot, sub, flag in (
        ("F438W", "F435W", "acs_F435W"),
        ("F555W", "F606W", "acs_F606W"),
    ):
        if slot in bands and flag in table:
            observed[np.asarray(table[flag], bool), bands.index(slot)] = sub
    return observed


def fix_v2_photometry(meas, table, bands):
    """
    Correct measured magnitudes (`quick_measure`, `measure_stamps`) of v2
    cutouts for how they were observed; modifies and returns ``meas``.

    - Slots that hold ACS F435W / F606W were converted with the slot band's
      zeropoint; a catalog quotes them in the band observed.
    - The measurement's aperture correction is that of the analytic PSF; a
      catalog uses its own field's (LEGUS: from isolated objects of the
      field), so cutouts rendered through the instrument PSF get the
      instrument model's correction (at their drizzle drop, to 0.05).
    """
    bands = [str(b).upper() for b in bands]
    observed = _observed_bands(table, bands)
    for j, slot in enumerate(bands):
        sub = observed[:, j] != slot
        meas["mag"][sub, j] += np.array(
            [zeropoint(b) for b in observed[sub, j]]) - zeropoint(slot)
    if "psf_family" not in table:
        return meas
    instrument = np.asarray(table["psf_family"]) == "instrument"
    pixfrac = np.round(np.asarray(table["psf_pixfrac"], float) / 0.05) * 0.05
    base = _aperture_corrections(bands)
    for pf in np.unique(pixfrac[instrument]):
        rows = instrument & (pixfrac == pf)
        for band in np.unique(observed[rows]):
            camera = "ACS/WFC" if band in _ACS_SUBSTITUTES else "WFC3/UVIS"
            psf = get_instrument_psf(band, camera, pixfrac=float(pf))
            corr = _aperture_corrections([band], psfs=[psf])[0]
            on = rows[:, None] & (observed == band)
            slot = np.nonzero(on.any(axis=0))[0]
            for j in slot:
                meas["mag"][on[:, j], j] += corr - base[j]
    return meas
