# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Realistic simulated HST fields and cutouts of star-cluster candidates.

`simulate_field` makes five-band WFC3/UVIS-like mosaics (0.04"/px, electron/s,
TAN WCS) with diffuse galaxy light, noise, chip gaps and objects of the four
classes; `inject` adds the same objects to a user's images;
`make_training_set` renders many labelled cutouts fast. The per-class
distributions are calibrated on the LEGUS catalogs
(`astro_clustercls.simulation.calibration`).

Two versions: v1 (``SIMULATOR_VERSION``, the default, what the bundled
networks were trained on) and v2 (``simulator='v2'`` or
``params=V2_PARAMETERS``): young populations star by star, loose
associations, crowded disks (field stars, HII regions, dust lanes) and domain
randomisation of the observing set-up, recorded per object.
"""

from ._version import SIMULATOR_VERSION, SIMULATOR_VERSIONS
from .field import simulate_field
from .inject import inject
from .instrument_psf import INSTRUMENT_BANDS, InstrumentPSF, get_instrument_psf
from .label_noise import (
    HUMAN_AGREEMENT,
    apply_label_noise,
    expert_confusion_matrix,
    inter_expert_agreement,
)
from .observing import (
    DEFAULT_CONDITIONS,
    PHANGS_EXPTIME,
    ObservingConditions,
    correlated_noise,
    noise_correlation,
)
from .photometry import VEGA_ZEROPOINTS, flux_to_mag, mag_to_flux, zeropoint
from .populations import (
    DEFAULT_PARAMETERS,
    LEGUS_DISTANCES,
    V2_PARAMETERS,
    PopulationParameters,
    PopulationParametersV2,
    draw_population,
    parameters_for,
    pc_per_pixel,
    ssp_colours,
)
from .psf import DEFAULT_PSFS, MoffatPSF, get_psf
from .training_set import (
    DOMAIN_RANDOMISATION,
    HELD_OUT_GALAXY,
    VARY_CONDITIONS,
    TrainingSet,
    make_training_set,
)

__all__ = [
    "SIMULATOR_VERSION",
    "SIMULATOR_VERSIONS",
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
    "PHANGS_EXPTIME",
    "correlated_noise",
    "noise_correlation",
    "PopulationParameters",
    "PopulationParametersV2",
    "DEFAULT_PARAMETERS",
    "V2_PARAMETERS",
    "parameters_for",
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
    "DOMAIN_RANDOMISATION",
    "simulate_field",
    "inject",
]
