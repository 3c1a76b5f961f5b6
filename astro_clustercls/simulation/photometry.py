# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Photometric system of the simulator: Vega zeropoints, magnitudes <-> electron/s.

A source of Vega magnitude ``m`` gives ``10**(-0.4 * (m - ZP))`` electron/s in a
drizzled HST image (infinite aperture), where ``ZP`` is the band's Vega
zeropoint. The WFC3/UVIS values are the SMOV zeropoints of WFC3 ISR 2009-31
(STScI "WFC3 Photometric Zeropoints" page; the values commonly used by LEGUS
and PHANGS-HST); the ACS/WFC values are those of Sirianni et al. 2005 (PASP
117, 1049, table 10). They were not re-checked against the time-dependent
2020 WFC3 calibration, which changes them by <~0.03 mag.
"""

import numpy as np

__all__ = [
    "VEGA_ZEROPOINTS",
    "EXTINCTION_COEFFICIENTS",
    "zeropoint",
    "mag_to_flux",
    "flux_to_mag",
    "canonical_band",
]

#: Vega zeropoints (mag for 1 electron/s, infinite aperture).
#: Keys are ``'<instrument>/<filter>'``; bare filter names resolve to WFC3/UVIS
#: (F435W and F606W, which only ACS/WFC has among these, resolve to ACS).
VEGA_ZEROPOINTS = {
    "WFC3/F275W": 22.632,
    "WFC3/F336W": 23.484,
    "WFC3/F438W": 24.976,
    "WFC3/F555W": 25.819,
    "WFC3/F814W": 24.684,
    "ACS/F435W": 25.779,
    "ACS/F555W": 25.724,
    "ACS/F606W": 26.398,
    "ACS/F814W": 25.501,
}

#: A_band / E(B-V) for a Milky-Way (Cardelli et al. 1989, R_V = 3.1) law at the
#: filters' pivot wavelengths (approximate, +-0.1).
EXTINCTION_COEFFICIENTS = {
    "F275W": 6.0,
    "F336W": 5.1,
    "F435W": 4.1,
    "F438W": 4.1,
    "F555W": 3.2,
    "F606W": 2.9,
    "F814W": 1.85,
}

_ACS_ONLY = ("F435W", "F606W")


def canonical_band(band):
    """
    Return the ``'<instrument>/<filter>'`` key of ``band``.

    Parameters
    ----------
    band : str
        ``'F555W'`` (WFC3/UVIS unless only ACS has it), ``'ACS/F555W'``,
        ``'WFC3/F555W'`` or ``'acs_f555w'``.

    Examples
    --------
    >>> from astro_clustercls.simulation.photometry import canonical_band
    >>> canonical_band('f555w'), canonical_band('F606W'), canonical_band('ACS/F814W')
    ('WFC3/F555W', 'ACS/F606W', 'ACS/F814W')
    """
    if not isinstance(band, str):
        raise TypeError(f"'band' must be a string, got {type(band).__name__}")
    name = (
        band.strip().upper().replace("_", "/").replace("UVIS", "").replace("WFC/", "")
    )
    name = name.replace("WFC3//", "WFC3/")
    if "/" in name:
        inst, filt = name.split("/", 1)
        inst = "ACS" if inst.startswith("ACS") else "WFC3"
    else:
        filt = name
        inst = "ACS" if filt in _ACS_ONLY else "WFC3"
    key = f"{inst}/{filt}"
    if key not in VEGA_ZEROPOINTS:
        raise ValueError(
            f"no Vega zeropoint for band {band!r}; known: {sorted(VEGA_ZEROPOINTS)}"
        )
    return key


def zeropoint(band):
    """
    Vega zeropoint of ``band`` (mag giving 1 electron/s).

    Examples
    --------
    >>> from astro_clustercls.simulation.photometry import zeropoint
    >>> zeropoint('F555W')
    25.819
    """
    return VEGA_ZEROPOINTS[canonical_band(band)]


def mag_to_flux(mag, band):
    """
    Convert Vega magnitudes to count rates (electron/s, infinite aperture).

    Parameters
    ----------
    mag : float or array-like
        Vega magnitudes.
    band : str
        Band name (see `canonical_band`).

    Returns
    -------
    flux : float or ndarray
        electron/s.

    Examples
    --------
    >>> from astro_clustercls.simulation.photometry import mag_to_flux
    >>> float(mag_to_flux(25.819, 'F555W'))
    1.0
    >>> float(mag_to_flux(20.819, 'F555W'))  # doctest: +FLOAT_CMP
    100.0
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - zeropoint(band)))


def flux_to_mag(flux, band):
    """
    Convert count rates (electron/s) to Vega magnitudes; non-positive -> NaN.

    Examples
    --------
    >>> from astro_clustercls.simulation.photometry import flux_to_mag
    >>> float(flux_to_mag(100.0, 'F555W'))  # doctest: +FLOAT_CMP
    20.819
    """
    flux = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            flux > 0,
            zeropoint(band) - 2.5 * np.log10(np.where(flux > 0, flux, 1)),
            np.nan,
        )
