# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Normalisation recipes and augmentation of multi-band cutouts.

A network sees cutouts only through a named normalisation *recipe*, recorded in
its weights' meta (``meta['normalization']``), so the same recipe is applied
in training and inference. Recipes live in the `NORMALIZATIONS` registry;
`normalize` applies one. `dihedral` gives the 8 rotations/flips of a square
cutout (used for augmentation and test-time augmentation) and `random_augment`
the random training augmentation.

The ``'asinh-v1'`` recipe
-------------------------
For each object (never using the other objects of the batch):

1. **Background** ``b[band]``: the median of the finite pixels of the cutout's
   outer ring, the outermost ``ring_width = 2`` rows and columns (the pixels
   farthest from the object), per band. Its noise ``sigma[band]`` is
   1.4826 times the median absolute deviation of the same pixels.
2. **Scale** ``s``: one value per object shared by all bands, so that band flux
   ratios (colours) are preserved. ``s`` is the maximum over the central
   ``5 x 5`` pixels of the band-averaged background-subtracted image, floored
   at ``noise_floor = 3`` times the quadratic mean over bands of ``sigma`` (so
   pure-noise or faint cutouts are not stretched into noise). When neither is
   a positive number (e.g. an all-NaN ring and a non-positive centre), the
   maximum absolute background-subtracted value of the cutout is used, and 1
   when that is not positive either (a constant cutout).
3. **Stretch**: ``y = asinh((x - b) / (alpha * s)) / asinh(1 / alpha)`` with
   ``alpha = 0.1``: a pixel at the object's (band-averaged) peak maps to about
   1, faint structure ``alpha * s`` is still in the near-linear part, and
   bright neighbours are compressed logarithmically.
4. Non-finite pixels (NaN, +-inf: off the image, masked) become 0, the
   background level. Finite inputs never produce non-finite outputs.

