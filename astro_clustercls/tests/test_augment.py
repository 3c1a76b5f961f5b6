# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The transfer augmentation: each perturbation does what it says, measured."""

import numpy as np
import pytest
import torch

from astro_clustercls.simulation.observing import noise_correlation
from astro_clustercls.training import LabelledCutouts
from astro_clustercls.training.augment import TransferAugmentation

S = 41
C = S // 2
YY, XX = np.mgrid[:S, :S]


def _gaussian(sigma, flux=1000.0, x0=C, y0=C):
    g = np.exp(-((XX - x0) ** 2 + (YY - y0) ** 2) / (2 * sigma**2))
    return flux * g / g.sum()


def _ring_sigma(img):
    """1.4826 MAD of the outer 2-pixel ring (computed here independently)."""
    ring = np.ones(img.shape, bool)
    ring[2:-2, 2:-2] = False
    v = img[ring].astype(float)
    return 1.4826 * np.median(np.abs(v - np.median(v)))


def _moments(img):
    """Flux, centroid (y, x) and the mean second moment about it."""
    f = img.sum()
    y0, x0 = (img * YY).sum() / f, (img * XX).sum() / f
    m2 = (img * ((YY - y0) ** 2 + (XX - x0) ** 2)).sum() / f / 2
    return f, y0, x0, m2


def test_blur_adds_in_quadrature():
    x = np.stack([_gaussian(1.2), _gaussian(2.0)])
    out = TransferAugmentation.apply(x, blur=np.array([0.6, 1.0]))
    for band, (s0, b) in enumerate(((1.2, 0.6), (2.0, 1.0))):
        f, y0, x0, m2 = _moments(out[band].astype(float))
        assert f == pytest.approx(1000.0, rel=1e-4)  # flux kept
        assert (y0, x0) == (pytest.approx(C, abs=1e-3), pytest.approx(C, abs=1e-3))
        assert m2 == pytest.approx(s0**2 + b**2, rel=0.01)


def test_shift_moves_the_centroid_only():
    x = _gaussian(1.5)[None]
    out = TransferAugmentation.apply(x, shift=(0.3, -0.45))[0].astype(float)
    f, y0, x0, m2 = _moments(out)
    assert y0 == pytest.approx(C + 0.3, abs=1e-3)
    assert x0 == pytest.approx(C - 0.45, abs=1e-3)
    assert f == pytest.approx(1000.0, rel=1e-4)
    assert m2 == pytest.approx(1.5**2, rel=0.01)


def test_gain_scales_object_and_sky():
    rng = np.random.default_rng(0)
    x = np.stack([_gaussian(1.5) + 5.0 + rng.normal(0, 0.1, (S, S)) for _ in range(3)])
    gain = np.array([0.9, 1.0, 1.2])
    out = TransferAugmentation.apply(x, gain=gain)
    np.testing.assert_allclose(out, x * gain[:, None, None], rtol=1e-5)


def test_noise_level_and_correlation():
    rng = np.random.default_rng(1)
    sigma = np.array([0.5, 2.0])
    x = rng.normal(0, 1, (2, 201, 201)) * sigma[:, None, None]
    out = TransferAugmentation.apply(x.astype("f4"), noise=(0.8, 0.3, 7))
    added = out - x
    for band in range(2):
        # the added noise: 0.8 x the ring's sigma, with the requested correlation
        assert sigma[band] == pytest.approx(_ring_sigma(x[band]), rel=0.06)
        assert added[band].std() == pytest.approx(0.8 * _ring_sigma(x[band]), rel=0.01)
        assert noise_correlation(added[band]) == pytest.approx(0.3, abs=0.02)
    # reproducible from its seed
    np.testing.assert_array_equal(
        out, TransferAugmentation.apply(x.astype("f4"), noise=(0.8, 0.3, 7)))


def test_gradient_is_a_plane_of_the_stated_slope():
    rng = np.random.default_rng(2)
    x = rng.normal(10.0, 1.0, (1, S, S)).astype("f4")
    out = TransferAugmentation.apply(x, gradient=(3.0, np.pi / 2))  # rising along +y
    plane = (out - x)[0].astype(float)
    # ring sigma of unit noise (MAD estimate of 1) times 3 at the edge (C pixels)
    sigma = _ring_sigma(x[0])
    np.testing.assert_allclose(plane[:, 0], 3.0 * sigma * (np.arange(S) - C) / C,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plane, plane[:, :1] * np.ones((1, S)), atol=1e-5)


def test_missing_pixels_stay_missing_and_p0_is_identity():
    x = np.stack([_gaussian(1.5), np.full((S, S), np.nan)]).astype("f4")
    x[0, :5] = np.nan  # a chip edge
    aug = TransferAugmentation(p=1.0)
    out = aug(x, np.random.default_rng(3))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    assert np.all(np.isfinite(out[0, 5:]))
    same = TransferAugmentation(p=0.0)(x, np.random.default_rng(3))
    np.testing.assert_array_equal(same, x)


def test_draws_within_ranges_and_ablation_keeps_other_draws():
    aug = TransferAugmentation(p=1.0)
    d = aug.draw(5, np.random.default_rng(4))
    assert set(d) == {"blur", "shift", "gain", "noise", "gradient"}
    assert np.all((d["blur"] >= 0.5 * 0.2) & (d["blur"] <= 1.5 * 0.8))
    assert np.all(np.abs(d["shift"]) <= 0.5)
    assert np.all(np.abs(-2.5 * np.log10(d["gain"])) <= 0.15)
    assert 0.3 <= d["noise"][0] <= 1.0 and 0 <= d["noise"][1] <= 0.4
    only = aug.only("noise").draw(5, np.random.default_rng(4))
    assert set(only) == {"noise"} and only["noise"] == d["noise"]
    assert TransferAugmentation.off().enabled == ()
    assert aug.only("blur", "gain").enabled == ("blur", "gain")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"p": 1.5}, "'p'"), ({"blur": (1.0, 0.5)}, "'blur'"),
    ({"noise_corr": (0, 0.8)}, "'noise_corr'"), ({"gain": -0.1}, "'gain'"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransferAugmentation(**kwargs)
    with pytest.raises(ValueError, match="unknown perturbations"):
        TransferAugmentation().only("focus")


def test_dataset_with_transfer_is_reproducible_and_differs_from_plain():
    rng = np.random.default_rng(5)
    data = rng.normal(0, 0.05, (6, 3, 21, 21)).astype("f4")
    data[:, :, 10, 10] += 3.0
    labels = [1, 2, 3, 4, 1, 2]
    a = LabelledCutouts(data, labels, augment=True, transfer="transfer", seed=1)
    b = LabelledCutouts(data, labels, augment=True, transfer="transfer", seed=1)
    plain = LabelledCutouts(data, labels, augment=True, seed=1)
    for i in range(6):
        assert torch.equal(a[i][0], b[i][0])
    assert any(not torch.equal(a[i][0], plain[i][0]) for i in range(6))
    # a subset perturbs the raw rows it holds (not the parent's first rows)
    sub = a.subset([4, 5], augment=False)
    assert torch.equal(sub[1][0], a.subset([5], augment=False)[0][0])
    assert torch.equal(sub[0][0], plain.tensors[4])
    with pytest.raises(ValueError, match="'transfer'"):
        LabelledCutouts(data, labels, transfer="jwst")
