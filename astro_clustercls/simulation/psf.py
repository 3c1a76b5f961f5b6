# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Point-spread functions of drizzled WFC3/UVIS and ACS/WFC images.

Each PSF is a Moffat core plus a broad Moffat halo holding ``wing_fraction`` of
the light (the extended wings of the HST PSF: scattered light, the diffraction
rings smoothed by drizzling), integrated over 0.04" pixels. Widths are those of
*drizzled* mosaics (native PSF convolved with the drizzle kernel): a FWHM of
about 0.07"-0.10", broadest in F275W and F814W (the red halo of the UVIS
CCDs), and chosen so that a single star has a concentration index
CI = mag(1 px) - mag(3 px) of about 1.3 in F555W, the value LEGUS uses to tell
stars from clusters.
"""

from dataclasses import dataclass, replace

import numpy as np

from .._constants import PIXEL_SCALE
from . import _fourier

__all__ = ["MoffatPSF", "DEFAULT_PSFS", "get_psf"]


@dataclass(frozen=True)
class MoffatPSF:
    """
    A circular Moffat core + Moffat halo PSF, pixel-integrated.

    Parameters
    ----------
    fwhm : float
        FWHM of the core, arcsec.
    beta : float, optional
        Moffat index of the core (default 2.5).
    wing_fraction : float, optional
        Fraction of the light in the halo (default 0.12).
    wing_scale : float, optional
        Halo FWHM / core FWHM (default 4).
    wing_beta : float, optional
        Moffat index of the halo (default 1.8).
    pixel_scale : float, optional
        Arcsec per pixel (default ``PIXEL_SCALE``).

    Examples
    --------
    >>> from astro_clustercls.simulation.psf import MoffatPSF
    >>> psf = MoffatPSF(0.08)
    >>> img = psf.image(25)
    >>> img.shape, round(float(img.sum()), 2)
    ((25, 25), 0.97)
    """

    fwhm: float
    beta: float = 2.5
    wing_fraction: float = 0.12
    wing_scale: float = 4.0
    wing_beta: float = 1.8
    pixel_scale: float = PIXEL_SCALE

    def __post_init__(self):
        if not self.fwhm > 0:
            raise ValueError(f"'fwhm' must be > 0, got {self.fwhm}")
        if not 0 <= self.wing_fraction < 1:
            raise ValueError(
                f"'wing_fraction' must be in [0, 1), got {self.wing_fraction}"
            )
        if not (self.beta > 1.2 and self.wing_beta > 1.2):
            raise ValueError("'beta' and 'wing_beta' must be > 1.2")

    @property
    def fwhm_pixels(self):
        """Core FWHM in pixels (before pixel integration)."""
        return self.fwhm / self.pixel_scale

    def otf(self, ky, kx, *, pixel=True):
        """
        Optical transfer function on a frequency grid (rad/pixel), float32.

        Parameters
        ----------
        ky, kx : 1D ndarray
            Frequencies along y and x (e.g. from an rfft2 grid).
        pixel : bool, optional
            Include the top-hat pixel response (default True).
        """
        k = np.hypot(ky[:, None], kx[None, :]).astype(float)
        a_core = _fourier.moffat_alpha(self.fwhm_pixels, self.beta)
        a_wing = _fourier.moffat_alpha(
            self.fwhm_pixels * self.wing_scale, self.wing_beta
        )
        core = _fourier.moffat_ft_exact(k * a_core, self.beta - 1.0)
        wing = _fourier.moffat_ft_exact(k * a_wing, self.wing_beta - 1.0)
        otf = (1 - self.wing_fraction) * core + self.wing_fraction * wing
        if pixel:
            otf = otf * _fourier.pixel_response(ky, kx)
        return otf.astype(np.float32)

    def scaled(self, factor):
        """A copy with core and halo widths multiplied by ``factor`` (PSF jitter)."""
        return replace(self, fwhm=self.fwhm * float(factor))

    def image(self, size=25, *, center=None, pad=None):
        """
        The pixel-integrated PSF on a ``size x size`` grid (sums to < 1: wings).

        Parameters
        ----------
        size : int, optional
            Side of the image in pixels (default 25).
        center : (x, y), optional
            Position of the star, 0-based pixel coordinates (default: the
            central pixel).
        pad : int, optional
            FFT grid used internally (default ``4 * size``, rounded up to even).
        """
        return _fourier.otf_image(self.otf, size, center, pad)


#: Default PSFs of drizzled 0.04"/px mosaics, per band (see module docstring).
DEFAULT_PSFS = {
    band: MoffatPSF(fwhm, beta=1.9, wing_fraction=0.22, wing_scale=2.2, wing_beta=1.6)
    for band, fwhm in (
        ("F275W", 0.076),
        ("F336W", 0.074),
        ("F435W", 0.074),
        ("F438W", 0.072),
        ("F555W", 0.073),
        ("F606W", 0.074),
        ("F814W", 0.079),
    )
}


def get_psf(band, *, jitter=0.0, rng=None):
    """
    The default PSF of ``band``, optionally with its width jittered.

    Parameters
    ----------
    band : str
        Filter name (``'F555W'``; ``'ACS/F814W'`` is read as ``'F814W'``).
    jitter : float, optional
        Relative rms of a random change of the width (default 0).
    rng : `numpy.random.Generator`, optional
        Random generator for the jitter.

    Examples
    --------
    >>> from astro_clustercls.simulation import get_psf
    >>> get_psf('F555W').fwhm
    0.073
    """
    name = str(band).strip().upper().split("/")[-1]
    if name not in DEFAULT_PSFS:
        raise ValueError(
            f"no default PSF for band {band!r}; known: {sorted(DEFAULT_PSFS)}"
        )
    psf = DEFAULT_PSFS[name]
    if jitter:
        rng = np.random.default_rng(rng)
        psf = psf.scaled(max(0.5, 1.0 + jitter * rng.standard_normal()))
    return psf
