# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Measure simulated cutouts as LEGUS measures its candidates, and select them.

Aperture photometry at the cutout centre (photutils, or a fast numpy
equivalent with the same exact-overlap weights): fluxes in r = 1, 3 and 4 px,
a local sky from the median in a 7-8 px annulus, the concentration index
``CI = mag(1 px) - mag(3 px)`` in F555W, total Vega magnitudes with an average
aperture correction; then LEGUS's candidate selection (`legus_selection`).
Used by the calibration (`astro_clustercls.simulation.calibration`) and by
`~astro_clustercls.simulation.make_training_set` to pre-select objects.
"""

import numpy as np
from photutils.aperture import (
    ApertureStats,
    CircularAnnulus,
    CircularAperture,
    aperture_photometry,
)

from ._render import Components, StampRenderer
from .photometry import flux_to_mag
from .psf import get_psf

__all__ = ["APERTURE", "ANNULUS", "COMPLETENESS", "quick_measure", "measure_stamps",
           "legus_selection"]

APERTURE = 4.0
ANNULUS = (7.0, 8.0)



def _ap_weights(size, radius, center):
    if np.ndim(radius) == 0:
        ap = CircularAperture(center, radius)
    else:
        ap = CircularAnnulus(center, *radius)
    return ap.to_mask(method="exact").to_image((size, size))


_APCOR_CACHE = {}


def _aperture_corrections(bands, radius=APERTURE, psfs=None):
    """
    Average aperture corrections (mag) from a ``radius`` aperture to the total.

    Like LEGUS's average corrections, they are those of a typical cluster (a
    round EFF profile, gamma = 3, effective radius 1.2 px), not of a star,
    seen through ``psfs`` (one per band; default `get_psf` of each band).
    """
    psfs = tuple(get_psf(b) for b in bands) if psfs is None else tuple(psfs)
    key = (tuple(bands), float(radius), psfs)
    if key not in _APCOR_CACHE:
        comp = Components.single_eff(1.2, np.ones(len(bands)))
        r = StampRenderer(list(psfs), 63, pad=512)
        img = r.render(comp, 1)[0]
        w = _ap_weights(63, radius, (31, 31))
        _APCOR_CACHE[key] = -2.5 * np.log10((img * w).sum(axis=(1, 2)))
    return _APCOR_CACHE[key]


def quick_measure(data, variance, bands):
    """
    Fast numpy aperture photometry at the centre of each cutout.

    Same apertures as `measure_stamps` (exact-overlap weights at the centre
    pixel), used to pre-select training objects. Returns a dict with ``ci``
    (F555W), ``mag`` (N, B) total Vega mags, ``err`` (N, B).
    """
    n, nb, s, _ = data.shape
    c = s // 2
    w1, w3, w4 = (_ap_weights(s, r, (c, c)) for r in (1.0, 3.0, APERTURE))
    wa = _ap_weights(s, ANNULUS, (c, c)) > 0.5
    d = np.nan_to_num(data, nan=0.0)
    sky = np.nanmedian(data[:, :, wa], axis=2)
    sky = np.nan_to_num(sky)
    f1 = np.einsum("nbyx,yx->nb", d, w1) - sky * w1.sum()
    f3 = np.einsum("nbyx,yx->nb", d, w3) - sky * w3.sum()
    f4 = np.einsum("nbyx,yx->nb", d, w4) - sky * w4.sum()
    bad = np.isnan(data[:, :, w4 > 0]).any(axis=2)
    f4 = np.where(bad, np.nan, f4)
    var4 = np.einsum("nbyx,yx->nb", np.nan_to_num(variance), w4**2)
    return _finish(f1, f3, f4, np.sqrt(var4), bands)


def _finish(f1, f3, f4, sig4, bands):
    bands = [b.upper() for b in bands]
    apc = _aperture_corrections(bands)
    mag = np.full(f4.shape, np.nan)
    for j, b in enumerate(bands):
        mag[:, j] = flux_to_mag(f4[:, j], b) + apc[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        err = 1.0857 * sig4 / f4
        err = np.where(f4 > 0, err, np.nan)
    v = bands.index("F555W") if "F555W" in bands else len(bands) // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = np.where(
            (f1[:, v] > 0) & (f3[:, v] > 0),
            -2.5 * np.log10(f1[:, v] / f3[:, v]),
            np.nan,
        )
    return {"ci": ci, "mag": mag, "err": err, "bands": tuple(bands)}


def measure_stamps(data, bands, *, variance=None, ncol=None):
    """
    Measure cutouts like LEGUS, with photutils, at each cutout's centre.

    The cutouts are laid side by side in one mosaic per band and measured with
    `photutils.aperture.aperture_photometry` (r = 1, 3 and 4 px, exact overlap)
    and `photutils.aperture.ApertureStats` (median in a 7-8 px annulus).

    Parameters
    ----------
    data : ndarray (N, B, S, S)
        Cutouts (electron/s) centred on the objects.
    bands : sequence of str
    variance : ndarray like ``data``, optional
        Pixel variances for the errors (default: from the annulus scatter).

    Returns
    -------
    dict with ``ci`` (N,), ``mag`` (N, B), ``err`` (N, B), ``bands``.
    """
    n, nb, s, _ = data.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    iy, ix = np.divmod(np.arange(n), ncol)
    pos = np.column_stack([ix * s + s // 2, iy * s + s // 2]).astype(float)
    f = {r: np.empty((n, nb)) for r in (1.0, 3.0, APERTURE)}
    sig4 = np.empty((n, nb))
    for j in range(nb):
        mosaic = np.zeros((nrow * s, ncol * s))
        mosaic.reshape(nrow, s, ncol, s)[...] = 0
        tiles = np.zeros((nrow * ncol, s, s))
        tiles[:n] = data[:, j]
        mosaic = (
            tiles.reshape(nrow, ncol, s, s)
            .transpose(0, 2, 1, 3)
            .reshape(nrow * s, ncol * s)
        )
        mask = ~np.isfinite(mosaic)
        ann = CircularAnnulus(pos, *ANNULUS)
        st = ApertureStats(mosaic, ann, mask=mask, sum_method="center")
        sky = np.nan_to_num(np.asarray(st.median, float))
        clean = np.where(mask, 0.0, mosaic)
        for r in f:
            ap = CircularAperture(pos, r)
            tab = aperture_photometry(clean, ap, method="exact")
            f[r][:, j] = np.asarray(tab["aperture_sum"], float) - sky * ap.area
        # objects with NaN inside the 4 px aperture are not measurable
        bad = (
            aperture_photometry(
                mask.astype(float), CircularAperture(pos, APERTURE), method="center"
            )["aperture_sum"]
            > 0
        )
        f[APERTURE][np.asarray(bad), j] = np.nan
        if variance is not None:
            vt = np.zeros((nrow * ncol, s, s))
            vt[:n] = np.nan_to_num(variance[:, j])
            vm = (
                vt.reshape(nrow, ncol, s, s)
                .transpose(0, 2, 1, 3)
                .reshape(nrow * s, ncol * s)
            )
            sig4[:, j] = np.sqrt(
                np.asarray(
                    aperture_photometry(
                        vm, CircularAperture(pos, APERTURE), method="exact"
                    )["aperture_sum"]
                )
            )
        else:
            std = np.nan_to_num(np.asarray(st.std, float))
            area = np.pi * APERTURE**2
            sig4[:, j] = np.sqrt(std**2 * area + np.maximum(f[APERTURE][:, j], 0) * 0)
    return _finish(f[1.0], f[3.0], f[APERTURE], sig4, bands)


#: LEGUS catalogs thin out near the magnitude cut (detection in crowded
#: fields, the limit of visual inspection): the fraction kept at absolute V
#: magnitude M is a logistic of centre COMPLETENESS[0] and width COMPLETENESS[1].
COMPLETENESS = (-6.7, 0.35)


def legus_selection(
    meas,
    distance,
    bands,
    *,
    ci_cut=1.3,
    mv_limit=-6.0,
    min_bands=4,
    max_err=0.3,
    completeness=COMPLETENESS,
    rng=0,
):
    """
    LEGUS's candidate selection applied to measured objects (boolean mask).

    CI >= ``ci_cut`` (scalar or per object), M_V <= ``mv_limit`` (V = F555W,
    distance modulus from ``distance`` in Mpc), magnitude error <= ``max_err``
    in at least ``min_bands`` bands, V among them; then objects are kept at
    random with the probability ``completeness`` gives at their M_V (None:
    keep all).
    """
    bands = [b.upper() for b in bands]
    v = bands.index("F555W") if "F555W" in bands else len(bands) // 2
    dm = 5 * np.log10(np.asarray(distance, float) * 1e5)
    det = np.nan_to_num(meas["err"], nan=9.0) <= max_err
    mv = np.nan_to_num(meas["mag"][:, v], nan=99.0) - dm
    with np.errstate(invalid="ignore"):
        keep = (
            (np.nan_to_num(meas["ci"], nan=-9) >= ci_cut)
            & (mv <= mv_limit)
            & det[:, v]
            & (det.sum(axis=1) >= min_bands)
        )
    if completeness is not None:
        m0, w = completeness
        prob = 1.0 / (1.0 + np.exp(np.clip((mv - m0) / w, -50, 50)))
        keep &= np.random.default_rng(rng).random(mv.size) < prob
    return keep
