# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of normalisation recipes and augmentation."""

import math

import numpy as np
import pytest
import torch

from astro_clustercls import preprocessing
from astro_clustercls.preprocessing import (
    NORMALIZATIONS,
    dihedral,
    dihedral_inverse,
    normalize,
    random_augment,
)

NORM = math.asinh(10.0)


def reference_asinh_v1(cutout, alpha=0.1, ring_width=2, box=5, floor=3.0):
    """Slow, loop-based reading of the recipe's documented definition."""
    nb, ny, nx = cutout.shape
    x = np.array(cutout, dtype=np.float64)
    x[~np.isfinite(x)] = np.nan
    yy, xx = np.mgrid[:ny, :nx]
    ring = ((yy < ring_width) | (yy >= ny - ring_width)
            | (xx < ring_width) | (xx >= nx - ring_width))
    bkg = np.zeros(nb)
    sig = np.full(nb, np.nan)
    for b in range(nb):
        vals = x[b][ring]
        vals = vals[np.isfinite(vals)]
        if vals.size:
            bkg[b] = np.median(vals)
            sig[b] = 1.482602218505602 * np.median(np.abs(vals - np.median(vals)))
    sub = x - bkg[:, None, None]
    cy, cx = ny // 2, nx // 2
    h = box // 2
    centre = sub[:, max(cy - h, 0):cy + h + 1, max(cx - h, 0):cx + h + 1]
    peak = -np.inf
    for j in range(centre.shape[1]):
        for i in range(centre.shape[2]):
            col = centre[:, j, i]
            col = col[np.isfinite(col)]
            if col.size:
                peak = max(peak, col.mean())
    good = np.isfinite(sig)
    rms = np.sqrt(np.mean(sig[good] ** 2)) if good.any() else np.nan
    scale = np.nanmax([peak, floor * rms]) if np.isfinite([peak, floor * rms]).any() \
        else np.nan
    if not (np.isfinite(scale) and scale > 0):
        finite = np.abs(sub[np.isfinite(sub)])
        scale = finite.max() if finite.size and finite.max() > 0 else 1.0
    y = np.arcsinh(sub / (alpha * scale)) / math.asinh(1 / alpha)
    y[~np.isfinite(y)] = 0.0
    return y


def make_objects(rng, n, nb=3, size=15, nan_fraction=0.0):
    yy, xx = np.mgrid[:size, :size] - size // 2
    data = np.empty((n, nb, size, size), dtype=np.float32)
    for i in range(n):
        sky = rng.uniform(-1, 20, nb)
        flux = rng.uniform(0, 500) * rng.uniform(0.1, 1, nb)
        w = rng.uniform(0.8, 2.5)
        dx, dy = rng.uniform(-1, 1, 2)
        prof = np.exp(-((xx - dx) ** 2 + (yy - dy) ** 2) / (2 * w**2))
        noise = rng.uniform(0.01, 3)
        data[i] = (sky[:, None, None] + flux[:, None, None] * prof
                   + rng.normal(0, noise, (nb, size, size)))
    if nan_fraction:
        data[rng.random(data.shape) < nan_fraction] = np.nan
    return data


