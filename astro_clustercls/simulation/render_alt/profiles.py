# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
GalSim light profiles for the simulator's physical descriptions of objects.

`astro_clustercls.simulation.draw_population` describes every object as a
list of light components (a ``Components`` record: kind, offset, size, axis
ratio, orientation, Moffat index and flux per band). This module turns each
component into a unit-flux GalSim profile, written from the description
alone (no code of the training simulator's renderer is used):

point source
    `galsim.DeltaFunction`.
EFF / Moffat cluster profile, ``I ~ (1 + r^2/a^2)^-beta``
    `galsim.Moffat` with the same ``beta`` and the same circularised
    half-light radius, tidally truncated at `TIDAL_RATIO` core radii (a
    finite cluster; GalSim also needs a finite profile for ``beta < 1.5``,
    whose untruncated wings hold most of the light far out). The core radius is
    set so that the *truncated* profile has the described half-light radius.
exponential disk
    `galsim.InclinedExponential`: a disk of thickness `DISK_THICKNESS` scale
    lengths inclined to give the described axis ratio (a thick disk seen
    edge-on is not a line), rotated to the described orientation.
Gaussian (diffuse lumps)
    `galsim.Gaussian`.

Ellipticity is an area-preserving shear (``q``, position angle ``theta``
counter-clockwise from +x); offsets are shifts. Profiles are in arcsec, for
images of ``pixel_scale`` arcsec per pixel with +x along array columns and +y
along rows (``array[y, x]``), as in the training simulator.
"""

import galsim
import numpy as np

from ..._constants import PIXEL_SCALE
from ..populations import KIND_EXPDISK, KIND_GAUSS, KIND_MOFFAT, KIND_POINT

__all__ = [
    "TIDAL_RATIO",
    "DISK_THICKNESS",
    "moffat_beta",
    "moffat_half_light_radius",
    "eff_profile",
    "component_profile",
    "object_profiles",
]

#: Truncation (tidal) radius of EFF / Moffat profiles in core radii: a
#: King-like concentration log10(r_t / r_c) ~ 1.5, typical of young clusters.
TIDAL_RATIO = 30.0
#: Scale height / scale length of exponential disks.
DISK_THICKNESS = 0.12
# the Moffat index grid of the physical descriptions: beta = 1.2 + 0.05 i
_BETA0, _DBETA = 1.2, 0.05


def moffat_beta(beta_idx):
    """Moffat ``beta`` of a component's ``beta_idx`` (as in the descriptions)."""
    return np.round(_BETA0 + _DBETA * np.asarray(beta_idx, float), 3)


def moffat_half_light_radius(a, beta):
    """Half-light radius of an untruncated Moffat profile of core radius ``a``."""
    return a * np.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)


def _truncated_core(hlr, beta, ratio):
    """Core radius whose Moffat truncated at ``ratio`` cores has half-light ``hlr``."""
    inner = 1.0 - (1.0 + ratio**2) ** (1.0 - beta)  # untruncated flux fraction
    x = np.sqrt((1.0 - 0.5 * inner) ** (1.0 / (1.0 - beta)) - 1.0)
    return hlr / x


def eff_profile(hlr, beta, *, q=1.0, theta=0.0, flux=1.0, tidal_ratio=TIDAL_RATIO):
    """
    A (truncated) EFF cluster: `galsim.Moffat` of half-light radius ``hlr``.

    Parameters
    ----------
    hlr : float
        Circularised half-light radius, arcsec.
    beta : float
        Moffat index (EFF ``gamma / 2``).
    q : float, optional
        Minor / major axis ratio.
    theta : float, optional
        Position angle of the major axis, radians from +x towards +y.
    flux : float, optional
        Total flux.
    tidal_ratio : float, optional
        Truncation radius in core radii (default `TIDAL_RATIO`).

    Examples
    --------
    >>> from astro_clustercls.simulation.render_alt.profiles import eff_profile
    >>> p = eff_profile(0.05, 1.5, q=0.7, flux=20.0)
    >>> round(float(p.flux), 6)
    20.0
    """
    beta = round(float(beta), 4)
    core = _truncated_core(float(hlr), beta, tidal_ratio)
    prof = _unit_moffat(beta, float(tidal_ratio)).dilate(core)
    if flux != 1.0:
        prof = prof.withFlux(flux)
    if q < 0.999:
        prof = prof.shear(q=float(q), beta=float(theta) * galsim.radians)
    return prof


