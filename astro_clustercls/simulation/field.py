# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated multi-band HST fields with true cluster classes.

`simulate_field` builds five WFC3/UVIS-like drizzled mosaics on one 0.04"/px
TAN grid, in electron/s (sky-subtracted): an exponential disk with
logarithmic spiral arms (bluer arms, redder disk), objects of the four classes
placed preferentially on the arms (crowding), each band's PSF, Poisson + read
noise for each band's depth, and a NaN chip gap.
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable, vstack
from astropy.wcs import WCS

from .._constants import DEFAULT_BANDS, PIXEL_SCALE
from ..data.images import BandImages
from ..utils._meta import get_meta
from ..utils._parameters import as_pair, validate_positive_int
from ..utils._progress_bars import add_progress_bar
from ._field_v2 import attenuate, field_environment, field_setup, observe, v_index
from ._render import KIND_POINT, Components, StampRenderer
from ._training_v2 import _psf_for, _slot_bands
from ._version import resolve_version
from .observing import (
    DEFAULT_CONDITIONS,
    PHANGS_EXPTIME,
    ObservingConditions,
    surface_brightness_to_rate,
)
from .photometry import canonical_band, flux_to_mag, mag_to_flux
from .populations import draw_population, parameters_for, ssp_colours
from .psf import get_psf

__all__ = ["simulate_field", "make_wcs", "paint_objects", "field_bands",
           "ACS_SLOTS"]

_STAMP = 63

#: The WFC3/UVIS band whose place each ACS/WFC band can take (``acs_bands``).
ACS_SLOTS = {"F435W": "F438W", "F606W": "F555W"}


def _acs_bands(acs_bands, bands):
    """Validate ``acs_bands``: a tuple of ACS bands whose slot is in ``bands``."""
    if acs_bands is None or acs_bands is False:
        return ()
    if acs_bands is True:
        acs = [b for b in ACS_SLOTS if ACS_SLOTS[b] in bands]
    else:
        acs = [acs_bands] if isinstance(acs_bands, str) else list(acs_bands)
        acs = [str(b).strip().upper() for b in acs]
    for b in acs:
        if b not in ACS_SLOTS:
            raise ValueError(f"'acs_bands' must be among {sorted(ACS_SLOTS)} (or "
                             f"True for both), got {acs_bands!r}")
        if ACS_SLOTS[b] not in bands:
            raise ValueError(f"'acs_bands' {b!r} takes the place of {ACS_SLOTS[b]}, "
                             f"which is not among the field's bands {bands}")
    return tuple(dict.fromkeys(acs))


def field_bands(bands=DEFAULT_BANDS, acs_bands=None):
    """
    The bands of a field from `simulate_field` (true filter names).

    Parameters
    ----------
    bands : sequence of str, optional
        The bands asked for (default ``DEFAULT_BANDS``).
    acs_bands : str, sequence of str or bool, optional
        As in `simulate_field`: ACS/WFC bands taking the place of their
        WFC3/UVIS neighbours (`ACS_SLOTS`).

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> from astro_clustercls.simulation.field import field_bands
    >>> field_bands(acs_bands='F606W')
    ('F275W', 'F336W', 'F438W', 'F606W', 'F814W')
    """
    bands = tuple(str(b).upper() for b in bands)
    acs = _acs_bands(acs_bands, bands)
    return _slot_bands(bands, "F435W" in acs, "F606W" in acs)


def make_wcs(shape, *, ra=150.0, dec=2.0, pixel_scale=PIXEL_SCALE):
    """
    A north-up TAN WCS for an image of ``shape`` (ny, nx), centred on (ra, dec).

    Examples
    --------
    >>> from astro_clustercls.simulation.field import make_wcs
    >>> w = make_wcs((100, 100))
    >>> round(float(abs(w.wcs.cdelt[0]) * 3600), 5)
    0.03962
    """
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    w.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    w.wcs.cunit = ["deg", "deg"]
    return w