@pytest.mark.parametrize("size", [5, 8, 15, 31])
def test_asinh_matches_reference(size):
    rng = np.random.default_rng(size)
    data = make_objects(rng, 12, nb=3, size=size, nan_fraction=0.05)
    data[3, :, :, : size // 2] = np.nan  # partly off the image
    data[4] = np.nan  # fully off the image
    data[5] = 7.0  # constant
    data[6, 1] = np.inf
    data[7, :, :2, :] = -np.inf
    data[8] = rng.normal(0, 1, data[8].shape)  # pure noise
    data[9, :, :, :] = np.nan
    data[9, :, size // 2, size // 2] = [1.0, 2.0, 3.0]  # only the centre is known
    out = normalize(data)
    assert out.dtype == np.float32 and out.shape == data.shape
    assert np.isfinite(out).all()
    for i in range(len(data)):
        np.testing.assert_allclose(out[i], reference_asinh_v1(data[i]), atol=2e-5,
                                   rtol=1e-4, err_msg=f"object {i}")
    assert (out[4] == 0).all() and (out[5] == 0).all()
    assert (out[6, 1] == 0).all()


def test_hand_computed_values():
    # 1 band, 7x7: ring of width 2 holds values 1 and 3 alternately -> median 2,
    # MAD 1 -> sigma 1.4826; centre 3x3 block at 2 + 40 with a peak 2 + 100
    x = np.zeros((1, 1, 7, 7))
    ring = np.ones((7, 7), bool)
    ring[2:5, 2:5] = False
    x[0, 0][ring] = np.resize([1.0, 3.0], ring.sum())
    x[0, 0, 2:5, 2:5] = 42.0
    x[0, 0, 3, 3] = 102.0
    y = normalize(x)[0, 0]
    # scale = max(peak 100, 3 * 1.4826) = 100; alpha * scale = 10
    assert y[3, 3] == pytest.approx(math.asinh(100 / 10) / NORM, rel=1e-6)
    assert y[2, 2] == pytest.approx(math.asinh(40 / 10) / NORM, rel=1e-6)
    assert y[0, 0] == pytest.approx(math.asinh(-1 / 10) / NORM, rel=1e-5)


def test_scale_from_central_5x5_only():
    x = np.zeros((1, 2, 15, 15))
    x[0, :, 9, 5] = [40.0, 60.0]  # (+2, -2) from the centre: inside the 5x5 box
    x[0, :, 7, 11] = 1000.0  # 4 pixels off: a neighbour, outside the box
    y = normalize(x)[0]
    # scale = band mean at (9, 5) = 50, alpha * scale = 5
    assert y[0, 9, 5] == pytest.approx(math.asinh(40 / 5) / NORM, rel=1e-6)
    assert y[1, 9, 5] == pytest.approx(math.asinh(60 / 5) / NORM, rel=1e-6)
    assert y[0, 7, 11] == pytest.approx(math.asinh(1000 / 5) / NORM, rel=1e-6)


def test_noise_floor_limits_pure_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(100, 2.0, (200, 5, 31, 31))
    y = normalize(noise)
    # scale >= 3 sigma, so |y| ~ asinh(|x| / (0.3 sigma)) / asinh(10) stays small
    assert np.abs(y).max() < 1.6
    assert 0.2 < y.std() < 0.8
    assert abs(y.mean()) < 0.02


def test_batch_independence_and_chunks(monkeypatch):
    rng = np.random.default_rng(2)
    data = make_objects(rng, 40, nb=2, size=9, nan_fraction=0.02)
    full = normalize(data)
    monkeypatch.setattr(preprocessing, "_PIXELS_PER_CHUNK", 500)  # 3 objects/chunk
    chunked = normalize(data)
    np.testing.assert_array_equal(chunked, full)
    perm = rng.permutation(len(data))
    np.testing.assert_array_equal(normalize(data[perm]), full[perm])
    for i in (0, 7, 39):
        np.testing.assert_array_equal(normalize(data[i:i + 1])[0], full[i])
        np.testing.assert_array_equal(normalize(data[i]), full[i])  # (B, S, S)


@pytest.mark.parametrize("factor", [1e-20, 3.7, 1e6, 1e25])
def test_invariant_to_flux_factor(factor):
    rng = np.random.default_rng(3)
    data = make_objects(rng, 10, nb=5, size=15, nan_fraction=0.01).astype(np.float64)
    np.testing.assert_allclose(normalize(factor * data), normalize(data), atol=2e-6)


def test_object_flux_factor_nearly_invariant():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:21, :21] - 10
    prof = np.exp(-(xx**2 + yy**2) / 4.0)
    sed = np.array([1.0, 0.6, 0.3])[:, None, None]
    noise = rng.normal(0, 1.0, (3, 21, 21))
    ys = [normalize(50 + f * sed * prof + noise) for f in (1e4, 3e4, 1e5)]
    centre = np.s_[:, 8:13, 8:13]
    for y in ys[1:]:
        np.testing.assert_allclose(y[centre], ys[0][centre], atol=2e-3)


def test_colours_preserved():
    yy, xx = np.mgrid[:15, :15] - 7
    prof = 1000 * np.exp(-(xx**2 + yy**2) / 3.0)
    data = np.stack([prof, 0.25 * prof, 2.0 * prof])[None] + 5.0
    y = normalize(data)[0].astype(np.float64)
    lin = np.sinh(y * NORM)  # undo the stretch: proportional to the flux
    core = prof > 1
    np.testing.assert_allclose(lin[1][core] / lin[0][core], 0.25, rtol=1e-4)
    np.testing.assert_allclose(lin[2][core] / lin[0][core], 2.0, rtol=1e-4)


def test_input_types_and_dtypes():
    rng = np.random.default_rng(5)
    base = np.round(make_objects(rng, 4, nb=2, size=11))
    ref = normalize(base.astype(np.float32))
    np.testing.assert_array_equal(normalize(base.astype(np.int32)), ref)
    np.testing.assert_array_equal(normalize(base.astype(">f4")), ref)
    np.testing.assert_array_equal(normalize(base.astype(">f8")), ref)
    np.testing.assert_array_equal(normalize(torch.from_numpy(base.astype(np.float32))),
                                  ref)
    masked = np.ma.masked_array(base, mask=np.zeros(base.shape, bool))
    masked.mask[0, 0, 5, 5] = True
    nan_version = base.copy()
    nan_version[0, 0, 5, 5] = np.nan
    np.testing.assert_array_equal(normalize(masked), normalize(nan_version))


def test_huge_values_stay_finite():
    x = np.full((1, 1, 9, 9), 10.0)
    x[0, 0, 4, 4] = 100.0
    x[0, 0, 0, 4] = 1e300  # overflows float32, but is a finite, huge value
    y = normalize(x)
    assert np.isfinite(y).all()
    assert y[0, 0, 0, 4] > 20  # huge positive, not zeroed like a bad pixel
    assert y[0, 0, 4, 4] == pytest.approx(math.asinh(10) / NORM, rel=1e-6)


def test_recipe_none_and_registry():
    x = np.array([[[[1.0, np.nan], [np.inf, -2.0]]]])
    np.testing.assert_array_equal(normalize(x, recipe="none"), [[[[1, 0], [0, -2]]]])
    assert set(NORMALIZATIONS) >= {"asinh-v1", "none"}


def test_normalize_errors():
    with pytest.raises(ValueError, match="Did you mean 'asinh-v1'"):
        normalize(np.zeros((1, 1, 5, 5)), recipe="asinh_v1")
    with pytest.raises(ValueError, match="shape"):
        normalize(np.zeros((5, 5)))
    with pytest.raises(TypeError, match="dtype"):
        normalize(np.full((1, 1, 3, 3), "a"))


# ------------------------------------------------------------------ dihedral

def test_dihedral_eight_distinct_and_group():
    a = np.arange(12.0).reshape(1, 3, 4)  # asymmetric, not square
    outs = [dihedral(a, k) for k in range(8)]
    keys = {(o.shape, o.tobytes()) for o in outs}
    assert len(keys) == 8
    # the same set as rotations of a and of its up-down mirror (independent)
    expected = {(np.rot90(b, r, axes=(-2, -1)).shape,
                 np.ascontiguousarray(np.rot90(b, r, axes=(-2, -1))).tobytes())
                for b in (a, a[..., ::-1, :]) for r in range(4)}
    assert keys == expected
    np.testing.assert_array_equal(outs[0], a)
    assert outs[0] is not a
    np.testing.assert_array_equal(outs[1], np.rot90(a, 1, axes=(1, 2)))
    np.testing.assert_array_equal(outs[4], a[..., ::-1])


def test_dihedral_inverse_and_torch():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    t = torch.from_numpy(a)
    for k in range(8):
        j = dihedral_inverse(k)
        np.testing.assert_array_equal(dihedral(dihedral(a, k), j), a)
        tk = dihedral(t, k)
        assert isinstance(tk, torch.Tensor) and tk.is_contiguous()
        np.testing.assert_array_equal(tk.numpy(), dihedral(a, k))
        assert torch.equal(dihedral(tk, j), t)
        assert dihedral(a, k).flags.c_contiguous
    assert dihedral(t, 0).data_ptr() != t.data_ptr()


@pytest.mark.parametrize("k", [8, -1, 1.0, True, "1"])
def test_dihedral_bad_k(k):
    with pytest.raises((TypeError, ValueError), match="'k'"):
        dihedral(np.zeros((3, 3)), k)


# ------------------------------------------------------------ random_augment

def _matches_some_transform(sample, original, shift):
    for k in range(8):
        d = dihedral(original, k)
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                if np.array_equal(np.roll(d, (dy, dx), axis=(-2, -1)), sample):
                    return True
    return False


def test_random_augment_is_dihedral_plus_roll():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 2, 7, 7)).astype(np.float32)
    out = random_augment(torch.from_numpy(x), np.random.default_rng(0), shift=1)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape
    for i in range(len(x)):
        assert _matches_some_transform(out[i].numpy(), x[i], 1)
    out0 = random_augment(x, 3, shift=0)  # numpy in, numpy out, int seed
    assert isinstance(out0, np.ndarray)
    for i in range(len(x)):
        assert _matches_some_transform(out0[i], x[i], 0)


