# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Observing conditions: exposure depth, sky, read noise, diffuse galaxy light.

Drizzled HST mosaics are sky-subtracted count rates (electron/s): the sky
level is removed but its Poisson noise stays. Each pixel's variance in
(electron/s)^2 is ``((source + diffuse + sky) * t + n_exp * read_noise^2) / t^2``
for an exposure time ``t`` split into ``n_exp`` exposures (the noise of drizzled
pixels is also correlated between neighbours; this is not modelled).
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .photometry import mag_to_flux

__all__ = [
    "ObservingConditions",
    "DEFAULT_CONDITIONS",
    "surface_brightness_to_rate",
    "PHANGS_EXPTIME",
    "correlated_noise",
    "noise_correlation",
]

#: LEGUS-like exposure times (s) per band.
DEFAULT_EXPTIME = {
    "F275W": 2400.0,
    "F336W": 1100.0,
    "F435W": 1200.0,
    "F438W": 900.0,
    "F555W": 1100.0,
    "F606W": 1000.0,
    "F814W": 900.0,
}
#: Sky count rate per 0.04" pixel (electron/s), zodiacal + earthshine, average.
DEFAULT_SKY = {
    "F275W": 0.0004,
    "F336W": 0.0015,
    "F435W": 0.008,
    "F438W": 0.006,
    "F555W": 0.025,
    "F606W": 0.045,
    "F814W": 0.03,
}


@dataclass(frozen=True)
class ObservingConditions:
    """
    Depth and noise of one simulated field.

    Parameters
    ----------
    exptime : dict, optional
        Exposure time (s) per band (LEGUS-like defaults).
    sky : dict, optional
        Sky count rate per pixel (electron/s).
    read_noise : float, optional
        Read noise per exposure, electrons (WFC3/UVIS: 3.1).
    n_exp : int, optional
        Exposures per band (default 3).
    depth_scale : float, optional
        Multiplies every exposure time (e.g. 0.5 for a shallower field).

    Examples
    --------
    >>> from astro_clustercls.simulation import ObservingConditions
    >>> obs = ObservingConditions()
    >>> round(float(obs.pixel_sigma('F555W')), 5)  # empty sky, electron/s
    0.00682
    """

    exptime: dict = field(default_factory=lambda: dict(DEFAULT_EXPTIME))
    sky: dict = field(default_factory=lambda: dict(DEFAULT_SKY))
    read_noise: float = 3.1
    n_exp: int = 3
    depth_scale: float = 1.0

    def _get(self, table, band):
        key = str(band).upper().split("/")[-1]
        if key not in table:
            raise ValueError(f"no value for band {band!r} in {sorted(table)}")
        return table[key]

    def t(self, band):
        """Exposure time (s) of ``band`` after ``depth_scale``."""
        return self._get(self.exptime, band) * self.depth_scale

    def variance(self, band, signal):
        """Variance per pixel, (electron/s)^2, for ``signal`` e/s above the sky."""
        t = self.t(band)
        counts = (np.maximum(signal, 0) + self._get(self.sky, band)) * t
        return (counts + self.n_exp * self.read_noise**2) / t**2

    def pixel_sigma(self, band, signal=0.0):
        """Noise rms per pixel (electron/s)."""
        return np.sqrt(self.variance(band, signal))

    def scaled(self, depth_scale):
        """A copy with exposure times multiplied by ``depth_scale``."""
        return replace(self, depth_scale=self.depth_scale * float(depth_scale))


DEFAULT_CONDITIONS = ObservingConditions()


def surface_brightness_to_rate(mu, band, pixel_scale=0.03962):
    """
    Count rate per pixel (electron/s) of surface brightness ``mu`` (mag/arcsec^2).

    Examples
    --------
    >>> from astro_clustercls.simulation.observing import surface_brightness_to_rate
    >>> round(float(surface_brightness_to_rate(21.0, 'F555W')), 3)
    0.133
    """
    return mag_to_flux(np.asarray(mu, float), band) * pixel_scale**2


#: PHANGS-HST-like exposure times (s) per band (Lee et al. 2022: ~2200 s in
#: F275W, ~1100 s in F336W and F438W, ~700 s in F555W/F606W and F814W).
PHANGS_EXPTIME = {
    "F275W": 2200.0,
    "F336W": 1100.0,
    "F435W": 1100.0,
    "F438W": 1100.0,
    "F555W": 700.0,
    "F606W": 700.0,
    "F814W": 700.0,
}


def _kernel_weight(rho):
    """Side weight ``a`` of the 1D kernel [a, 1, a] whose lag-1 correlation is rho."""
    rho = np.asarray(rho, float)
    if np.any((rho < 0) | (rho > 0.7)):
        raise ValueError("'rho' must be in [0, 0.7]")
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(rho > 1e-9, (1 - np.sqrt(1 - 2 * rho**2)) / (2 * rho), 0.0)
    return a


def correlated_noise(shape, rho, rng, *, dtype=np.float32):
    """
    Unit-variance Gaussian noise with drizzle-like correlation between pixels.

    White noise is convolved with the separable 3x3 kernel ``[a, 1, a]`` x
    ``[a, 1, a]``, normalised so that each pixel keeps unit variance; ``a`` is
    chosen so that neighbouring pixels (along x or y) have correlation
    ``rho`` (diagonal neighbours ``rho**2``), as in drizzled HST mosaics.

    Parameters
    ----------
    shape : tuple
        Output shape ``(..., ny, nx)``.
    rho : float or array-like
        Lag-1 correlation, 0 (white) to 0.7; an array broadcasts against
        ``shape[:-2]`` (one value per image).
    rng : `numpy.random.Generator`

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.simulation.observing import (
    ...     correlated_noise, noise_correlation)
    >>> noise = correlated_noise((512, 512), 0.3, np.random.default_rng(0))
    >>> round(float(noise.std()), 1), round(float(noise_correlation(noise)), 1)
    (1.0, 0.3)
    """
    shape = tuple(int(s) for s in shape)
    lead = shape[:-2]
    a = _kernel_weight(rho).astype(dtype)
    a = np.broadcast_to(a, lead).reshape(lead + (1, 1)) if a.ndim else a
    w = rng.standard_normal(lead + (shape[-2] + 2, shape[-1] + 2), dtype=dtype)
    x = np.add(w[..., :, :-2], w[..., :, 2:])
    x *= a
    x += w[..., :, 1:-1]
    del w
    y = np.add(x[..., :-2, :], x[..., 2:, :])
    y *= a
    y += x[..., 1:-1, :]
    y *= 1 / (1 + 2 * a * a)
    return y


def noise_correlation(image, *, axis="both"):
    """
    Measured lag-1 correlation coefficient of the pixels of ``image``.

    Parameters
    ----------
    image : ndarray (..., ny, nx)
        Noise (the mean of each image is removed; NaN are ignored).
    axis : {'both', 'x', 'y'}, optional
        Neighbours along x, y or the average of both (default).
    """
    img = np.asarray(image, float)
    img = img - np.nanmean(img, axis=(-2, -1), keepdims=True)
    var = np.nanmean(img**2)
    cx = np.nanmean(img[..., :, 1:] * img[..., :, :-1]) / var
    cy = np.nanmean(img[..., 1:, :] * img[..., :-1, :]) / var
    return {"x": cx, "y": cy, "both": 0.5 * (cx + cy)}[axis]