def paint_objects(shape, bands, comp, x, y, *, psfs=None, stamp=_STAMP,
                  progress=None):
    """
    Render objects (their `Components`) into noise-free images at (x, y).

    Returns an ndarray (B, ny, nx) float64 in electron/s. Positions are
    0-based pixel coordinates of each object's reference point (its light
    centroid in V). ``progress``, a tqdm bar (anything with ``update(n)``),
    is advanced by the number of objects of each chunk rendered.
    """
    psfs = psfs or [get_psf(b) for b in bands]
    ny, nx = shape
    out = np.zeros((len(bands), ny, nx))
    n = np.size(x)
    if n == 0:
        return out
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    comp.dx = comp.dx + (np.asarray(x) - ix)[comp.obj]
    comp.dy = comp.dy + (np.asarray(y) - iy)[comp.obj]
    # integer shifts of artefacts are unchanged (they sit on whole pixels)
    renderer = StampRenderer(psfs, stamp, pad=2 * stamp + 2)
    h = stamp // 2
    for lo in range(0, n, 256):
        hi = min(n, lo + 256)
        objects = np.arange(n)
        sub = comp.subset((objects >= lo) & (objects < hi))
        stamps = renderer.render(sub, hi - lo)
        for k in range(hi - lo):
            x0, y0 = ix[lo + k] - h, iy[lo + k] - h
            xa, ya = max(x0, 0), max(y0, 0)
            xb, yb = min(x0 + stamp, nx), min(y0 + stamp, ny)
            if xa >= xb or ya >= yb:
                continue
            out[:, ya:yb, xa:xb] += stamps[k][:, ya - y0 : yb - y0, xa - x0 : xb - x0]
        if progress is not None:
            progress.update(hi - lo)
    return out


def _galaxy_light(shape, bands, rng, *, kind, mu0):
    """Diffuse light (B, ny, nx) in electron/s/pixel and the arm-density map."""
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx].astype(float)
    if kind == "none":
        return np.zeros((len(bands), ny, nx)), np.ones(shape)
    # galaxy centre somewhere around / outside the field, disk scale ~ field size
    cx = nx * rng.uniform(-0.3, 0.3) + nx / 2
    cy = ny * rng.uniform(-0.3, 0.3) + ny / 2
    h = max(nx, ny) * rng.uniform(0.5, 1.0)
    r = np.hypot(xx - cx, yy - cy) + 1.0
    phi = np.arctan2(yy - cy, xx - cx)
    disk = np.exp(-r / h)
    if kind == "spiral":
        pitch = np.deg2rad(rng.uniform(12, 25))
        phase = rng.uniform(0, 2 * np.pi)
        arg = 2 * (phi - np.log(r / 10.0) / np.tan(pitch)) + phase
        arms = np.clip(np.cos(arg), 0, None) ** 3 * np.exp(-r / (2 * h))
    elif kind == "disk":
        arms = np.zeros(shape)
    elif kind == "gradient":
        g = rng.normal(0, 1, 2)
        disk = np.clip(
            1 + 0.5 * (g[0] * (xx / nx - 0.5) + g[1] * (yy / ny - 0.5)), 0.1, None
        )
        arms = np.zeros(shape)
    else:
        raise ValueError(
            f"'background' must be 'spiral', 'disk', 'gradient' or 'none', got {kind!r}"
        )
    disk = disk / disk.max()
    level = float(surface_brightness_to_rate(mu0, "F555W"))
    old = ssp_colours(9.6, bands, ebv=0.1)
    young = ssp_colours(7.3, bands, ebv=0.2)
    zp = np.array([float(mag_to_flux(0.0, b)) for b in bands])
    zpv = float(mag_to_flux(0.0, "F555W"))
    c_old = (zp / zpv) * 10 ** (-0.4 * old)
    c_young = (zp / zpv) * 10 ** (-0.4 * young)
    light = level * (
        disk[None] * c_old[:, None, None] + 0.8 * arms[None] * c_young[:, None, None]
    )
    density = 0.25 * disk / disk.max() + (arms / arms.max() if arms.max() > 0 else 0)
    return light, density


def _chip_gap(shape, rng, width):
    """Boolean mask of a slightly tilted NaN band across the image (a chip gap)."""
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx].astype(float)
    y0 = rng.uniform(0.3, 0.7) * ny
    slope = rng.uniform(-0.05, 0.05)
    dist = yy - (y0 + slope * (xx - nx / 2))
    return (dist > -width / 2) & (dist < width / 2), (y0, slope)