Because ``b``, ``sigma`` and ``s`` all scale with the data, multiplying a
cutout by any positive factor leaves the result unchanged (to float32
rounding); multiplying only the object (not the background noise) changes it
only through the noise, for objects well above the noise floor.
"""

import math
import numbers
from functools import partial

import numpy as np
import torch

from .utils._parameters import validate_choice

__all__ = [
    "DEFAULT_RECIPE",
    "NORMALIZATIONS",
    "normalize",
    "dihedral",
    "dihedral_inverse",
    "random_augment",
]

#: The recipe used when none is named.
DEFAULT_RECIPE = "asinh-v1"

_PIXELS_PER_CHUNK = 1 << 20  # ~4 MB of float32 per chunk: stays in cache
_MAD_TO_SIGMA = 1.482602218505602


def _ring(x, width):
    """Pixels of the outer ring of width ``width``, shape (n, B, R)."""
    n, b, ny, nx = x.shape
    w = min(width, (ny + 1) // 2, (nx + 1) // 2)
    parts = [x[:, :, :w, :].reshape(n, b, -1),
             x[:, :, ny - w:, :].reshape(n, b, -1) if ny - w >= w else None,
             x[:, :, w:ny - w, :w].reshape(n, b, -1),
             x[:, :, w:ny - w, nx - w:].reshape(n, b, -1) if nx - w >= w else None]
    return np.concatenate([p for p in parts if p is not None], axis=-1)


def _nan_median_sorted(s, nvalid):
    """Median of each row of ``s`` (sorted, NaN last) over its first ``nvalid``."""
    lo = np.maximum((nvalid - 1) // 2, 0)[..., None]
    hi = np.maximum(nvalid // 2, 0)[..., None]
    a = np.take_along_axis(s, lo, axis=-1)[..., 0].astype(np.float64)
    b = np.take_along_axis(s, hi, axis=-1)[..., 0].astype(np.float64)
    med = 0.5 * (a + b)
    med[nvalid == 0] = np.nan
    return med


def _ring_stats(x, width):
    """NaN-aware median and MAD-sigma of the outer ring, each (n, B) float64."""
    r = _ring(x, width)
    r[~np.isfinite(r)] = np.nan  # +-inf would sort to the ends
    nvalid = r.shape[-1] - np.count_nonzero(np.isnan(r), axis=-1)
    med = _nan_median_sorted(np.sort(r, axis=-1), nvalid)
    with np.errstate(over="ignore", invalid="ignore"):
        dev = np.abs(r - med[..., None].astype(np.float32))
    sigma = _MAD_TO_SIGMA * _nan_median_sorted(np.sort(dev, axis=-1), nvalid)
    return med, sigma


def _asinh_v1(x, *, alpha=0.1, ring_width=2, center_box=5, noise_floor=3.0):
    """
    The ``'asinh-v1'`` recipe, in place on ``x`` (n, B, S, S) float32.

    See the module docstring for the definition.
    """
    n, nb, ny, nx = x.shape
    norm = math.asinh(1.0 / alpha)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        bkg, sigma = _ring_stats(x, ring_width)
        bkg0 = np.where(np.isfinite(bkg), bkg, 0.0)

        # band-averaged, background-subtracted central box, in float64
        cy, cx = ny // 2, nx // 2
        h = center_box // 2
        box = x[:, :, max(cy - h, 0):cy + h + 1, max(cx - h, 0):cx + h + 1]
        box = box.astype(np.float64) - bkg0[:, :, None, None]
        good = np.isfinite(box)
        cnt = good.sum(axis=1)
        mean = np.where(good, box, 0.0).sum(axis=1) / np.maximum(cnt, 1)
        mean[cnt == 0] = -np.inf
        peak = mean.reshape(n, -1).max(axis=-1)

        nsig = np.isfinite(sigma).sum(axis=1)
        rms = np.sqrt(np.where(np.isfinite(sigma), sigma**2, 0.0).sum(axis=1)
                      / np.maximum(nsig, 1))
        rms[nsig == 0] = np.nan
        scale = np.fmax(peak, noise_floor * rms)

        np.subtract(x, bkg0[:, :, None, None].astype(np.float32), out=x)
        bad = ~(np.isfinite(scale) & (scale > 0))
        if bad.any():
            xb = x[bad]
            fallback = np.where(np.isfinite(xb), np.abs(xb), 0.0).reshape(
                len(xb), -1).max(axis=-1).astype(np.float64)
            scale[bad] = np.where(np.isfinite(fallback) & (fallback > 0),
                                  fallback, 1.0)

        inv = (1.0 / (alpha * scale)).astype(np.float32)
        np.multiply(x, inv[:, None, None, None], out=x)
        np.arcsinh(x, out=x)
        np.multiply(x, np.float32(1.0 / norm), out=x)
    return x, bkg0, scale


def _finish(x, orig, bkg, scale, alpha):
    """Set non-finite outputs to 0, except overflows of finite inputs."""
    nonfinite = ~np.isfinite(x)
    if not nonfinite.any():
        return x
    with np.errstate(over="ignore", invalid="ignore"):
        overflow = nonfinite & np.isfinite(orig)
    np.copyto(x, 0.0, where=nonfinite)
    if overflow.any():
        # asinh(z) = sign(z) * (log 2 + log|z|) for the huge |z| that overflow
        idx = np.nonzero(overflow)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            d = np.asarray(orig[idx], dtype=np.float64) - bkg[idx[0], idx[1]]
            log_z = math.log(2.0) + np.log(np.abs(d)) - np.log(alpha * scale[idx[0]])
            big = np.sign(d) * log_z / math.asinh(1.0 / alpha)
        x[idx] = np.where(np.isfinite(big), big, 0.0).astype(np.float32)
    return x


def _run_asinh_v1(data, *, alpha=0.1, ring_width=2, center_box=5, noise_floor=3.0):
    n, nb, ny, nx = data.shape
    out = np.empty(data.shape, dtype=np.float32)
    chunk = max(1, _PIXELS_PER_CHUNK // max(nb * ny * nx, 1))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        src = data[start:stop]
        x = out[start:stop]
        with np.errstate(over="ignore", invalid="ignore"):
            x[...] = src  # cast (and byte-swap) into the output buffer
        x, bkg, scale = _asinh_v1(x, alpha=alpha, ring_width=ring_width,
                                     center_box=center_box, noise_floor=noise_floor)
        _finish(x, src, bkg, scale, alpha)
    return out


def _run_none(data):
    out = np.empty(data.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out[...] = data
    out[~np.isfinite(out)] = 0.0
    return out


#: Registry of normalisation recipes: name -> function of an (N, B, S, S)
#: array returning a new float32 array of the same shape. Names are frozen
#: once used by released weights: a changed recipe gets a new name.
NORMALIZATIONS = {
    "asinh-v1": partial(_run_asinh_v1, alpha=0.1, ring_width=2, center_box=5,
                        noise_floor=3.0),
    "none": _run_none,
}


def normalize(data, recipe=DEFAULT_RECIPE):
    """
    Normalise multi-band cutouts for a network.

    Each object is normalised on its own (the result for one object does not
    depend on the other objects in ``data``), so results are identical
    whatever the batch size.

    Parameters
    ----------
    data : array-like, shape (N, B, S, S) or (B, S, S)
        Cutouts indexed ``[object, band, y, x]`` (a single object may omit the
        first axis), in any real dtype and byte order, in the units of the
        images (e.g. electron/s). NaN and +-inf mark missing pixels; a
        `numpy.ma.MaskedArray` has its masked pixels treated as missing; a
        `torch.Tensor` is copied to the CPU.
    recipe : str, optional
        A key of `NORMALIZATIONS`; ``'asinh-v1'`` (the default, described in
        the module docstring of `astro_clustercls.preprocessing`) or
        ``'none'`` (no scaling: only the cast to float32 and non-finite
        pixels set to 0).

    Returns
    -------
    normalized : `~numpy.ndarray`, float32
        Same shape as ``data``, all values finite; missing pixels are 0.

    Raises
    ------
    ValueError
        If ``recipe`` is unknown (close names are suggested) or ``data`` does
        not have 3 or 4 dimensions.
    TypeError
        If ``data`` is not numeric.

    Examples
    --------
    A point source on a flat background: the background maps to 0 and the
    result does not change when the whole cutout is scaled.

    >>> import numpy as np
    >>> from astro_clustercls.preprocessing import normalize
    >>> yy, xx = np.mgrid[:15, :15]
    >>> star = 10 + 100 * np.exp(-((xx - 7)**2 + (yy - 7)**2) / 2)
    >>> cutouts = np.stack([star, 0.5 * star])[None]      # (1, 2, 15, 15)
    >>> y = normalize(cutouts)
    >>> y.shape, y.dtype
    ((1, 2, 15, 15), dtype('float32'))
    >>> float(y[0, 0, 0, 0]), round(float(y[0, 0, 7, 7]), 3)
    (0.0, 1.096)
    >>> bool(np.allclose(normalize(1e6 * cutouts), y, atol=1e-6))
    True
    """
    validate_choice("recipe", recipe, tuple(NORMALIZATIONS))
    data = _as_numpy(data)
    if data.ndim == 3:
        return normalize(data[None], recipe)[0]
    if data.ndim != 4:
        raise ValueError("'data' must have shape (N, B, S, S) or (B, S, S), got "
                         f"shape {data.shape}")
    if data.dtype.kind not in "biuf":
        raise TypeError(f"'data' must be real numbers, got dtype {data.dtype}")
    return NORMALIZATIONS[recipe](data)


def _as_numpy(data):
    if isinstance(data, np.ma.MaskedArray):
        return np.ma.getdata(data.astype(np.float64).filled(np.nan))
    if type(data).__module__.startswith("torch"):
        return data.detach().cpu().numpy()
    return np.asarray(data)


def _validate_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"'k' must be an integer in 0..7, got {k!r}")
    if not 0 <= k <= 7:
        raise ValueError(f"'k' must be an integer in 0..7, got {k!r}")
    return int(k)


def dihedral(x, k):
    """
    One of the 8 rotations and flips of the last two axes.

    ``k = r`` (0-3) rotates by ``r * 90`` degrees counter-clockwise (as
    `numpy.rot90`); ``k = 4 + r`` first mirrors the last axis (x) and then
    rotates by ``r * 90`` degrees. ``k = 0`` is the identity.

    Parameters
    ----------
    x : `~numpy.ndarray` or `torch.Tensor`, shape (..., ny, nx)
        Images; the transform acts on the last two axes.
    k : int
        Which transform, 0 to 7.

    Returns
    -------
    y : same type as ``x``
        A new contiguous array / tensor (never a view of ``x``).

    Raises
    ------
    TypeError, ValueError
        If ``k`` is not an integer in 0..7.

    See Also
    --------
    dihedral_inverse : the ``k`` that undoes a transform.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.preprocessing import dihedral, dihedral_inverse
    >>> a = np.arange(6).reshape(2, 3)
    >>> dihedral(a, 1)
    array([[2, 5],
           [1, 4],
           [0, 3]])
    >>> bool(np.array_equal(dihedral(dihedral(a, 1), dihedral_inverse(1)), a))
    True
    """
    k = _validate_k(k)
    rot, flip = k % 4, k >= 4
    if isinstance(x, np.ndarray):
        if x.ndim < 2:
            raise ValueError(f"'x' must have at least 2 dimensions, got {x.ndim}")
        y = x[..., ::-1] if flip else x
        y = np.rot90(y, rot, axes=(-2, -1))
        return np.array(y, order="C", copy=True)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"'x' must be a numpy array or torch tensor, got {type(x)}")
    if x.ndim < 2:
        raise ValueError(f"'x' must have at least 2 dimensions, got {x.ndim}")
    y = torch.flip(x, dims=(-1,)) if flip else x
    y = torch.rot90(y, rot, dims=(-2, -1)) if rot else y
    return y.contiguous().clone() if y is x else y.contiguous()


def dihedral_inverse(k):
    """
    The index ``j`` such that ``dihedral(dihedral(x, k), j)`` equals ``x``.

    Rotations invert to the opposite rotation; the four flips are their own
    inverses.

    Examples
    --------
    >>> from astro_clustercls.preprocessing import dihedral_inverse
    >>> [dihedral_inverse(k) for k in range(8)]
    [0, 3, 2, 1, 4, 5, 6, 7]
    """
    k = _validate_k(k)
    return (4 - k) % 4 if k < 4 else k


def random_augment(batch, rng, *, shift=1, flux_scale=None, noise=None,
                   band_dropout=None):
    """
    Random training augmentation of a batch of cutouts.

    For each sample, in this order: multiply by a flux factor (optional), add
    Gaussian noise (optional), zero one random band (optional), apply one of
    the 8 rotations/flips of `dihedral` (uniformly drawn), and roll by integer
    shifts drawn uniformly in ``[-shift, shift]`` pixels along y and x (pixels
    leaving one edge re-enter at the other: keep ``shift`` small compared with
    the cutout's empty border). All random numbers come from ``rng``, so a
    seeded generator reproduces the batch exactly.

    Parameters
    ----------
    batch : `torch.Tensor` or `~numpy.ndarray`, shape (N, B, S, S)
        Cutouts, usually already normalised (the flux factor and noise then
        act on normalised values: to simulate physical flux changes apply
        them to raw cutouts before `normalize`).
    rng : `numpy.random.Generator` or int
        Random generator, or a seed for `numpy.random.default_rng`.
    shift : int, optional
        Maximum roll in pixels along each axis (0 disables rolls).
    flux_scale : tuple of 2 float, optional
        ``(low, high)``, ``0 < low <= high``: each sample is multiplied by a
        factor drawn log-uniformly in this range.
    noise : float, optional
        Standard deviation of additive Gaussian noise, in the units of
        ``batch``.
    band_dropout : float, optional
        Probability (0-1) that a sample has one randomly chosen band set to 0
        (the value `normalize` gives missing pixels), to train robustness to a
        missing band.

    Returns
    -------
    augmented : same type as ``batch``
        A new array / tensor of the same shape, dtype and device.

    Raises
    ------
    TypeError, ValueError
        On a bad ``rng``, ``shift``, ``flux_scale``, ``noise`` or
        ``band_dropout``, or a batch that is not (N, B, S, S) with square
        images when rotations are used.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from astro_clustercls.preprocessing import random_augment
    >>> x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    >>> a = random_augment(x, np.random.default_rng(1), shift=1)
    >>> b = random_augment(x, np.random.default_rng(1), shift=1)
    >>> a.shape, bool(torch.equal(a, b))
    (torch.Size([2, 1, 5, 5]), True)
    >>> bool(torch.equal(a.flatten(1).sort().values, x.flatten(1).sort().values))
    True
    """
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError("'rng' must be a numpy.random.Generator or an int seed, got "
                        f"{type(rng).__name__}")
    if isinstance(shift, bool) or not isinstance(shift, numbers.Integral) or shift < 0:
        raise ValueError(f"'shift' must be a non-negative integer, got {shift!r}")
    is_numpy = isinstance(batch, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(batch)) if is_numpy else batch
    if not isinstance(x, torch.Tensor):
        raise TypeError("'batch' must be a torch tensor or numpy array, got "
                        f"{type(batch).__name__}")
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError("'batch' must have shape (N, B, S, S) with square images, "
                         f"got {tuple(x.shape)}")
    n, nb, size = x.shape[0], x.shape[1], x.shape[-1]
    if not x.is_floating_point():
        x = x.float()
    out = x.clone()

    if flux_scale is not None:
        lo, hi = _validate_range("flux_scale", flux_scale)
        f = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))
        f = torch.as_tensor(f, dtype=out.dtype, device=out.device)
        out *= f[:, None, None, None]
    if noise is not None:
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) \
                or not noise >= 0:
            raise ValueError(f"'noise' must be a non-negative number, got {noise!r}")
        eps = rng.standard_normal(size=tuple(out.shape), dtype=np.float32) * noise
        out += torch.from_numpy(eps).to(dtype=out.dtype, device=out.device)
    if band_dropout is not None:
        if not isinstance(band_dropout, numbers.Real) or not 0 <= band_dropout <= 1:
            raise ValueError("'band_dropout' must be a probability in [0, 1], got "
                             f"{band_dropout!r}")
        drop = rng.random(n) < band_dropout
        which = rng.integers(0, nb, size=n)
        rows = np.flatnonzero(drop)
        if rows.size:
            out[torch.as_tensor(rows, device=out.device),
                torch.as_tensor(which[rows], device=out.device)] = 0.0

    ks = rng.integers(0, 8, size=n)
    for k in np.unique(ks):
        if k:
            sel = torch.as_tensor(np.flatnonzero(ks == k), device=out.device)
            out[sel] = dihedral(out[sel], int(k))

    if shift:
        dy = rng.integers(-shift, shift + 1, size=n)
        dx = rng.integers(-shift, shift + 1, size=n)
        ar = np.arange(size)
        rows = torch.as_tensor((ar[None, :] - dy[:, None]) % size, device=out.device)
        cols = torch.as_tensor((ar[None, :] - dx[:, None]) % size, device=out.device)
        iobj = torch.arange(n, device=out.device)[:, None, None, None]
        iband = torch.arange(nb, device=out.device)[None, :, None, None]
        out = out[iobj, iband, rows[:, None, :, None], cols[:, None, None, :]]

    return out.numpy() if is_numpy else out


def _validate_range(name, value):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name!r} must be a pair (low, high) of numbers, got "
                        f"{value!r}") from None
    if not (0 < lo <= hi < np.inf):
        raise ValueError(f"{name!r} must satisfy 0 < low <= high, got {value!r}")
    return lo, hi
