# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Fast labelled training sets: many small multi-band cutouts with true classes.

Objects are rendered straight into small stamps (`_render.StampRenderer`, one
inverse FFT per stamp and band), on a local patch of diffuse galaxy light with
a gradient and lumps, with crowding neighbours, sky-subtracted Poisson + read
noise; no big field is made. ``held_out=True`` gives the stamps of a different
"galaxy", as NGC 1559 was for Wei et al. (2020): another distance, a brighter
and differently coloured background, shallower data and a slightly broader PSF.
"""

from dataclasses import dataclass, field

import numpy as np
from astropy.table import QTable

from .._constants import DEFAULT_BANDS
from ..utils._meta import get_meta
from ..utils._parameters import validate_positive_int
from . import _fourier
from ._render import KIND_GAUSS, Components, StampRenderer
from ._training_v2 import (
    DOMAIN_RANDOMISATION,
    fix_v2_photometry,
    make_stamps_v2,
)
from ._version import resolve_version
from .label_noise import apply_label_noise
from .measure import legus_selection, quick_measure
from .observing import (
    DEFAULT_CONDITIONS,
    ObservingConditions,
    surface_brightness_to_rate,
)
from .photometry import mag_to_flux
from .populations import (
    _crowding_neighbours,
    draw_population,
    parameters_for,
    ssp_colours,
)
from .psf import get_psf

__all__ = [
    "TrainingSet",
    "make_training_set",
    "HELD_OUT_GALAXY",
    "DOMAIN_RANDOMISATION",
]

#: How the held-out galaxy differs (cf. NGC 1559: ~19 Mpc, bright, dusty disk).
#: Ranges of the observing conditions drawn with ``vary_conditions=True``:
#: exposure depth factor (log-uniform), diffuse-light surface brightness in
#: V mag/arcsec^2 and PSF width factor (uniform).
VARY_CONDITIONS = {"depth_scale": (0.5, 1.5), "background_mu": (19.8, 22.5),
                   "psf_scale": (0.95, 1.12)}
#: Objects per draw of the conditions.
VARY_CONDITIONS_BLOCK = 256

HELD_OUT_GALAXY = {
    "distance": 19.0,
    "background_mu": 20.3,
    "depth_scale": 0.6,
    "psf_scale": 1.07,
    "background_age": (7.0, 8.5),
}


@dataclass
class TrainingSet:
    """
    A labelled set of simulated cutouts.

    Attributes
    ----------
    data : ndarray (N, B, S, S) float32
        Cutouts in electron/s (sky-subtracted, diffuse light kept; NaN where a
        chip edge cuts the stamp).
    labels : ndarray (N,) int
        Labels 1-4 as a human would give them (noisy if ``label_noise``).
    true_labels : ndarray (N,) int
        The classes the objects were drawn from.
    table : `~astropy.table.QTable`
        Per-object parameters (see `draw_population`) plus ``x_offset``,
        ``y_offset`` (true light centroid minus the cutout centre, pixels),
        ``background_v`` and ``label``.
    bands : tuple of str
    size : int
    """

    data: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    table: QTable
    bands: tuple
    size: int
    meta: dict = field(default_factory=dict)

    def __len__(self):
        return self.labels.size


def _background_patch(n, size, rng, bands, *, mu, mu_sigma, age_range):
    """Diffuse light per stamp: level, colour, gradient. (n, B, S, S) float32."""
    level_v = surface_brightness_to_rate(rng.normal(mu, mu_sigma, n), "F555W")
    la = rng.uniform(*age_range, n)
    col = ssp_colours(la, bands, ebv=np.abs(rng.normal(0, 0.15, n)))
    zp = np.array([float(mag_to_flux(0.0, b)) for b in bands])
    zpv = float(mag_to_flux(0.0, "F555W"))
    per_band = level_v[:, None] * (zp / zpv)[None, :] * 10 ** (-0.4 * col)
    c = size // 2
    g = (np.arange(size, dtype=np.float32) - c) / size
    gx, gy = rng.normal(0, 0.35, (2, n)).astype(np.float32)
    plane = (
        1.0
        + gx[:, None, None] * g[None, None, :]
        + gy[:, None, None] * g[None, :, None]
    )
    plane = np.clip(plane, 0.05, None)
    return (per_band[:, :, None, None] * plane[:, None]).astype(np.float32), level_v


def _neighbours_and_lumps(n, size, rng, bands, distance, params, crowding, level_v):
    """Crowding neighbours and diffuse lumps as extra components on each stamp."""
    neighbours, _ = _crowding_neighbours(n, rng, bands, distance, params, crowding,
                                         0.75 * size)
    parts = [] if neighbours is None else [neighbours]
    nl = rng.poisson(1.5, n)
    lh = np.repeat(np.arange(n), nl)
    if lh.size:
        la = rng.uniform(6.8, 8.5, lh.size)
        col = ssp_colours(la, bands)
        sig = rng.uniform(2.5, 6.0, lh.size)
        amp = level_v[lh] * rng.uniform(0.2, 1.2, lh.size)  # peak V rate per pixel
        fv = amp * 2 * np.pi * sig**2
        zp = np.array([float(mag_to_flux(0.0, b)) for b in bands])
        zpv = float(mag_to_flux(0.0, "F555W"))
        flux = fv[:, None] * (zp / zpv)[None, :] * 10 ** (-0.4 * col)
        r = rng.uniform(0, 0.6 * size, lh.size)
        ang = rng.uniform(0, 2 * np.pi, lh.size)
        m = lh.size
        parts.append(
            Components(
                obj=lh,
                kind=np.full(m, KIND_GAUSS),
                dx=r * np.cos(ang),
                dy=r * np.sin(ang),
                size=sig,
                q=rng.uniform(0.4, 1, m),
                theta=rng.uniform(0, np.pi, m),
                beta_idx=np.zeros(m, np.intp),
                flux=flux,
            )
        )
    return parts


def _make_stamps(
    n,
    size,
    rng,
    *,
    bands,
    distance,
    classes,
    params,
    conditions,
    psf_scale,
    psf_jitter,
    background_mu,
    background_age,
    crowding,
    position_jitter,
    pad=None,
):
    """Render n labelled stamps. Returns data, variance, table dict."""
    tab, comp = draw_population(
        n, rng=rng, bands=bands, distance=distance, classes=classes, params=params
    )
    # where the cutout is centred: on the light centroid, plus a detection error
    off = (
        rng.normal(0, position_jitter, (2, n)) if position_jitter else np.zeros((2, n))
    )
    comp.dx += off[0][comp.obj]
    comp.dy += off[1][comp.obj]
    comp.art_dx = comp.art_dx + np.rint(off[0][comp.art_obj]).astype(np.intp)
    comp.art_dy = comp.art_dy + np.rint(off[1][comp.art_obj]).astype(np.intp)
    bg, level_v = _background_patch(
        n, size, rng, bands, mu=background_mu, mu_sigma=0.6, age_range=background_age
    )
    extra = _neighbours_and_lumps(
        n, size, rng, bands, tab["distance"], params, crowding, level_v
    )
    allc = Components.concatenate([comp] + extra) if extra else comp
    scale = (
        psf_scale * (1.0 + psf_jitter * rng.standard_normal())
        if psf_jitter
        else psf_scale
    )
    psfs = [get_psf(b).scaled(scale) for b in bands]
    renderer = StampRenderer(psfs, size, pad=pad)
    img = renderer.render(allc, n)
    img += bg
    var = np.empty_like(img)
    for j, b in enumerate(bands):
        var[:, j] = conditions.variance(b, img[:, j])
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= np.sqrt(var)
    img += noise
    # chip edges: a NaN half-plane 1.5-6 px from the object
    edge = np.flatnonzero(tab["edge"])
    if edge.size:
        c = size // 2
        yy, xx = np.mgrid[:size, :size].astype(np.float32) - c
        phi = rng.uniform(0, 2 * np.pi, edge.size)
        d = rng.uniform(1.5, 6.0, edge.size)
        cut = (
            xx[None] * np.cos(phi)[:, None, None]
            + yy[None] * np.sin(phi)[:, None, None]
        ) > d[:, None, None]
        img[edge] = np.where(cut[:, None], np.nan, img[edge])
    tab["x_offset"] = off[0]
    tab["y_offset"] = off[1]
    tab["background_v"] = level_v
    tab["psf_scale"] = np.full(n, scale)
    return img, var, tab


def _select(img, tab, meas, bands, want):
    """The first ``want`` stamps (and their table rows) that LEGUS would select."""
    keep = legus_selection(meas, tab["distance"], bands)
    idx = np.flatnonzero(keep)[:want]
    return img[idx], {k: v[idx] for k, v in tab.items()}


def _assemble(datas, tabs, n, label_noise, rng):
    """The first ``n`` stamps of the chunks, their true and human labels, the table."""
    data = np.concatenate(datas)[:n]
    cat = {k: np.concatenate([t[k] for t in tabs])[:n] for k in tabs[0]}
    true = cat["cluster_class"].astype(int)
    labels = apply_label_noise(true, label_noise, rng=rng)
    table = QTable(cat)
    table["label"] = labels
    return data, true, labels, table


def _set_meta(version, seed, held_out, label_noise, bands, size, **extra):
    """The provenance of a training set (its table's meta)."""
    return get_meta(
        simulator_version=version,
        seed=None if seed is None else (seed if isinstance(seed, int) else "generator"),
        held_out=bool(held_out),
        label_noise=(label_noise if label_noise is None or isinstance(label_noise, str)
                     else "matrix"),
        bands=list(bands),
        size=size,
        **extra,
    )


def make_training_set(
    n,
    size=31,
    seed=None,
    *,
    bands=DEFAULT_BANDS,
    classes=None,
    class_balance="legus",
    held_out=False,
    label_noise=None,
    distance=None,
    params=None,
    conditions=None,
    crowding=0.8,
    position_jitter=0.25,
    psf_jitter=0.03,
    select=False,
    chunk=4096,
    vary_conditions=False,
    simulator=None,
    psfs=None,
    randomise=True,
):
    """
    Make ``n`` labelled multi-band cutouts of simulated cluster candidates.

    Parameters
    ----------
    n : int
        Number of cutouts.
    size : int, optional
        Cutout side in pixels (odd; default 31).
    seed : int or `numpy.random.Generator`, optional
        Random seed: the same seed gives the same set.
    bands : sequence of str, optional
        Band names (default ``DEFAULT_BANDS``).
    classes : sequence of int, optional
        Classes to make (default all four).
    class_balance : 'legus', 'equal' or sequence of 4 float, optional
        Class fractions: LEGUS's (15/19/19/47 %), equal, or given.
    held_out : bool, optional
        Make the held-out galaxy (`HELD_OUT_GALAXY`): other distance,
        background, depth and PSF.
    label_noise : None, 'single_expert', 'consensus' or (4, 4) array, optional
        Relabel as human experts would (`apply_label_noise`).
    distance : float, (min, max), 'legus' or None, optional
        Distance in Mpc (default: log-uniform 4-23 Mpc, the PHANGS range, for
        v1 and 3-25 Mpc for v2; 19 Mpc when ``held_out``).
    params : PopulationParameters, optional
        Per-class distributions (default: the calibrated ones).
    conditions : ObservingConditions, optional
        Depth and noise (default LEGUS-like; shallower when ``held_out``).
    crowding : float, optional
        Mean number of neighbouring objects per cutout (default 0.8).
    position_jitter : float, optional
        rms error (pixels) of the catalog position the cutout is centred on.
    psf_jitter : float, optional
        Relative rms of the PSF width change per chunk (default 0.03).
    select : bool, optional
        Keep only objects that pass the LEGUS candidate selection (CI above
        1.3, M_V < -6, detected in >= 4 bands; measured on the cutouts); more
        objects are drawn to make up ``n``. Default False.
    chunk : int, optional
        Objects rendered at a time (memory vs speed).
    vary_conditions : bool, optional
        Draw the observing conditions anew for every block of
        `VARY_CONDITIONS_BLOCK` objects: exposure depth log-uniform over
        ``VARY_CONDITIONS['depth_scale']``, diffuse-light surface brightness
        and PSF width scale uniform over their ranges (plausible spreads
        between HST fields). Training on such a set teaches a network fields
        it has not seen. Ignored with ``held_out`` and by simulator v2
        (which always varies them, see ``randomise``). Default False.
    simulator : {'v1', 'v2'} or None, optional
        Simulator version (also ``'1.0'``, ``'2.0'``). None: the version of
        ``params`` if given, else v1 (`SIMULATOR_VERSION`, what the bundled
        networks were trained on). v2 draws young populations star by star,
        loose associations, crowded neighbourhoods (field stars, HII regions,
        dust lanes) and randomises the observing set-up per block of objects
        (see `DOMAIN_RANDOMISATION`), recording every draw in ``table``.
    psfs : dict or sequence, optional
        v2 only: the PSF of each band, objects with ``otf(ky, kx,
        pixel=True)`` and ``scaled(factor)`` (e.g. `MoffatPSF`, or tabulated
        instrument PSFs): a dict band -> PSF (bands missing from it, e.g. the
        ACS substitutes F435W/F606W, use `get_psf`) or one PSF per band in
        ``bands`` order. Default `get_psf` for every band.
    randomise : bool or dict, optional
        v2 only: True (default) draws the observing set-up per block within
        `DOMAIN_RANDOMISATION`; a dict overrides some of those ranges; False
        fixes one nominal set-up (WFC3 bands, LEGUS exposures, white noise,
        nominal PSFs and zeropoints, no artefacts) but keeps the crowded
        neighbourhoods.

    Returns
    -------
    TrainingSet

    Examples
    --------
    >>> from astro_clustercls.simulation import make_training_set
    >>> ts = make_training_set(8, 15, seed=1)
    >>> ts.data.shape, ts.data.dtype.name, ts.labels.shape
    ((8, 5, 15, 15), 'float32', (8,))
    >>> bool(((ts.labels >= 1) & (ts.labels <= 4)).all())
    True
    """
    n = validate_positive_int("n", n)
    size = validate_positive_int("size", size)
    if size % 2 == 0 or size < 9:
        raise ValueError(f"'size' must be odd and >= 9, got {size}")
    rng = np.random.default_rng(seed)
    bands = tuple(str(b).upper() for b in bands)
    version = resolve_version(simulator, params)
    p = params or parameters_for(version)
    if isinstance(class_balance, str):
        if class_balance == "legus":
            fractions = p.class_fractions
        elif class_balance == "equal":
            fractions = (0.25, 0.25, 0.25, 0.25)
        else:
            raise ValueError(
                "'class_balance' must be 'legus', 'equal' or 4 fractions, "
                f"got {class_balance!r}"
            )
    else:
        fractions = tuple(float(f) for f in class_balance)
        if len(fractions) != 4 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ValueError("'class_balance' must hold 4 non-negative fractions")
    p = p.copy(class_fractions=fractions)
    classes = [1, 2, 3, 4] if classes is None else list(np.atleast_1d(classes))
    if conditions is None:
        conditions = DEFAULT_CONDITIONS
    if not isinstance(conditions, ObservingConditions):
        raise TypeError("'conditions' must be an ObservingConditions")
    bg_mu, bg_age, psf_scale = 21.5, (7.5, 9.5), 1.0
    if held_out:
        h = HELD_OUT_GALAXY
        distance = h["distance"] if distance is None else distance
        conditions = conditions.scaled(h["depth_scale"])
        bg_mu, bg_age, psf_scale = (
            h["background_mu"],
            h["background_age"],
            h["psf_scale"],
        )
    elif distance is None:
        distance = (4.0, 23.0) if version == "1.0" else (3.0, 25.0)
    if version == "2.0":
        return _make_training_set_v2(
            n, size, rng, seed=seed, bands=bands, classes=classes, params=p,
            held_out=held_out, label_noise=label_noise, distance=distance,
            conditions=conditions, crowding=crowding,
            position_jitter=position_jitter, select=select, chunk=chunk,
            psfs=psfs, randomise=randomise,
        )
    vary = bool(vary_conditions) and not held_out
    if vary:
        chunk = min(chunk, VARY_CONDITIONS_BLOCK)
    datas, tabs, got = [], [], 0
    while got < n:
        want = min(chunk, n - got)
        m = want if not select else int(want * 2.5) + 16
        if vary:
            lo, hi = VARY_CONDITIONS["depth_scale"]
            chunk_conditions = conditions.scaled(
                np.exp(rng.uniform(np.log(lo), np.log(hi))))
            chunk_bg_mu = rng.uniform(*VARY_CONDITIONS["background_mu"])
            chunk_psf_scale = rng.uniform(*VARY_CONDITIONS["psf_scale"])
        else:
            chunk_conditions, chunk_bg_mu, chunk_psf_scale = (conditions, bg_mu,
                                                              psf_scale)
        img, var, tab = _make_stamps(
            m,
            size,
            rng,
            bands=bands,
            distance=distance,
            classes=classes,
            params=p,
            conditions=chunk_conditions,
            psf_scale=chunk_psf_scale,
            psf_jitter=psf_jitter,
            background_mu=chunk_bg_mu,
            background_age=bg_age,
            crowding=crowding,
            position_jitter=position_jitter,
        )
        tab["depth_scale"] = np.full(m, chunk_conditions.depth_scale)
        tab["background_mu"] = np.full(m, chunk_bg_mu)
        tab["psf_scale"] = np.full(m, chunk_psf_scale)
        if select:
            img, tab = _select(img, tab, quick_measure(img, var, bands), bands, want)
        datas.append(img)
        tabs.append(tab)
        got += img.shape[0]
    data, true, labels, table = _assemble(datas, tabs, n, label_noise, rng)
    meta = _set_meta(_version(), seed, held_out, label_noise, bands, size)
    table.meta.update(meta)
    return TrainingSet(
        data=data,
        labels=labels,
        true_labels=true,
        table=table,
        bands=bands,
        size=size,
        meta=meta,
    )


def _version():
    return "1.0"


def _make_training_set_v2(
    n, size, rng, *, seed, bands, classes, params, held_out, label_noise,
    distance, conditions, crowding, position_jitter, select, chunk, psfs,
    randomise,
):
    """The simulator-v2 branch of `make_training_set`."""
    fixed = None
    if held_out:
        h = HELD_OUT_GALAXY
        # one galaxy, one observation: the set-up is fixed, not randomised
        fixed = {
            "psf_scale": h["psf_scale"],
            "psf_band": 1.0,
            "background_mu": h["background_mu"],
            "depth_scale": 1.0,
            "noise_corr": 0.3,
            "zp": 0.0,
            "acs_b": False,
            "acs_v": False,
            "exposure_set": "legus",
            # a real galaxy is seen through the instrument's PSF
            "instrument_psf": True,
            "pixfrac": 0.8,
        }
    datas, tabs, got = [], [], 0
    while got < n:
        want = min(chunk, n - got)
        m = want if not select else int(want * 2.5) + 16
        img, var, tab = make_stamps_v2(
            m,
            size,
            rng,
            bands=bands,
            distance=distance,
            classes=classes,
            params=params,
            conditions=conditions,
            psfs=psfs,
            randomise=randomise,
            crowding=crowding,
            position_jitter=position_jitter,
            fixed=fixed,
        )
        if select:
            meas = fix_v2_photometry(quick_measure(img, var, bands), tab, bands)
            img, tab = _select(img, tab, meas, bands, want)
        datas.append(img)
        tabs.append(tab)
        got += img.shape[0]
    data, true, labels, table = _assemble(datas, tabs, n, label_noise, rng)
    meta = _set_meta("2.0", seed, held_out, label_noise, bands, size,
                     randomise=randomise if isinstance(randomise, bool)
                     else dict(randomise))
    table.meta.update(meta)
    return TrainingSet(
        data=data,
        labels=labels,
        true_labels=true,
        table=table,
        bands=bands,
        size=size,
        meta=meta,
    )


_ = _fourier  # keep import (the table is built lazily on first use)