def simulate_field(
    seed=None,
    *,
    distance=10.0,
    n_objects=200,
    shape=(512, 512),
    bands=DEFAULT_BANDS,
    classes=None,
    class_balance="legus",
    params=None,
    conditions=None,
    background="spiral",
    background_mu=20.5,
    chip_gap=True,
    psf_jitter=0.03,
    ra=150.0,
    dec=2.0,
    border=8,
    simulator=None,
    psfs=None,
    randomise=True,
    acs_bands=None,
    progress_bar=False,
):
    """
    Simulate a multi-band HST field with star-cluster candidates of known class.

    Parameters
    ----------
    seed : int or `numpy.random.Generator`, optional
        Random seed (same seed, same field).
    distance : float, optional
        Distance of the galaxy in Mpc (default 10).
    n_objects : int, optional
        Number of objects (default 200).
    shape : int or (ny, nx), optional
        Image shape in pixels (default 512 x 512).
    bands : sequence of str, optional
        Default ``DEFAULT_BANDS``.
    classes : sequence of int, optional
        Classes to include (default all four).
    class_balance : 'legus', 'equal' or 4 fractions, optional
    params : PopulationParameters, optional
    conditions : ObservingConditions, optional
        Depth, sky, read noise (default LEGUS-like).
    background : {'spiral', 'disk', 'gradient', 'none'}, optional
        Diffuse galaxy light (default a disk with spiral arms).
    background_mu : float, optional
        Peak V surface brightness of the diffuse light, mag/arcsec^2.
    chip_gap : bool or float, optional
        Add a NaN chip gap (True: ~1.2" wide, i.e. 30 px, or 5 % of the
        image height if smaller; a float gives the width in pixels).
    psf_jitter : float, optional
        Relative rms change of the PSF width for this field.
    ra, dec : float, optional
        Field centre (deg).
    border : int, optional
        Objects are placed at least this far (px) inside the image.
    simulator : {'v1', 'v2'} or None, optional
        Simulator version (None: that of ``params``, else v1). v2 adds
        young populations star by star, loose associations, resolved field
        stars (young ones denser in the arms, old red giants), HII regions,
        dust lanes along the arms, drizzle-correlated noise, cosmic-ray
        residuals and hot pixels, and draws the field's observing set-up
        (PSF width, noise correlation, zeropoint offsets, exposures) as
        `~astro_clustercls.simulation.make_training_set` does per block
        (``psf_jitter`` is then ignored); the draws are in the truth table.
    psfs : dict or sequence, optional
        v2 only: PSF per band (see `make_training_set`).
    randomise : bool or dict, optional
        v2 only: as in `make_training_set`.
    acs_bands : {'F435W', 'F606W'}, sequence of them, or bool, optional
        Observe the F438W slot with ACS/WFC F435W and/or the F555W slot with
        ACS/WFC F606W (True: both; default None: neither), as
        ``make_training_set(..., simulator='v2')`` does for some blocks: the
        light of the objects and of the field (diffuse light; with v2 also
        field stars, HII regions, dust), the PSF, zeropoint, sky and
        exposure are those of the ACS band. The images and truth columns
        carry the true filter names (``images.bands`` is
        ``field_bands(bands, acs_bands)``; classify with
        ``ClusterClassifier(..., bands={'F555W': 'F606W'})``);
        ``truth.meta['acs_bands']`` maps each substituted slot to its ACS
        band; each image's header has ``INSTRUME`` and ``DETECTOR``
        (``'ACS'``, ``'WFC'``) and ``BANDSLOT`` (the slot); v2 truth tables
        have the columns ``acs_F435W`` and ``acs_F606W``, as training sets.
    progress_bar : bool or None, optional
        Show a progress bar over the objects rendered (default False; None:
        ``astro_clustercls.conf.progress_bar``).

    Returns
    -------
    images : `~astro_clustercls.BandImages`
        One CCDData per band, electron/s, TAN WCS; NaN in the chip gap. Each
        one's ``meta`` holds FITS cards: ``FILTER``, ``INSTRUME``,
        ``DETECTOR``, ``EXPTIME`` (with v2 the exposure drawn for the field),
        ``BUNIT``, ``SIMVERS`` (simulator version), ``PSFSCALE``.
    truth : `~astropy.table.QTable`
        One row per object: ``x_centroid``, ``y_centroid`` (0-based light
        centroid in F555W), ``sky_centroid``, ``cluster_class``, ``subtype``,
        physical parameters and per-band ``flux_<band>`` / ``mag_<band>``.
        With v2, field stars brighter than M_V = -6 follow as class-4 rows of
        subtype ``field_star`` (``from_field`` True), so ``len(truth)`` can
        exceed ``n_objects``.

    Examples
    --------
    >>> from astro_clustercls.simulation import simulate_field
    >>> images, truth = simulate_field(seed=1, n_objects=10, shape=(96, 96))
    >>> images.bands
    ('F275W', 'F336W', 'F438W', 'F555W', 'F814W')
    >>> len(truth), str(images.unit)
    (10, 'electron / s')

    A v2 field with ACS/WFC F606W in the F555W slot:

    >>> images, truth = simulate_field(seed=1, n_objects=5, shape=(64, 64),
    ...                                simulator='v2', acs_bands='F606W')
    >>> images.bands
    ('F275W', 'F336W', 'F438W', 'F606W', 'F814W')
    >>> images['F606W'].meta['INSTRUME'], truth.meta['acs_bands']
    ('ACS', {'F555W': 'F606W'})
    """
    rng = np.random.default_rng(seed)
    shape = as_pair("shape", shape, lower_bound=(32, 32))
    n_objects = validate_positive_int("n_objects", n_objects)
    slots = tuple(str(b).upper() for b in bands)
    acs = _acs_bands(acs_bands, slots)
    bands = field_bands(slots, acs)
    conditions = conditions or DEFAULT_CONDITIONS
    if not isinstance(conditions, ObservingConditions):
        raise TypeError("'conditions' must be an ObservingConditions")
    version = resolve_version(simulator, params)
    p = params or parameters_for(version)
    if isinstance(class_balance, str):
        fr = {"legus": p.class_fractions, "equal": (0.25,) * 4}.get(class_balance)
        if fr is None:
            raise ValueError("'class_balance' must be 'legus', 'equal' or 4 fractions")
    else:
        fr = tuple(float(f) for f in class_balance)
    p = p.copy(class_fractions=fr)
    ny, nx = shape
    light, density = _galaxy_light(
        shape, bands, rng, kind=background, mu0=background_mu
    )
    gap = np.zeros(shape, bool)
    gap_line = None
    if chip_gap:
        width = min(30.0, max(6.0, 0.05 * ny)) if chip_gap is True else float(chip_gap)
        gap, gap_line = _chip_gap(shape, rng, width)
    tab, comp = draw_population(
        n_objects,
        rng=rng,
        bands=bands,
        distance=distance,
        classes=[1, 2, 3, 4] if classes is None else classes,
        params=p,
    )
    # positions: clusters follow the arms, class 4 mostly uniform; none in the gap
    is_cl = np.isin(tab["cluster_class"], [1, 2, 3])
    x = np.empty(n_objects)
    y = np.empty(n_objects)
    dmax = density.max()
    for i in range(n_objects):
        for _ in range(1000):
            xi = rng.uniform(border, nx - 1 - border)
            yi = rng.uniform(border, ny - 1 - border)
            if gap[int(round(yi)), int(round(xi))]:
                continue
            if tab["edge"][i] and gap_line is not None:
                # put edge objects 1.5-6 px from the gap
                y0, slope = gap_line
                w2 = width / 2
                side = rng.choice([-1, 1])
                yi = y0 + slope * (xi - nx / 2) + side * (w2 + rng.uniform(1.5, 6.0))
                if not border <= yi <= ny - 1 - border:
                    continue
                break
            if (
                not is_cl[i]
                or rng.random() < density[int(round(yi)), int(round(xi))] / dmax
            ):
                break
        x[i], y[i] = xi, yi
    bar = add_progress_bar(desc="simulating", total=n_objects,
                           progress_bar=progress_bar)
    try:
        if version == "2.0":
            images, psf_scale, extra_rows, extra_meta, exptime = _observe_v2(
                rng, shape, bands, comp, x, y, light, density, tab, gap,
                distance=distance, params=p, conditions=conditions, psfs=psfs,
                randomise=randomise, progress=bar,
            )
            tab["acs_F435W"] = np.full(n_objects, "F435W" in acs)
            tab["acs_F606W"] = np.full(n_objects, "F606W" in acs)
        else:
            psf_scale = 1.0 + psf_jitter * rng.standard_normal() if psf_jitter else 1.0
            psfs = [get_psf(b).scaled(psf_scale) for b in bands]
            model = paint_objects(shape, bands, comp, x, y, psfs=psfs, progress=bar)
            model += light
            images = {}
            for j, b in enumerate(bands):
                var = conditions.variance(b, model[j])
                img = (model[j] + rng.standard_normal(shape) * np.sqrt(var)).astype(
                    np.float32
                )
                img[gap] = np.nan
                images[b] = img
            extra_rows, extra_meta = None, {}
            exptime = {b: conditions.t(b) for b in bands}
    finally:
        if bar is not None:
            bar.close()
    wcs = make_wcs(shape, ra=ra, dec=dec)
    bimg = BandImages(images, wcs=wcs, unit=u.electron / u.s)
    for slot, b in zip(slots, bands, strict=True):
        instrument = canonical_band(b).split("/")[0]
        bimg[b].meta.update(
            {
                "FILTER": b,
                "INSTRUME": instrument,
                "DETECTOR": "WFC" if instrument == "ACS" else "UVIS",
                "EXPTIME": float(exptime[b]),
                "BUNIT": "ELECTRONS/S",
                "SIMVERS": version,
                "PSFSCALE": psf_scale,
            }
        )
        if slot != b:
            bimg[b].meta["BANDSLOT"] = slot
    truth = QTable()
    truth["id"] = np.arange(1, n_objects + 1)
    truth["x_centroid"] = x
    truth["y_centroid"] = y
    truth["sky_centroid"] = SkyCoord.from_pixel(x, y, wcs, origin=0)
    for k, v in tab.items():
        truth[k] = v
    if extra_rows is not None:
        truth = _append_field_stars(truth, extra_rows, wcs, bands)
    truth["distance"].unit = u.Mpc
    truth["reff_pc"].unit = u.pc
    truth["age"].unit = u.yr
    truth["mass"].unit = u.Msun
    for b in bands:
        truth[f"flux_{b}"].unit = u.electron / u.s
    truth.meta.update(
        get_meta(
            simulator_version=version,
            psf_scale=psf_scale,
            background=background,
            distance=distance,
            acs_bands={ACS_SLOTS[b]: b for b in acs},
            **extra_meta,
        )
    )
    return bimg, truth


