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

__all__ = ["ObservingConditions", "DEFAULT_CONDITIONS", "surface_brightness_to_rate"]

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
