# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Noise of drizzled HST images: Poisson and read noise per exposure, drizzled.

A band's image is ``n_exp`` dithered exposures combined by drizzle. Here each
exposure's noise is made by GalSim (`galsim.CCDNoise`: Poisson noise of the
expected electrons from the sources, the diffuse light and the sky, plus
Gaussian read noise) on the detector's pixel grid, which is shifted by a
random sub-pixel dither from the output grid; the noise is then drizzled onto
the output grid (each detector pixel, shrunk to ``pixfrac``, is shared among
the output pixels it overlaps in proportion to the overlap area) and the
exposures are averaged. Drizzling makes the noise of neighbouring output
pixels correlated and the per-pixel rms lower than the rms of one detector
pixel, while the noise over a large aperture is unchanged, as in real
drizzled mosaics. Cosmic rays and hot pixels that survived the rejection are
put into one exposure and drizzled with it.

This shares nothing with the training simulator's noise (white Gaussian noise
with the Poisson variance, `ObservingConditions.variance`), only the depth
and sky of an `ObservingConditions`.
"""

import galsim
import numpy as np

__all__ = ["drizzle_kernels", "drizzled_noise", "noise_correlation"]


def _overlap_1d(shift, pixfrac):
    """Overlaps of a drop of width ``pixfrac`` centred at ``k + shift``
    (k = -1, 0, 1) with the output pixel [-0.5, 0.5]; (..., 3)."""
    shift = np.asarray(shift, float)[..., None]
    k = np.array([-1.0, 0.0, 1.0])
    lo = np.maximum(k + shift - pixfrac / 2.0, -0.5)
    hi = np.minimum(k + shift + pixfrac / 2.0, 0.5)
    return np.clip(hi - lo, 0.0, None)


def drizzle_kernels(shifts, pixfrac=1.0):
    """
    Drizzle weights of dithered exposures onto the output grid.

    Parameters
    ----------
    shifts : ndarray (..., 2)
        Sub-pixel (x, y) offset of each exposure's detector grid from the
        output grid, in [-0.5, 0.5) pixels.
    pixfrac : float, optional
        Drop size in detector pixels, (0, 1].

    Returns
    -------
    ndarray (..., 3, 3)
        ``w[a, b]``: the share of the detector pixel at output offset
        (dy = a - 1, dx = b - 1) in an output pixel, area-normalised per
        exposure (each kernel sums to 1).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.simulation.render_alt.noise import drizzle_kernels
    >>> k = drizzle_kernels(np.array([0.25, 0.0]))  # detector pixels at x + 0.25
    >>> k.round(2).tolist()
    [[0.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.0, 0.0, 0.0]]
    """
    if not 0 < pixfrac <= 1:
        raise ValueError(f"'pixfrac' must be in (0, 1], got {pixfrac}")
    shifts = np.asarray(shifts, float)
    wx = _overlap_1d(shifts[..., 0], pixfrac)
    wy = _overlap_1d(shifts[..., 1], pixfrac)
    w = wy[..., :, None] * wx[..., None, :]
    return w / w.sum(axis=(-2, -1), keepdims=True)


def _apply_kernel(frames, kern):
    """Drizzle (N, S+2, S+2) detector frames with per-frame (N, 3, 3) kernels
    onto (N, S, S)."""
    s = frames.shape[-1] - 2
    out = np.zeros(frames.shape[:-2] + (s, s), frames.dtype)
    for a in range(3):
        for b in range(3):
            out += kern[:, a, b, None, None] * frames[:, a : a + s, b : b + s]
    return out


def drizzled_noise(
    signal,
    bands,
    conditions,
    rng,
    *,
    pixfrac=1.0,
    drizzle=True,
    artifacts=None,
):
    """
    Noise (and surviving artefacts) of drizzled exposures of ``signal``.

    Parameters
    ----------
    signal : ndarray (N, B, S, S)
        Expected sky-subtracted image, electron/s (sources + diffuse light).
    bands : sequence of str
        Band of each of the B planes.
    conditions : `~astro_clustercls.simulation.ObservingConditions`
        Exposure time, number of exposures, sky and read noise per band.
    rng : `numpy.random.Generator`
        Draws the dithers and seeds GalSim's noise generator.
    pixfrac : float, optional
        Drizzle drop size (default 1).
    drizzle : bool, optional
        Drizzle dithered exposures (correlated noise, default); if False the
        exposures are aligned and simply averaged (white noise).
    artifacts : tuple of ndarray, optional
        ``(obj, band, x, y, peak)``: cosmic rays / hot pixels put into the
        first exposure at output pixel (x, y), scaled so that the drizzled peak
        is ``peak`` electron/s.

    Returns
    -------
    noise : ndarray (N, B, S, S) float32
        To be added to ``signal`` (includes the artefacts).
    shifts : ndarray (N, B, n_exp, 2)
        The dithers (x, y) used.
    """
    signal = np.asarray(signal)
    n, nb, s, _ = signal.shape
    n_exp = int(conditions.n_exp)
    if drizzle:
        shifts = rng.uniform(-0.5, 0.5, (n, nb, n_exp, 2))
    else:
        shifts = np.zeros((n, nb, n_exp, 2))
    kern = drizzle_kernels(shifts, pixfrac)  # (n, nb, n_exp, 3, 3)
    seed = int(rng.integers(1, 2**31 - 1))
    dev = galsim.BaseDeviate(seed)
    out = np.zeros((n, nb, s, s), np.float32)
    padded = np.pad(signal, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    padded = np.maximum(padded, 0.0)
    for j, band in enumerate(bands):
        t_exp = conditions.t(band) / n_exp
        sky = float(conditions._get(conditions.sky, band))
        expected = ((padded[:, j] + sky) * t_exp).astype(np.float64)
        ccd = galsim.CCDNoise(
            dev, sky_level=0.0, gain=1.0, read_noise=float(conditions.read_noise)
        )
        acc = np.zeros((n, s, s))
        for e in range(n_exp):
            frames = expected.copy()
            img = galsim.ImageD(frames.reshape(-1, s + 2), copy=False)
            img.addNoise(ccd)  # Poisson(expected) + read noise, electrons
            frames -= expected
            frames /= t_exp
            if e == 0 and artifacts is not None:
                a_obj, a_band, a_x, a_y, a_peak = artifacts
                on = (a_band == j) & (a_x >= 0) & (a_x < s) & (a_y >= 0) & (a_y < s)
                if on.any():
                    peak_w = kern[a_obj[on], j, 0].reshape(on.sum(), -1).max(1)
                    np.add.at(
                        frames,
                        (a_obj[on], a_y[on] + 1, a_x[on] + 1),
                        a_peak[on] * n_exp / peak_w,
                    )
            acc += _apply_kernel(frames, kern[:, j, e])
        out[:, j] = acc / n_exp
    return out, shifts


def noise_correlation(noise, *, max_lag=2):
    """
    Normalised autocorrelation of noise images at small lags.

    Measured with `galsim.CorrelatedNoise` (its estimate of the correlation
    function from an image).

    Parameters
    ----------
    noise : ndarray (..., S, S)
        Noise-only images (stacked along the leading axes).
    max_lag : int, optional
        Largest lag returned.

    Returns
    -------
    ndarray (2 max_lag + 1, 2 max_lag + 1)
        ``rho[max_lag + dy, max_lag + dx]``, 1 at zero lag.
    """
    noise = np.asarray(noise, float)
    imgs = noise.reshape(-1, noise.shape[-2], noise.shape[-1])
    size = 2 * max_lag + 1
    acc = np.zeros((size, size))
    for a in imgs:
        if not np.isfinite(a).all():
            continue
        cn = galsim.CorrelatedNoise(
            galsim.ImageD(a - a.mean(), scale=1.0), correct_periodicity=True
        )
        acc += cn.drawImage(galsim.ImageD(size, size, scale=1.0)).array
    return acc / acc[max_lag, max_lag]
