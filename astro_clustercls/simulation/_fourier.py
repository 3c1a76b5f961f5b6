# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Analytic Fourier transforms of the simulator's light profiles (private).

Every object is a sum of components whose 2D Fourier transforms are analytic:
point sources (1), Moffat / EFF profiles, exponential disks and Gaussians.
Multiplying by a band's optical transfer function (PSF x pixel response) and
one inverse FFT per stamp and band renders pixel-integrated images with exact
sub-pixel positions; this is what makes training sets fast.

Conventions: ``k`` in radians per pixel; a profile normalised to unit total
flux has transform 1 at k = 0.
"""

import numpy as np
from scipy.special import gamma as _gamma
from scipy.special import kv as _kv

__all__ = []

# --- Moffat / EFF transform: F(x; nu) = 2/Gamma(nu) (x/2)^nu K_nu(x), x = k a,
# nu = beta - 1, for I(r) ~ (1 + r^2/a^2)^-beta.  Tabulated on u = sqrt(x).
_NU_GRID = np.round(np.arange(0.20, 3.001, 0.05), 3)
_U_MAX = 9.0
_NU_TAB = 1800
_U = np.linspace(0.0, _U_MAX, _NU_TAB + 1)


def moffat_ft_exact(x, nu):
    """Exact normalised Fourier transform of a Moffat profile (see module doc)."""
    x = np.asarray(x, dtype=float)
    out = np.ones_like(x)
    pos = x > 0
    xp = x[pos]
    out[pos] = 2.0 / _gamma(nu) * (xp / 2.0) ** nu * _kv(nu, xp)
    return out


def _build_table():
    tab = np.empty((_NU_GRID.size, _U.size), dtype=np.float32)
    for i, nu in enumerate(_NU_GRID):
        tab[i] = moffat_ft_exact(_U**2, nu)
    tab[:, -1] = 0.0
    return tab


_TABLE = None


def _table():
    global _TABLE
    if _TABLE is None:
        _TABLE = _build_table()
    return _TABLE


def nu_index(beta):
    """Index in the tabulated nu grid nearest to ``beta - 1`` (clipped)."""
    nu = np.asarray(beta, dtype=float) - 1.0
    idx = np.rint((nu - _NU_GRID[0]) / 0.05).astype(np.intp)
    return np.clip(idx, 0, _NU_GRID.size - 1)


def beta_of_index(idx):
    """The Moffat beta actually used for a table index."""
    return _NU_GRID[np.asarray(idx)] + 1.0


def moffat_ft_table(x, idx):
    """Fast Moffat transform by linear interpolation in sqrt(x) (|error| < 1e-3)."""
    tab = _table()
    u = np.sqrt(x) * (_NU_TAB / _U_MAX)
    np.minimum(u, _NU_TAB - 1e-3, out=u)
    i0 = u.astype(np.intp)
    frac = (u - i0).astype(np.float32)
    row = tab[idx]
    if row.ndim == 1:
        lo = row[i0]
        hi = row[i0 + 1]
    else:  # idx per component: (M,) -> broadcast over the frequency axes
        flat = i0 + (np.asarray(idx) * tab.shape[1]).reshape(
            (-1,) + (1,) * (i0.ndim - 1)
        )
        lo = tab.ravel()[flat]
        hi = tab.ravel()[flat + 1]
    return lo + frac * (hi - lo)


def moffat_ft_table2(x2, idx):
    """Fast Moffat transform of ``x2 = (k a)^2`` for components of table rows ``idx``.

    ``x2`` has shape (M, ...) and ``idx`` shape (M,); float32 throughout.
    """
    tab = _table()
    u = np.sqrt(np.sqrt(x2, dtype=np.float32))
    u *= np.float32(_NU_TAB / _U_MAX)
    np.minimum(u, np.float32(_NU_TAB - 1e-3), out=u)
    i0 = u.astype(np.int32)
    u -= i0
    rows = np.asarray(idx, np.int32) * np.int32(tab.shape[1])
    i0 += rows.reshape((-1,) + (1,) * (x2.ndim - 1))
    flat = tab.ravel()
    lo = flat.take(i0)
    hi = flat.take(i0 + 1)
    hi -= lo
    hi *= u
    hi += lo
    return hi


def moffat_alpha(fwhm, beta):
    """Moffat core radius ``a`` for a given FWHM and beta."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_half_light(a, beta):
    """Half-light radius of an (untruncated) Moffat / EFF profile."""
    return a * np.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)


def frequency_grid(pad):
    """(ky, kx) grids (rad/pixel) of an rfft2 of a ``pad x pad`` array."""
    ky = 2 * np.pi * np.fft.fftfreq(pad)
    kx = 2 * np.pi * np.fft.rfftfreq(pad)
    return ky.astype(np.float32), kx.astype(np.float32)


def pixel_response(ky, kx):
    """Transform of a unit top-hat pixel: sinc(kx/2) sinc(ky/2)."""
    return (
        np.sinc(ky[:, None] / (2 * np.pi)) * np.sinc(kx[None, :] / (2 * np.pi))
    ).astype(np.float32)


def otf_image(otf, size, center=None, pad=None):
    """
    A PSF's pixel-integrated image on a ``size x size`` grid, from its OTF.

    ``otf(ky, kx)`` gives the transfer function on the frequency grid of
    `frequency_grid`; ``center`` is the (x, y) position of the star, 0-based
    (default: the central pixel); ``pad`` the FFT grid (default ``4 * size``,
    rounded up to even).
    """
    size = int(size)
    pad = int(pad or 4 * size + (4 * size) % 2)
    c = (size - 1) / 2.0
    x0, y0 = (c, c) if center is None else center
    ky, kx = frequency_grid(pad)
    phase = np.exp(-1j * (ky[:, None] * y0 + kx[None, :] * x0))
    img = np.fft.irfft2(otf(ky, kx) * phase, s=(pad, pad))
    return img[:size, :size].astype(np.float64)
