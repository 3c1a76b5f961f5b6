# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Inputs nothing like the training data, to check the out-of-distribution flag.

Each function returns float32 cutouts (N, B, S, S) in the simulator's units
(electron/s), made from a seed or from a sample of real-looking cutouts:

- `pure_noise`: sky noise and nothing else;
- `unphysical_colours`: objects whose bands are rescaled by factors no star,
  cluster or galaxy has (x40 in the bluest band, x0.02 in the reddest);
- `saturated_blobs`: bright objects clipped flat at a saturation level, with
  a bleed trail along the columns;
- `jwst_like`: stars and compact clusters seen through a JWST-like PSF
  (a core of ~1.2 px FWHM, six strong diffraction spikes at 60 degrees and
  two weaker horizontal ones);
- `in_magnitudes`: the same objects converted to magnitudes per pixel (the
  wrong units: brighter is smaller, the sky is ~25).

Two variants check that a score tuned on these sets is not tuned to their
exact parameters (`OOD_VARIANTS`): `correlated_noise` (sky noise
correlated over 2x2 pixels, as resampling by drizzle makes it) and the
JWST-like PSF ten times fainter (fluxes 30-300 instead of 300-3000), from
another seed.
"""

import math

import numpy as np

from ..data.images import BandImages

__all__ = ["as_images", "pure_noise", "correlated_noise", "unphysical_colours",
           "saturated_blobs", "jwst_like", "in_magnitudes", "OOD_SETS", "OOD_VARIANTS",
           "make_ood_sets"]


def as_images(cutouts, bands):
    """
    Cutouts side by side in one image per band, to classify them as a field.

    Parameters
    ----------
    cutouts : ndarray (N, B, S, S)
    bands : sequence of B str

    Returns
    -------
    images : `~astro_clustercls.BandImages`
        Images of ``ceil(sqrt(N))`` cutouts across, zeros where none is.
    xy : ndarray (N, 2)
        The cutouts' centres ``(x, y)``, 0-based pixels: the classifier's
        cutouts there (of side ``S``) are the cutouts given.
    """
    n, nb, s, _ = cutouts.shape
    cols = max(math.ceil(math.sqrt(n)), 1)
    rows = max(math.ceil(n / cols), 1)
    image = np.zeros((nb, rows * s, cols * s), np.float32)
    xy = np.empty((n, 2))
    for i in range(n):
        r, c = divmod(i, cols)
        image[:, r * s:(r + 1) * s, c * s:(c + 1) * s] = cutouts[i]
        xy[i] = (c * s + s // 2, r * s + s // 2)
    return BandImages({b: image[k] for k, b in enumerate(bands)}), xy


def _noise_sigma(sample):
    """Per-band sky noise of a sample of cutouts (robust, from the border)."""
    border = np.concatenate([sample[..., :4, :].reshape(*sample.shape[:2], -1),
                             sample[..., -4:, :].reshape(*sample.shape[:2], -1)],
                            axis=-1)
    mad = np.nanmedian(np.abs(border - np.nanmedian(border, axis=-1, keepdims=True)),
                       axis=(0, 2))
    return 1.4826 * mad


def pure_noise(sample, rng):
    """Gaussian sky noise at the sample's per-band level, no object."""
    sigma = _noise_sigma(sample)
    return (rng.normal(size=sample.shape) * sigma[None, :, None, None]).astype(
        np.float32)


def correlated_noise(sample, rng):
    """Sky noise averaged over 2x2 pixels (as drizzle correlates it), no object."""
    white = pure_noise(sample, rng)
    box = (white + np.roll(white, 1, axis=-1) + np.roll(white, 1, axis=-2)
           + np.roll(np.roll(white, 1, axis=-1), 1, axis=-2)) / 2.0
    return box.astype(np.float32)


def unphysical_colours(sample, factors=None):
    """The sample with its bands rescaled far outside any physical colour."""
    nb = sample.shape[1]
    if factors is None:
        factors = np.geomspace(40.0, 0.02, nb)
    return (sample * np.asarray(factors, np.float32)[None, :, None, None]).astype(
        np.float32)


