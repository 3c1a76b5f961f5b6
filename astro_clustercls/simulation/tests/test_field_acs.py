# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulator v2 fields with ACS/WFC F435W / F606W in the F438W / F555W slots."""

import numpy as np
import pytest
from photutils.aperture import (
    ApertureStats,
    CircularAnnulus,
    CircularAperture,
    aperture_photometry,
)

from astro_clustercls.simulation import (
    DEFAULT_CONDITIONS,
    V2_PARAMETERS,
    flux_to_mag,
    get_psf,
    simulate_field,
)
from astro_clustercls.simulation._populations_v2 import extinction
from astro_clustercls.simulation.field import ACS_SLOTS, field_bands

WFC3 = ("F275W", "F336W", "F438W", "F555W", "F814W")


def test_field_bands_and_bad_acs_bands():
    assert field_bands() == WFC3
    assert field_bands(acs_bands="f435w") == ("F275W", "F336W", "F435W", "F555W",
                                              "F814W")
    assert field_bands(acs_bands=True) == ("F275W", "F336W", "F435W", "F606W",
                                           "F814W")
    assert field_bands(acs_bands=["F606W", "F606W"]) == field_bands(acs_bands="F606W")
    with pytest.raises(ValueError, match="'acs_bands' must be among"):
        simulate_field(seed=0, n_objects=2, shape=(32, 32), acs_bands="F814W")
    with pytest.raises(ValueError, match="'acs_bands' 'F606W' takes the place of "
                                         "F555W"):
        simulate_field(seed=0, n_objects=2, shape=(32, 32), bands=("F438W", "F814W"),
                       acs_bands="F606W")


def test_acs_field_provenance():
    """Band names, headers, meta and truth columns say the true filter."""
    images, truth = simulate_field(seed=2, n_objects=8, shape=(96, 96),
                                   simulator="v2", acs_bands=True, randomise=False)
    assert images.bands == ("F275W", "F336W", "F435W", "F606W", "F814W")
    assert truth.meta["simulator_version"] == "2.0"
    assert truth.meta["acs_bands"] == {"F438W": "F435W", "F555W": "F606W"}
    assert "flux_F606W" in truth.colnames and "flux_F555W" not in truth.colnames
    # every row, the bright field stars' too, says which slots are ACS
    assert len(truth) > 8 and truth["from_field"].any()
    assert truth["acs_F435W"].all() and truth["acs_F606W"].all()
    for band in images.bands:
        meta = images[band].meta
        assert meta["FILTER"] == band and meta["SIMVERS"] == "2.0"
        # randomise=False: LEGUS exposures, no depth change
        assert meta["EXPTIME"] == pytest.approx(DEFAULT_CONDITIONS.t(band))
        if band in ACS_SLOTS:
            assert (meta["INSTRUME"], meta["DETECTOR"]) == ("ACS", "WFC")
            assert meta["BANDSLOT"] == ACS_SLOTS[band]
        else:
            assert (meta["INSTRUME"], meta["DETECTOR"]) == ("WFC3", "UVIS")
            assert "BANDSLOT" not in meta
    # without the option: WFC3 bands, columns False, empty mapping
    images, truth = simulate_field(seed=2, n_objects=4, shape=(64, 64),
                                   simulator="v2")
    assert images.bands == WFC3 and truth.meta["acs_bands"] == {}
    assert not truth["acs_F435W"].any() and not truth["acs_F606W"].any()
    assert images["F555W"].meta["INSTRUME"] == "WFC3"


def test_acs_star_photometry_matches_its_acs_magnitude():
    """
    Aperture photometry (photutils; aperture correction from the ACS band's
    PSF) of isolated stars in the substituted bands gives their ACS
    magnitudes (ACS zeropoints); read with the WFC3 zeropoints of the slot
    they would be about 0.6 (F606W) and 0.8 mag (F435W) off.
    """
    params = V2_PARAMETERS.copy(class4_subtypes={"star": 1.0})
    images, truth = simulate_field(seed=1, n_objects=12, shape=(160, 160),
                                   simulator="v2", acs_bands=True, params=params,
                                   classes=[4], distance=4.0, background="disk",
                                   chip_gap=False, randomise=False)
    xy = np.column_stack([truth["x_centroid"], truth["y_centroid"]])
    sep = np.hypot(*(xy[:, None] - xy[None]).T)
    np.fill_diagonal(sep, np.inf)
    use = ((truth["subtype"] == "star") & (sep.min(axis=1) > 14)
           & (xy.min(axis=1) > 14) & (xy.max(axis=1) < 160 - 14)
           & (truth["mag_F606W"] < 22.6))
    assert use.sum() >= 3
    for band in ACS_SLOTS:
        data = images[band].data
        aper = CircularAperture(xy[use], 4.0)
        sky = ApertureStats(data, CircularAnnulus(xy[use], 8.0, 12.0)).median
        flux = aperture_photometry(data, aper)["aperture_sum"].value
        flux -= sky * aper.area
        psf = get_psf(band).image(63)  # randomise=False: PSF scale 1
        ee = aperture_photometry(psf, CircularAperture((31, 31), 4.0))
        flux /= ee["aperture_sum"][0]
        dust = extinction([band], np.asarray(truth["dust_lane_ebv"][use]))[:, 0]
        expected = np.asarray(truth[f"mag_{band}"][use]) + dust
        np.testing.assert_allclose(flux_to_mag(flux, band), expected, atol=0.08)
        # the slot's WFC3 zeropoint would not do
        wrong = flux_to_mag(flux, ACS_SLOTS[band]) - expected
        assert np.all(np.abs(wrong) > 0.4)
