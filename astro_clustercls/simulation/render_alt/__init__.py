# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
A second, independent renderer of simulated cutouts, built on GalSim.

For judging transfer only: networks trained on the training simulator
(`~astro_clustercls.simulation.make_training_set`) are tested on cutouts of
the same kinds of objects (the same physical descriptions,
`~astro_clustercls.simulation.draw_population`) rendered with no shared
rendering code: GalSim profiles, a physical HST PSF model (diffraction,
charge diffusion, detector and drizzle pixels), host-galaxy light with
resolved stars and dust, and drizzled Poisson noise of dithered exposures.

Requires GalSim (``pip install galsim``); imports no torch.
"""

from .noise import drizzle_kernels, drizzled_noise, noise_correlation
from .profiles import component_profile, eff_profile, object_profiles
from .psf import (
    BAND_WAVELENGTHS,
    DEFAULT_OPTICS,
    HSTOpticsModel,
    hst_psf,
    psf_image,
    tabulated_psf,
)
from .render import draw_psf_variants, render_cutouts
from .testset import make_test_set

__all__ = [
    "render_cutouts",
    "make_test_set",
    "draw_psf_variants",
    "HSTOpticsModel",
    "DEFAULT_OPTICS",
    "BAND_WAVELENGTHS",
    "hst_psf",
    "tabulated_psf",
    "psf_image",
    "eff_profile",
    "component_profile",
    "object_profiles",
    "drizzle_kernels",
    "drizzled_noise",
    "noise_correlation",
]