def saturated_blobs(sample, rng, *, peak=(2e3, 2e4), level=300.0):
    """Very bright round objects added to the sample, clipped flat, with bleeding."""
    n, nb, s, _ = sample.shape
    yy, xx = np.mgrid[:s, :s] - s // 2
    width = rng.uniform(1.5, 3.5, n)
    amp = rng.uniform(*peak, n)
    blob = amp[:, None, None] * np.exp(-(xx**2 + yy**2)[None] / (2 * width[:, None,
                                                                        None] ** 2))
    out = sample + blob[:, None].astype(np.float32)
    out = np.minimum(out, level)
    # the bleed trail: saturated columns through the centre
    c = s // 2
    half = rng.integers(s // 6, s // 3, n)
    for i in range(n):
        out[i, :, c - half[i]:c + half[i] + 1, c - 1:c + 2] = level
    return out.astype(np.float32)


def _jwst_psf(size, rng):
    yy, xx = np.mgrid[:size, :size] - size // 2
    yy = yy + rng.uniform(-0.5, 0.5)
    xx = xx + rng.uniform(-0.5, 0.5)
    r = np.hypot(xx, yy)
    ang = np.arctan2(yy, xx)
    sigma = 1.2 / 2.355
    core = np.exp(-r**2 / (2 * sigma**2))
    rings = 0.02 * np.cos(1.9 * r) ** 2 / (1 + r) ** 2
    spikes = 0.0
    for a, w in [*((k * np.pi / 3 + np.pi / 6, 1.0) for k in range(6)),
                 (0.0, 0.4), (np.pi, 0.4)]:
        along = np.clip(r * np.cos(ang - a), 0.0, None)
        across = r * np.sin(ang - a)
        spikes = spikes + (w * (along > 0) * np.exp(-across**2 / 0.3)
                           / (1 + along) ** 1.2)
    psf = core + rings + 0.25 * spikes
    return psf / psf.sum()


def jwst_like(sample, rng, *, flux=(300.0, 3000.0)):
    """Point sources and compact clusters through a JWST-like PSF, on sky noise."""
    n, nb, s, _ = sample.shape
    out = pure_noise(sample, rng)
    for i in range(n):
        psf = _jwst_psf(s, rng)
        if rng.random() < 0.5:  # a compact cluster: the PSF smoothed by ~1 px
            k = np.exp(-np.add.outer((np.arange(s) - s // 2) ** 2,
                                     (np.arange(s) - s // 2) ** 2) / 2.0)
            psf = np.real(np.fft.ifft2(np.fft.fft2(psf) * np.fft.fft2(
                np.fft.ifftshift(k / k.sum()))))
        colours = rng.uniform(0.5, 1.5, nb)
        out[i] += (rng.uniform(*flux) * colours[:, None, None] * psf[None]).astype(
            np.float32)
    return out


def in_magnitudes(sample, zeropoint=25.0, floor=1e-3):
    """The sample in magnitudes per pixel, as a mis-converted image would be."""
    return (zeropoint - 2.5 * np.log10(np.clip(np.nan_to_num(sample), floor, None))
            ).astype(np.float32)


#: the OOD sets `make_ood_sets` makes, in order
OOD_SETS = ("pure noise", "unphysical colours", "saturated blobs", "JWST-like PSF",
            "magnitudes")

#: the variants ``make_ood_sets(..., variants=True)`` adds
OOD_VARIANTS = ("correlated noise", "JWST-like PSF, 10x fainter")


def make_ood_sets(sample, seed=0, *, variants=False):
    """
    All OOD sets, each from ``sample`` (real-looking cutouts, e.g. simulated).

    Parameters
    ----------
    sample : ndarray (N, B, S, S)
        Cutouts in electron/s (their noise level and objects are reused).
    seed : int, optional
    variants : bool, optional
        Also make the sets of `OOD_VARIANTS` (from seed ``seed + 1``).

    Returns
    -------
    dict
        name (see `OOD_SETS`, `OOD_VARIANTS`) -> ndarray (N, B, S, S) float32.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.evaluation.ood_sets import OOD_SETS, make_ood_sets
    >>> sample = np.random.default_rng(0).normal(0, 0.01, (4, 5, 15, 15))
    >>> sets = make_ood_sets(sample.astype('f4'))
    >>> sorted(sets) == sorted(OOD_SETS), sets['magnitudes'].shape
    (True, (4, 5, 15, 15))
    """
    rng = np.random.default_rng(seed)
    sample = np.asarray(sample, np.float32)
    sets = {
        "pure noise": pure_noise(sample, rng),
        "unphysical colours": unphysical_colours(sample),
        "saturated blobs": saturated_blobs(sample, rng),
        "JWST-like PSF": jwst_like(sample, rng),
        "magnitudes": in_magnitudes(sample),
    }
    if variants:
        rng = np.random.default_rng(seed + 1)
        sets["correlated noise"] = correlated_noise(sample, rng)
        sets["JWST-like PSF, 10x fainter"] = jwst_like(sample, rng, flux=(30.0, 300.0))
    return sets