def _observe_v2(rng, shape, bands, comp, x, y, light, density, tab, gap, *,
                distance, params, conditions, psfs, randomise, progress=None):
    """Simulator v2's field: environment, dust, set-up, noise, artefacts."""
    R, setup = field_setup(rng, bands, randomise)
    scale = setup["psf_scale"] * setup["psf_band"]
    psf_list = [
        _psf_for(psfs, b, b, j).scaled(round(float(scale[j]), 2))
        for j, b in enumerate(bands)
    ]
    model = paint_objects(shape, bands, comp, x, y, psfs=psf_list, progress=progress)
    envc, tx, ty, ebv, counts = field_environment(
        rng, shape, bands, distance, light, density, R, setup
    )
    # field stars and HII regions, in small stamps (they are compact)
    ntile = tx.size
    ex = tx[envc.obj] + envc.dx
    ey = ty[envc.obj] + envc.dy
    inside = (ex > -5) & (ex < shape[1] + 5) & (ey > -5) & (ey < shape[0] + 5)
    one = Components(
        obj=np.arange(inside.sum()),
        kind=envc.kind[inside],
        dx=np.zeros(inside.sum()),
        dy=np.zeros(inside.sum()),
        size=envc.size[inside],
        q=envc.q[inside],
        theta=envc.theta[inside],
        beta_idx=envc.beta_idx[inside],
        flux=envc.flux[inside],
    )
    # stars in small stamps; HII regions (up to ~14 px sigma) in big ones
    pts = one.kind == KIND_POINT
    if progress is not None:
        progress.total += int(inside.sum())
        progress.refresh()
    for sel, stamp in ((pts, 41), (~pts, 127)):
        if sel.any():
            model += paint_objects(
                shape,
                bands,
                one.subset(sel),
                ex[inside][sel],
                ey[inside][sel],
                psfs=psf_list,
                stamp=stamp,
                progress=progress,
            )
    model += light
    attenuate(model, bands, ebv)
    model *= (10 ** (-0.4 * setup["zp"]))[:, None, None]
    images, art = observe(rng, model, bands, conditions, setup, R, gap)
    # the objects' dust-lane reddening, the set-up, per object
    iy = np.clip(np.rint(y).astype(int), 0, shape[0] - 1)
    ix = np.clip(np.rint(x).astype(int), 0, shape[1] - 1)
    tab["dust_lane_ebv"] = ebv[iy, ix]
    # bright field stars become class-4 rows of the truth
    vcol = v_index(bands)
    zpv = float(mag_to_flux(0.0, bands[vcol]))
    dm = 5 * np.log10(float(distance) * 1e5)
    with np.errstate(divide="ignore"):
        mv = -2.5 * np.log10(np.maximum(one.flux[:, vcol], 1e-30) / zpv) - dm
    is_star = one.kind == KIND_POINT
    bright = is_star & (mv < -6.0)
    bx, by = ex[inside][bright], ey[inside][bright]
    ok = (
        (bx >= 0) & (bx <= shape[1] - 1) & (by >= 0) & (by <= shape[0] - 1)
    )
    ok[ok] &= ~gap[np.rint(by[ok]).astype(int), np.rint(bx[ok]).astype(int)]
    rows = {
        "x": bx[ok],
        "y": by[ok],
        "flux": one.flux[bright][ok],
        "mv": mv[bright][ok],
        "dust_lane_ebv": ebv[np.rint(by[ok]).astype(int), np.rint(bx[ok]).astype(int)],
        "distance": float(distance),
    }
    images = {b: images[j] for j, b in enumerate(bands)}
    n = len(tab["cluster_class"])
    for key, val in (
        ("psf_scale", setup["psf_scale"]),
        ("noise_corr", setup["noise_corr"]),
        ("exposure_set", setup["exposure_set"]),
        ("depth_scale", setup["depth_scale"] * conditions.depth_scale),
        ("sfr_density", setup["sfr"]),
    ):
        tab[key] = np.full(n, val)
    for j, b in enumerate(bands):
        tab[f"psf_scale_{b}"] = np.full(n, scale[j])
        tab[f"zp_offset_{b}"] = np.full(n, setup["zp"][j])
    tab["from_field"] = np.zeros(n, bool)
    meta = dict(counts, **art, n_tiles=int(ntile))
    exps = PHANGS_EXPTIME if setup["exposure_set"] == "phangs" else conditions.exptime
    exptime = {b: exps[b] * conditions.depth_scale * setup["depth_scale"]
               for b in bands}
    return images, float(setup["psf_scale"]), rows, {"field_v2": meta}, exptime