def test_random_augment_reproducible_and_covers_all_k():
    x = torch.arange(64 * 25, dtype=torch.float32).reshape(64, 1, 5, 5)
    a = random_augment(x, np.random.default_rng(11), shift=0)
    b = random_augment(x, np.random.default_rng(11), shift=0)
    c = random_augment(x, np.random.default_rng(12), shift=0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    ks = set()
    for i in range(64):
        for k in range(8):
            if torch.equal(a[i], dihedral(x[i], k)):
                ks.add(k)
    assert ks == set(range(8))
    untouched = torch.arange(64 * 25, dtype=torch.float32).reshape(64, 1, 5, 5)
    assert torch.equal(x, untouched)


def test_random_augment_flux_noise_dropout():
    x = torch.ones(200, 3, 5, 5)
    out = random_augment(x, np.random.default_rng(0), shift=0, flux_scale=(0.5, 2.0))
    factors = out.mean(dim=(1, 2, 3))
    assert factors.min() >= 0.5 - 1e-6 and factors.max() <= 2.0 + 1e-6
    assert factors.std() > 0.2
    out = random_augment(torch.zeros(50, 3, 9, 9), np.random.default_rng(0), noise=0.5)
    assert out.std().item() == pytest.approx(0.5, rel=0.05)
    out = random_augment(x, np.random.default_rng(0), shift=0, band_dropout=1.0)
    zero_bands = (out.abs().sum(dim=(2, 3)) == 0).sum(dim=1)
    assert torch.equal(zero_bands, torch.ones(200, dtype=torch.long))


@pytest.mark.parametrize("kwargs, err", [
    ({"shift": -1}, ValueError), ({"shift": 1.5}, ValueError),
    ({"flux_scale": (2.0, 1.0)}, ValueError), ({"flux_scale": 3}, TypeError),
    ({"noise": -1.0}, ValueError), ({"band_dropout": 1.5}, ValueError)])
def test_random_augment_errors(kwargs, err):
    with pytest.raises(err):
        random_augment(torch.zeros(2, 1, 5, 5), np.random.default_rng(0), **kwargs)


def test_random_augment_bad_inputs():
    with pytest.raises(TypeError, match="'rng'"):
        random_augment(torch.zeros(2, 1, 5, 5), "seed")
    with pytest.raises(ValueError, match="square"):
        random_augment(torch.zeros(2, 1, 5, 6), 0)
