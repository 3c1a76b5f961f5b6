# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Render labelled cutouts with GalSim, independently of the training simulator.

The objects are the simulator's physical descriptions
(`~astro_clustercls.simulation.draw_population`); everything that turns them
into pixels is separate from the training simulator's renderer: GalSim
profiles (`profiles`), a physical HST PSF model tabulated per band
(`psf`), the host galaxy's diffuse light and resolved stars (`background`),
and drizzled Poisson + read noise of dithered exposures (`noise`). Networks
trained on the training simulator can thus be judged on images they never
saw, made another way.
"""

import galsim
import numpy as np
from astropy.table import QTable

from ..._constants import DEFAULT_BANDS, PIXEL_SCALE
from ...utils._parameters import validate_positive_int
from ..observing import DEFAULT_CONDITIONS, ObservingConditions
from ..populations import DEFAULT_PARAMETERS, Components, draw_population
from .background import diffuse_light, field_stars
from .noise import drizzled_noise
from .profiles import object_profiles
from .psf import tabulated_psf

__all__ = ["render_cutouts", "draw_psf_variants"]

#: Spread of the PSF variants: focus (nm rms of wavefront; HST breathing and
#: focus history) and roll (spider orientation on the image, degrees).
PSF_VARIANT_DEFOCUS_NM = 6.0


def draw_psf_variants(k, rng):
    """``k`` random PSF variants: ``[(defocus_nm, strut_angle_deg), ...]``."""
    k = validate_positive_int("psf_variants", k)
    defocus = np.round(rng.normal(0.0, PSF_VARIANT_DEFOCUS_NM, k), 2)
    angle = np.round(rng.uniform(0.0, 90.0, k), 2)
    return [(float(d), float(a)) for d, a in zip(defocus, angle, strict=True)]


def _neighbours(n, size, rng, bands, distance, params, crowding):
    """Crowding neighbours drawn from the same descriptions, around each stamp."""
    counts = rng.poisson(crowding, n)
    host = np.repeat(np.arange(n), counts)
    min_dist = np.full(n, np.nan)
    if host.size == 0:
        return None, counts, min_dist
    tab, comp = draw_population(
        host.size,
        rng=rng,
        bands=bands,
        distance=distance[host],
        classes=rng.choice([1, 2, 3, 4], host.size, p=[0.25, 0.2, 0.2, 0.35]),
        params=params.copy(mv_range=(-4.0, -10.0)),
    )
    ok = ~np.isin(tab["subtype"], ["cosmic_ray", "hot_pixel", "edge"])
    comp = comp.subset(ok)
    host = host[ok]
    counts = np.bincount(host, minlength=n)
    # uniform over an annulus 4 px .. 0.75 size from the centre
    r_in, r_out = 4.0, 0.75 * size
    r = np.sqrt(rng.uniform(r_in**2, r_out**2, host.size))
    ang = rng.uniform(0, 2 * np.pi, host.size)
    comp.dx += (r * np.cos(ang))[comp.obj]
    comp.dy += (r * np.sin(ang))[comp.obj]
    comp.obj = host[comp.obj]
    np.fmin.at(min_dist, host, r)
    return comp, counts, min_dist


def _as_population(population_or_n, rng, bands, distance, classes, params):
    if isinstance(population_or_n, tuple | list) and len(population_or_n) == 2:
        table, comp = population_or_n
        table = {k: np.asarray(table[k]) for k in table.keys()}
        return table, comp
    n = validate_positive_int("population_or_n", population_or_n)
    if distance is None:
        distance = (4.0, 23.0)
    return draw_population(
        n, rng=rng, bands=bands, distance=distance, classes=classes, params=params
    )


def render_cutouts(
    population_or_n,
    *,
    bands=DEFAULT_BANDS,
    size=31,
    distance=None,
    conditions=None,
    seed=None,
    classes=None,
    params=None,
    crowding=0.8,
    position_jitter=0.25,
    psf_variants=2,
    background_mu=21.5,
    background_age=(7.5, 9.5),
    field_star_density=3.0,
    background=True,
    noise=True,
    drizzle=True,
    pixfrac=1.0,
    optics=None,
    pixel_scale=PIXEL_SCALE,
):
    """
    Render multi-band cutouts of simulated cluster candidates with GalSim.

    Same units and orientation as
    `~astro_clustercls.simulation.make_training_set`: electron/s,
    sky-subtracted with the diffuse galaxy light kept, the object's reference
    point (its light centroid plus a catalog-position error) on the central
    pixel ``(size // 2, size // 2)`` of ``data[i, b]`` indexed ``[y, x]``, NaN
    where a chip edge cuts the stamp.

    Parameters
    ----------
    population_or_n : int or (table, Components)
        Number of objects to draw with `draw_population`, or a population
        already drawn (its ``distance`` column is used).
    bands : sequence of str, optional
        Bands (default ``DEFAULT_BANDS``).
    size : int, optional
        Cutout side, odd, >= 9 (default 31).
    distance : float, (min, max), ndarray or 'legus', optional
        Distance in Mpc when drawing (default log-uniform 4-23 Mpc).
    conditions : `~astro_clustercls.simulation.ObservingConditions`, optional
        Depth, sky and read noise (default LEGUS-like).
    seed : int or `numpy.random.Generator`, optional
        The same seed gives the same cutouts.
    classes : int, sequence or ndarray, optional
        Classes to draw (see `draw_population`).
    params : PopulationParameters, optional
        Distributions of the objects (default: the calibrated ones).
    crowding : float, optional
        Mean number of neighbouring objects per cutout (default 0.8).
    position_jitter : float, optional
        rms error (pixels) of the position the cutout is centred on.
    psf_variants : int or sequence of (float, float), optional
        Number of random PSF variants (focus and roll; see
        `draw_psf_variants`) each cutout picks one of, or the variants
        ``(defocus_nm, strut_angle_deg)`` themselves.
    background_mu : float, optional
        Mean V surface brightness of the diffuse light, mag/arcsec^2.
    background_age : (float, float), optional
        log10(age) range of the diffuse light's population.
    field_star_density : float, optional
        Faint resolved stars per cutout at 10 Mpc and 21.5 mag/arcsec^2.
    background : bool, optional
        Add the host galaxy: diffuse light and field stars (default True);
        False leaves the objects (and neighbours) on an empty sky, e.g. to
        check photometry.
    noise : bool, optional
        Add noise (default True); False gives the expected image.
    drizzle : bool, optional
        Drizzle dithered exposures (correlated noise; default True).
    pixfrac : float, optional
        Drizzle drop size (default 1).
    optics : HSTOpticsModel, optional
        PSF model parameters.
    pixel_scale : float, optional
        Arcsec per pixel.

    Returns
    -------
    data : ndarray (N, B, size, size) float32
    truth : `~astropy.table.QTable`
        The population's columns (see `draw_population`), ``label`` (the
        true class), ``x_offset``, ``y_offset`` (light centroid minus cutout
        centre, pixels) and every other draw: PSF variant, focus and roll,
        diffuse-light parameters, neighbours, field stars, dithers, chip edge.

    Examples
    --------
    >>> from astro_clustercls.simulation.render_alt import render_cutouts
    >>> data, truth = render_cutouts(4, bands=['F555W', 'F814W'], size=15,
    ...                              seed=1, psf_variants=1)
    >>> data.shape, data.dtype.name, len(truth)
    ((4, 2, 15, 15), 'float32', 4)
    """
    size = validate_positive_int("size", size)
    if size % 2 == 0 or size < 9:
        raise ValueError(f"'size' must be odd and >= 9, got {size}")
    rng = np.random.default_rng(seed)
    bands = tuple(str(b).upper() for b in bands)
    nb = len(bands)
    p = params or DEFAULT_PARAMETERS
    conditions = DEFAULT_CONDITIONS if conditions is None else conditions
    if not isinstance(conditions, ObservingConditions):
        raise TypeError("'conditions' must be an ObservingConditions")
    table, comp = _as_population(population_or_n, rng, bands, distance, classes, p)
    n = len(table["cluster_class"])
    dist = np.asarray(table["distance"], float)

    # where the cutout is centred: the light centroid plus a detection error
    off = (
        rng.normal(0.0, position_jitter, (2, n))
        if position_jitter
        else np.zeros((2, n))
    )
    comp = Components.concatenate([comp])  # a copy
    comp.dx += off[0][comp.obj]
    comp.dy += off[1][comp.obj]

    if isinstance(psf_variants, int | np.integer):
        variants = draw_psf_variants(psf_variants, rng)
    else:
        variants = [(float(d), float(a)) for d, a in psf_variants]
    which = rng.integers(0, len(variants), n)
    psfs = [
        [
            tabulated_psf(
                b, defocus_nm=d, strut_angle=a, optics=optics, pixel_scale=pixel_scale
            )
            for b in bands
        ]
        for d, a in variants
    ]

    light, bg_truth = diffuse_light(
        n,
        size,
        bands,
        rng,
        mu=background_mu,
        age_range=background_age,
        pixel_scale=pixel_scale,
    )
    if not background:
        light[:] = 0.0
        bg_truth["background_v"] = np.zeros(n)
    neigh, n_neigh, neigh_dist = _neighbours(n, size, rng, bands, dist, p, crowding)
    stars, n_stars = field_stars(
        n, size, bands, rng, dist, bg_truth["background_v"], density=field_star_density
    )
    parts = [comp, stars] + ([neigh] if neigh is not None else [])
    scene = Components.concatenate(parts)

    data = np.zeros((n, nb, size, size), np.float32)
    img = galsim.ImageF(size, size, scale=pixel_scale)
    for i, (profs, flux) in enumerate(
        object_profiles(scene, n, pixel_scale=pixel_scale)
    ):
        if not profs:
            continue
        for j in range(nb):
            terms = [f * pr for pr, f in zip(profs, flux[:, j], strict=True) if f > 0]
            if not terms:
                continue
            obj = galsim.Add(terms) if len(terms) > 1 else terms[0]
            galsim.Convolve(obj, psfs[which[i]][j]).drawImage(image=img, method="auto")
            data[i, j] = img.array
    data += light

    # artefacts: at the cutout pixel nearest their described offset
    c = size // 2
    arts = (
        comp.art_obj,
        comp.art_band,
        c + comp.art_dx + np.rint(off[0][comp.art_obj]).astype(np.intp),
        c + comp.art_dy + np.rint(off[1][comp.art_obj]).astype(np.intp),
        comp.art_flux,
    )
    n_exp = int(conditions.n_exp)
    if noise:
        nz, dithers = drizzled_noise(
            data,
            bands,
            conditions,
            rng,
            pixfrac=pixfrac,
            drizzle=drizzle,
            artifacts=arts,
        )
    else:
        nz, dithers = None, np.zeros((n, nb, n_exp, 2))
        a_obj, a_band, a_x, a_y, a_peak = arts
        on = (a_x >= 0) & (a_x < size) & (a_y >= 0) & (a_y < size)
        np.add.at(
            data,
            (a_obj[on], a_band[on], a_y[on], a_x[on]),
            a_peak[on].astype(np.float32),
        )

    # chip edges: NaN beyond a line 1.5-6 px from the centre; the last pixels
    # before it are covered by fewer exposures (noisier)
    edge = np.asarray(table["edge"], bool)
    edge_phi = np.full(n, np.nan)
    edge_d = np.full(n, np.nan)
    k = np.flatnonzero(edge)
    if k.size:
        edge_phi[k] = rng.uniform(0, 2 * np.pi, k.size)
        edge_d[k] = rng.uniform(1.5, 6.0, k.size)
        yy, xx = np.mgrid[:size, :size] - c
        proj = (
            xx[None] * np.cos(edge_phi[k])[:, None, None]
            + yy[None] * np.sin(edge_phi[k])[:, None, None]
        )
        beyond = proj > edge_d[k, None, None]
        near = (proj > edge_d[k, None, None] - 1.5) & ~beyond
        if nz is not None:
            nz[k] = np.where(near[:, None], nz[k] * np.sqrt(2.0), nz[k])
        data[k] = np.where(beyond[:, None], np.nan, data[k])
    if nz is not None:
        data += nz

    truth = QTable({key: np.asarray(v) for key, v in table.items()})
    truth["label"] = np.asarray(table["cluster_class"], int)
    truth["x_offset"] = off[0]
    truth["y_offset"] = off[1]
    truth["psf_variant"] = which
    truth["psf_defocus_nm"] = np.array([variants[w][0] for w in which])
    truth["psf_strut_angle"] = np.array([variants[w][1] for w in which])
    for key, v in bg_truth.items():
        truth[key] = v
    truth["n_neighbours"] = n_neigh
    truth["neighbour_min_distance"] = neigh_dist
    truth["n_field_stars"] = n_stars
    truth["edge_angle"] = edge_phi
    truth["edge_distance"] = edge_d
    truth["dither"] = dithers.astype(np.float32)
    truth.meta["renderer"] = f"galsim {galsim.__version__}"
    truth.meta["psf_variants"] = variants
    return data, truth
