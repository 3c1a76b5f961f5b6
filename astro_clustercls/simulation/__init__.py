# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Realistic simulated HST fields and cutouts of star-cluster candidates.

`simulate_field` makes five-band WFC3/UVIS-like mosaics (0.04"/px, electron/s,
TAN WCS) with diffuse galaxy light, noise, chip gaps and objects of the four
classes; `inject` adds the same objects to a user's images;
`make_training_set` renders many labelled cutouts fast. The per-class
distributions are calibrated on the LEGUS catalogs
(`astro_clustercls.simulation.calibration`).
"""

from ._version import SIMULATOR_VERSION
from .field import simulate_field
from .inject import inject
from .instrument_psf import INSTRUMENT_BANDS, InstrumentPSF, get_instrument_psf
from .label_noise import (
    HUMAN_AGREEMENT,
    apply_label_noise,
    expert_confusion_matrix,
    inter_expert_agreement,
)
from .observing import DEFAULT_CONDITIONS, ObservingConditions
from .photometry import VEGA_ZEROPOINTS, flux_to_mag, mag_to_flux, zeropoint
from .populations import (
    DEFAULT_PARAMETERS,
    LEGUS_DISTANCES,
    PopulationParameters,
    draw_population,
    pc_per_pixel,
    ssp_colours,
)
from .psf import DEFAULT_PSFS, MoffatPSF, get_psf
from .training_set import (
    HELD_OUT_GALAXY,
    VARY_CONDITIONS,
    TrainingSet,
    make_training_set,
)

__all__ = [
    "SIMULATOR_VERSION",
    "VEGA_ZEROPOINTS",
    "zeropoint",
    "mag_to_flux",
    "flux_to_mag",
    "MoffatPSF",
    "DEFAULT_PSFS",
    "get_psf",
    "InstrumentPSF",
    "get_instrument_psf",
    "INSTRUMENT_BANDS",
    "ObservingConditions",
    "DEFAULT_CONDITIONS",
    "PopulationParameters",
    "DEFAULT_PARAMETERS",
    "LEGUS_DISTANCES",
    "draw_population",
    "pc_per_pixel",
    "ssp_colours",
    "HUMAN_AGREEMENT",
    "expert_confusion_matrix",
    "inter_expert_agreement",
    "apply_label_noise",
    "TrainingSet",
    "make_training_set",
    "HELD_OUT_GALAXY",
    "VARY_CONDITIONS",
    "simulate_field",
    "inject",
]