_UNIT_MOFFATS = {}


def _unit_moffat(beta, ratio):
    """A truncated Moffat of unit core radius, cached: GalSim computes the
    Fourier-space extent of a truncated Moffat numerically (tens of ms), so
    every cluster is a dilation of one of these."""
    key = (beta, ratio)
    if key not in _UNIT_MOFFATS:
        prof = galsim.Moffat(beta=beta, scale_radius=1.0, trunc=ratio)
        prof.maxk, prof.stepk  # noqa: B018 - compute once
        _UNIT_MOFFATS[key] = prof
    return _UNIT_MOFFATS[key]


def _inclination(q, thickness):
    """Inclination of a disk of relative thickness ``thickness`` seen with axis
    ratio ``q`` (``q^2 = cos^2 i + thickness^2 sin^2 i``)."""
    q = max(float(q), thickness + 1e-3)
    c2 = (q * q - thickness**2) / (1.0 - thickness**2)
    return float(np.arccos(np.sqrt(np.clip(c2, 0.0, 1.0))))


def component_profile(comp, m, *, pixel_scale=PIXEL_SCALE, flux=1.0):
    """
    The GalSim profile of component ``m`` of a ``Components`` record.

    Sizes and offsets in the record are in pixels; the profile is in arcsec,
    shifted by the component's offset from the object's reference point.

    Returns
    -------
    `galsim.GSObject`
    """
    kind = int(comp.kind[m])
    s = pixel_scale
    q = float(np.clip(comp.q[m], 0.05, 1.0))
    theta = float(comp.theta[m])
    size = float(comp.size[m]) * s  # along the major axis
    if kind == KIND_POINT:
        prof = galsim.DeltaFunction(flux=flux)
    elif kind == KIND_MOFFAT:
        beta = float(moffat_beta(comp.beta_idx[m]))
        hlr = moffat_half_light_radius(size * np.sqrt(q), beta)
        prof = eff_profile(hlr, beta, q=q, theta=theta, flux=flux)
    elif kind == KIND_EXPDISK:
        inc = _inclination(q, DISK_THICKNESS)
        prof = galsim.InclinedExponential(
            inclination=inc * galsim.radians,
            scale_radius=size,
            scale_h_over_r=DISK_THICKNESS,
            flux=flux,
        ).rotate(theta * galsim.radians)
    elif kind == KIND_GAUSS:
        prof = galsim.Gaussian(sigma=size * np.sqrt(q), flux=flux)
        if q < 0.999:
            prof = prof.shear(q=q, beta=theta * galsim.radians)
    else:
        raise ValueError(f"unknown component kind {kind}")
    dx, dy = float(comp.dx[m]) * s, float(comp.dy[m]) * s
    if dx or dy:
        prof = prof.shift(dx, dy)
    return prof


def object_profiles(comp, n, *, pixel_scale=PIXEL_SCALE):
    """
    Unit-flux profiles and fluxes of every object's components.

    Parameters
    ----------
    comp : Components
        Light components (``obj`` sorted), e.g. from `draw_population`.
    n : int
        Number of objects.

    Returns
    -------
    list of (list of `galsim.GSObject`, ndarray (M_i, B))
        Per object: its components' unit-flux profiles and their fluxes per
        band (electron/s).
    """
    starts = np.searchsorted(comp.obj, np.arange(n + 1))
    out = []
    for i in range(n):
        sel = range(starts[i], starts[i + 1])
        profs = [component_profile(comp, m, pixel_scale=pixel_scale) for m in sel]
        out.append((profs, comp.flux[starts[i] : starts[i + 1]]))
    return out