def _append_field_stars(truth, rows, wcs, bands):
    """Class-4 ``field_star`` rows for the bright field stars."""
    k = rows["x"].size
    if k == 0:
        return truth
    new = QTable()
    new["id"] = np.arange(1, k + 1) + int(np.max(truth["id"]))
    new["x_centroid"] = rows["x"]
    new["y_centroid"] = rows["y"]
    new["sky_centroid"] = SkyCoord.from_pixel(rows["x"], rows["y"], wcs, origin=0)
    for name in truth.colnames:
        if name in new.colnames:
            continue
        col = truth[name]
        if col.dtype.kind in "U":
            new[name] = np.full(k, "", dtype=col.dtype)
        elif col.dtype.kind == "b":
            new[name] = np.zeros(k, bool)
        elif col.dtype.kind in "iu":
            new[name] = np.zeros(k, col.dtype)
        else:
            new[name] = np.full(k, np.nan)
    new["cluster_class"] = 4
    new["subtype"] = "field_star"
    new["from_field"] = True
    new["distance"] = rows["distance"]
    new["abs_mag_v"] = rows["mv"]
    new["n_peaks"] = 1
    new["n_stars"] = 1
    new["dust_lane_ebv"] = rows["dust_lane_ebv"]
    for key in truth.colnames:
        if key.startswith(("psf_scale", "zp_offset_", "noise_corr", "exposure_set",
                           "depth_scale", "sfr_density", "acs_F")):
            new[key] = truth[key][0]
    for j, b in enumerate(bands):
        new[f"flux_{b}"] = rows["flux"][:, j]
        new[f"mag_{b}"] = flux_to_mag(rows["flux"][:, j], b)
    return vstack([truth, new], metadata_conflicts="silent")
