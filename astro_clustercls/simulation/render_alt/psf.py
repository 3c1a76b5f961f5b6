# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
GalSim point-spread functions of drizzled HST images, built from the optics.

Independent of the training simulator's PSFs (`astro_clustercls.simulation.psf`,
empirical Moffat core + halo): here each band's PSF is made from physics with
GalSim, as an instrument model would be:

1. diffraction by the HST pupil (`galsim.OpticalPSF`: 2.4 m aperture, linear
   central obscuration 0.33, four secondary-mirror spider vanes) at the band's
   pivot wavelength, with small low-order aberrations given in nm of wavefront
   (so they matter more in the UV) and a focus term (orbital "breathing");
2. mid-frequency mirror roughness: a fraction ``1 - exp(-(2 pi s / lambda)^2)``
   of the light (Strehl-ratio loss for ``s`` nm rms) scattered into a broad
   halo (a `galsim.Kolmogorov`-shaped profile, power-law wings);
3. pointing jitter (a Gaussian) and CCD charge diffusion (a Gaussian whose width
   grows to the blue), plus the near-infrared "red halo" of the UVIS CCDs (light
   scattered in the detector: a broad exponential holding a few per cent of the
   F814W light);
4. the detector pixel (a box of the native 0.0396" pixel) and the drizzle drop
   (a box of ``pixfrac`` native pixels).

The output pixel is *not* in the model: GalSim integrates over it when drawing
(``method='auto'``). The model is tabulated once per band and variant on a
finely sampled grid and used as a `galsim.InterpolatedImage`, the way an
empirical or TinyTim PSF model is used (`tabulated_psf`).
"""

from dataclasses import dataclass, field, replace

import galsim
import numpy as np

from ..._constants import PIXEL_SCALE

__all__ = [
    "BAND_WAVELENGTHS",
    "HSTOpticsModel",
    "DEFAULT_OPTICS",
    "hst_psf",
    "tabulated_psf",
    "psf_image",
]

#: Pivot wavelengths (nm) of the bands (WFC3/UVIS; F435W and F606W: ACS/WFC).
BAND_WAVELENGTHS = {
    "F275W": 270.4,
    "F336W": 335.5,
    "F435W": 432.9,
    "F438W": 432.5,
    "F555W": 530.8,
    "F606W": 588.7,
    "F814W": 802.4,
}


def _filter(band):
    name = str(band).strip().upper().split("/")[-1].replace("ACS_", "")
    name = name.replace("WFC3_", "").replace("UVIS_", "")
    if name not in BAND_WAVELENGTHS:
        raise ValueError(
            f"no wavelength for band {band!r}; known: {sorted(BAND_WAVELENGTHS)}"
        )
    return name


@dataclass(frozen=True)
class HSTOpticsModel:
    """
    Parameters of the physical HST PSF model (see the module docstring).

    Parameters
    ----------
    diam : float
        Aperture diameter, m.
    obscuration : float
        Linear central obscuration (secondary mirror / aperture).
    nstruts : int
        Spider vanes.
    strut_thick : float
        Vane width as a fraction of the diameter.
    strut_angle : float
        Position angle of the first vane, degrees (counter-clockwise from +x).
    aberrations_nm : dict
        Static Zernike terms (Noll index: nm rms of wavefront).
    roughness_nm : float
        rms of mid-frequency wavefront error scattered into the halo, nm.
    halo_fwhm : float
        FWHM of the scattered-light halo, arcsec.
    jitter : float
        Gaussian sigma, arcsec, of pointing jitter and of the registration
        errors between the drizzled exposures.
    charge_diffusion : dict
        CCD charge-diffusion Gaussian sigma per band, in native pixels
        (broader in the blue). The defaults are set so that drizzled stars
        have a FWHM of 0.08"-0.09" and CI = mag(1 px) - mag(3 px) of
        1.05-1.2, close to the WFC3/UVIS handbook's 1.7-2.0 native pixels
        after the drizzle drop.
    red_halo : dict
        Fraction of the light in the detector's red halo, per band.
    red_halo_scale : float
        Exponential scale length of the red halo, arcsec.
    native_scale : float
        Detector pixel, arcsec.
    pixfrac : float
        Drizzle drop size, in native pixels.
    """

    diam: float = 2.4
    obscuration: float = 0.33
    nstruts: int = 4
    strut_thick: float = 0.02
    strut_angle: float = 45.0
    aberrations_nm: dict = field(
        default_factory=lambda: {5: 6.0, 6: -4.0, 7: 5.0, 8: -3.0, 11: -6.0}
    )
    roughness_nm: float = 20.0
    halo_fwhm: float = 0.3
    jitter: float = 0.008
    charge_diffusion: dict = field(
        default_factory=lambda: {
            "F275W": 0.62,
            "F336W": 0.56,
            "F435W": 0.48,
            "F438W": 0.48,
            "F555W": 0.44,
            "F606W": 0.42,
            "F814W": 0.40,
        }
    )
    red_halo: dict = field(default_factory=lambda: {"F606W": 0.01, "F814W": 0.06})
    red_halo_scale: float = 0.15
    native_scale: float = 0.0396
    pixfrac: float = 1.0

    def copy(self, **changes):
        """A copy with some parameters changed."""
        return replace(self, **changes)


DEFAULT_OPTICS = HSTOpticsModel()


def hst_psf(band, *, defocus_nm=0.0, strut_angle=None, optics=None):
    """
    The analytic GalSim model of a drizzled HST PSF in ``band`` (arcsec units).

    Parameters
    ----------
    band : str
        Filter name.
    defocus_nm : float, optional
        Extra focus term (Zernike 4), nm rms of wavefront (HST breathing is a
        few nm).
    strut_angle : float, optional
        Spider orientation, degrees (default ``optics.strut_angle``): the
        telescope's roll relative to the image axes.
    optics : HSTOpticsModel, optional
        Model parameters (default `DEFAULT_OPTICS`).

    Returns
    -------
    `galsim.GSObject`
        Unit-flux PSF, without the output pixel.
    """
    o = optics or DEFAULT_OPTICS
    filt = _filter(band)
    lam = BAND_WAVELENGTHS[filt]
    nmax = max([4, *o.aberrations_nm])
    ab = np.zeros(nmax + 1)
    for j, v in o.aberrations_nm.items():
        ab[j] = v / lam
    ab[4] += defocus_nm / lam
    angle = o.strut_angle if strut_angle is None else strut_angle
    optical = galsim.OpticalPSF(
        lam=lam,
        diam=o.diam,
        obscuration=o.obscuration,
        nstruts=o.nstruts,
        strut_thick=o.strut_thick,
        strut_angle=float(angle) * galsim.degrees,
        aberrations=ab,
        scale_unit=galsim.arcsec,
    )
    scattered = 1.0 - np.exp(-((2 * np.pi * o.roughness_nm / lam) ** 2))
    parts = [(1.0 - scattered) * optical]
    if scattered > 0:
        parts.append(galsim.Kolmogorov(fwhm=o.halo_fwhm, flux=scattered))
    optics_psf = galsim.Add(parts) if len(parts) > 1 else parts[0]
    det = galsim.Gaussian(sigma=o.charge_diffusion.get(filt, 0.35) * o.native_scale)
    red = o.red_halo.get(filt, 0.0)
    if red > 0:
        det = galsim.Add(
            (1.0 - red) * det,
            galsim.Exponential(scale_radius=o.red_halo_scale, flux=red),
        )
    return galsim.Convolve(
        optics_psf,
        galsim.Gaussian(sigma=o.jitter),
        det,
        galsim.Box(o.native_scale, o.native_scale),
        galsim.Box(o.pixfrac * o.native_scale, o.pixfrac * o.native_scale),
    )


_CACHE = {}
_CACHE_MAX = 64


def _tabulated(band, defocus_nm, strut_angle, optics, pixel_scale, oversample, extent):
    key = (band, defocus_nm, strut_angle, repr(optics), pixel_scale, oversample, extent)
    if key in _CACHE:
        return _CACHE[key]
    model = hst_psf(band, defocus_nm=defocus_nm, strut_angle=strut_angle, optics=optics)
    step = pixel_scale / oversample
    n = int(np.ceil(extent / step)) | 1
    img = model.drawImage(nx=n, ny=n, scale=step, method="no_pixel")
    # light beyond the table is lost (as it is beyond a measured PSF model)
    psf = galsim.InterpolatedImage(
        img, x_interpolant="quintic", normalization="flux", use_true_center=True
    )
    # centred on the light centroid within 3 pixels, as star positions are
    # measured (coma moves the light off the chief ray)
    arr = img.array
    c = (n - 1) / 2.0
    yy, xx = (np.mgrid[:n, :n] - c) * step
    w = arr * (np.hypot(xx, yy) < 3 * pixel_scale)
    dx, dy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    psf = psf.shift(-dx, -dy)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = psf
    return psf


def tabulated_psf(
    band,
    *,
    defocus_nm=0.0,
    strut_angle=None,
    optics=None,
    pixel_scale=PIXEL_SCALE,
    oversample=4,
    extent=2.5,
):
    """
    The PSF model of `hst_psf` tabulated as a `galsim.InterpolatedImage`.

    Sampled ``oversample`` times finer than ``pixel_scale`` over a square of
    ``extent`` arcsec and centred on its light centroid within 3 pixels (where
    a catalog puts a star); cached, so repeated calls are free.

    Returns
    -------
    `galsim.InterpolatedImage`
        Flux < 1 by the light beyond the table (< ~2 %).
    """
    o = optics or DEFAULT_OPTICS
    angle = float(o.strut_angle if strut_angle is None else strut_angle)
    return _tabulated(
        _filter(band),
        round(float(defocus_nm), 3),
        round(angle, 3),
        o,
        float(pixel_scale),
        int(oversample),
        float(extent),
    )


def psf_image(band, size=25, *, pixel_scale=PIXEL_SCALE, center=None, **kwargs):
    """
    The pixel-integrated PSF of ``band`` on a ``size x size`` grid (float64).

    Parameters
    ----------
    band : str
        Filter name.
    size : int, optional
        Side in pixels (default 25).
    pixel_scale : float, optional
        Output pixel, arcsec.
    center : (x, y), optional
        0-based pixel position of the star (default: the central pixel).
    **kwargs
        Passed to `tabulated_psf`.
    """
    psf = tabulated_psf(band, pixel_scale=pixel_scale, **kwargs)
    c = (size - 1) / 2.0
    x0, y0 = (c, c) if center is None else center
    img = galsim.ImageD(size, size, scale=pixel_scale)
    psf.drawImage(image=img, offset=(x0 - c, y0 - c), method="auto")
    return img.array.copy()
