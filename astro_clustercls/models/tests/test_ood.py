# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The out-of-distribution statistics: features, fit, storage."""

import json

import numpy as np
import pytest
import torch

from astro_clustercls._constants import CLASS_NAMES, DEFAULT_BANDS
from astro_clustercls.evaluation.ood_sets import OOD_SETS, OOD_VARIANTS, make_ood_sets
from astro_clustercls.models import (
    OOD_METHOD,
    FeatureStatistics,
    _api,
    build_network,
    check_ood_info,
    fit_feature_statistics,
    forward_with_stages,
    input_stages,
    read_ood_statistics,
    register_bundled_weights,
    register_ood_statistics,
    stage_features,
)
from astro_clustercls.models._ood import DETECTION_SIGMA
from astro_clustercls.preprocessing import normalize


@pytest.mark.parametrize("arch", ["resnet18", "vgg19_bn"])
def test_forward_with_stages_is_the_forward(arch):
    torch.manual_seed(0)
    net = build_network(arch).eval()
    x = torch.randn(3, 5, 31, 31)
    with torch.inference_mode():
        logits, stages = forward_with_stages(net, x)
        expected = net(x)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    # the input's detection peak, its profile (5 annuli + the ring, and the
    # ring's spread, per band), its angular modes 1..8 in 3 annuli, then 5
    # network stages of per-channel means and standard deviations
    assert stages[0].shape == (3, 1)
    assert stages[1].shape == (3, 5 * 6 + 5)
    assert stages[2].shape == (3, 3 * 8)  # annuli 2-4, 4-8, 8-15.5 px at 31 px
    assert len(stages) == 8
    widths = [s.shape[1] for s in stages[3:]]
    assert widths == ([128, 128, 256, 512, 1024] if arch == "resnet18"
                      else [128, 256, 512, 1024, 1024])
    # a channel's pooled features are its mean and standard deviation
    with torch.inference_mode():
        stem = net.relu(net.bn1(net.conv1(x))) if arch == "resnet18" else None
    if stem is not None:
        torch.testing.assert_close(stages[3][:, :64], stem.mean(dim=(2, 3)))
        torch.testing.assert_close(stages[3][:, 64:], stem.std(dim=(2, 3),
                                                               correction=0))


def test_input_profile_hand_computed():
    net = build_network("resnet18").eval()
    x = torch.zeros(1, 5, 15, 15)
    x[0, 2, 7, 7] = 9.0  # one bright central pixel in band 3
    x[0, :, 0, :] = 1.0  # the top row set in every band
    with torch.inference_mode():
        _, stages = forward_with_stages(net, x)
    # at 15 px the annuli r < 1.5, 1.5-3, 3-6 and 6-12 px (none beyond 12)
    # and the outer ring: 5 means per band, then 5 spreads
    assert stages[1].shape == (1, 5 * 5 + 5)
    prof = stages[1][0, :25].reshape(5, 5).numpy()
    # annulus r < 1.5 around (7, 7) holds 9 pixels: 9 / 9 = 1 in band 3
    assert prof[2, 0] == pytest.approx(1.0)
    assert prof[0, 0] == 0.0
    # the 2-px outer ring has 15*15 - 11*11 = 104 pixels, 15 of them set
    np.testing.assert_allclose(prof[:, 4], 15 / 104, rtol=1e-6)
    spread = stages[1][0, 25:].numpy()
    p = 15 / 104
    np.testing.assert_allclose(spread, np.sqrt(p * (1 - p)), rtol=1e-5)


def test_detection_peak_and_angular_modes():
    rng = np.random.default_rng(7)
    # sky noise of sigma 1 around a 20-sigma point source, asinh-v1 normalised
    noise = rng.normal(size=(200, 5, 31, 31)).astype(np.float32)
    source = noise.copy()
    source[:, :, 15, 15] += 20.0
    peaks = []
    for raw in (noise, source):
        stages = input_stages(torch.from_numpy(normalize(raw, "asinh-v1")))
        peaks.append(stages[0][:, 0].numpy())
    # noise alone: the highest of ~900 3x3 boxes of 5 bands, a few sigma
    assert 2.5 < np.median(peaks[0]) < DETECTION_SIGMA
    # the source: 20 sigma per band in one pixel, 5 bands summed: 20 * sqrt(5) / 3
    np.testing.assert_allclose(np.median(peaks[1]), 20 * np.sqrt(5) / 3, rtol=0.1)
    # a pattern of six spokes puts its angular power in m = 6
    yy, xx = np.mgrid[:31, :31] - 15
    spokes = (1 + np.cos(6 * np.arctan2(yy, xx))) * (np.hypot(yy, xx) > 2)
    cut = np.broadcast_to(10 * spokes, (1, 5, 31, 31)).astype(np.float32)
    cut = cut + rng.normal(size=cut.shape).astype(np.float32) * 0.1
    angular = input_stages(torch.from_numpy(normalize(cut, "asinh-v1")))[2]
    modes = angular.reshape(-1, 8)[1:]  # annuli 4-8, 8-15.5 px: m = 1..8
    assert np.all(modes.argmax(dim=1).numpy() == 5)
    # scale-free: a brighter copy of the same cutout gives the same features
    bright = input_stages(torch.from_numpy(normalize(cut * 100, "asinh-v1")))
    for a, b in zip(input_stages(torch.from_numpy(normalize(cut, "asinh-v1"))),
                    bright, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_detection_term_is_one_sided():
    rng = np.random.default_rng(8)
    gauss = [rng.normal(size=(500, 3))]
    stats = fit_feature_statistics([np.full((500, 1), 50.0), *gauss],
                                   [np.full((500, 1), 50.0), *gauss],
                                   n_components=2, detection_sigma=5.0)
    assert stats.n_stages == 1 and stats.detection_sigma == 5.0
    inside = [np.zeros((3, 3))]
    peak = np.array([[2.5], [5e4], [0.0]])
    gauss_term, det = stats.score_terms([peak, *inside])
    np.testing.assert_allclose(det, [2.0, 1e-4, np.inf])
    np.testing.assert_array_equal(stats.score([peak, *inside]) > 1,
                                  [True, False, True])
    back = FeatureStatistics.from_tensors(stats.to_tensors())
    assert back.detection_sigma == 5.0
    with pytest.raises(ValueError, match="stages"):
        stats.score(inside)


def _gauss_stages(rng, n, shift=0.0):
    return [rng.normal(size=(n, 4)) + shift, rng.normal(size=(n, 10)) * 2 + shift]


def test_fit_controls_false_positives_and_finds_outliers():
    rng = np.random.default_rng(1)
    stats = fit_feature_statistics(_gauss_stages(rng, 4000), _gauss_stages(rng, 4000),
                                   n_components=3, fpr=0.02)
    fresh = stats.score(_gauss_stages(rng, 20000))
    assert np.mean(fresh > 1) == pytest.approx(0.02, abs=0.006)
    assert np.all(stats.score(_gauss_stages(rng, 200, shift=6.0)) > 1)
    # an outlier in one stage only is enough
    one = _gauss_stages(rng, 200)
    one[1] = one[1] + 12.0
    assert np.mean(stats.score(one) > 1) == 1.0
    with pytest.raises(ValueError, match="fpr"):
        fit_feature_statistics(_gauss_stages(rng, 10), _gauss_stages(rng, 10), fpr=2)


def test_tensors_round_trip_and_registry(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"format": 1, "weights": []}))
    monkeypatch.setattr(_api, "DATA_DIR", data)
    rng = np.random.default_rng(2)
    stats = fit_feature_statistics(_gauss_stages(rng, 500), _gauss_stages(rng, 500),
                                   n_components=2)
    probe = _gauss_stages(rng, 50, shift=1.0)
    back = FeatureStatistics.from_tensors(stats.to_tensors())
    np.testing.assert_allclose(back.score(probe), stats.score(probe), rtol=1e-5)
    meta = {"bands": list(DEFAULT_BANDS), "cutout_size": 15,
            "normalization": "asinh-v1", "categories": list(CLASS_NAMES),
            "label_set": "truth", "training_data": "none", "simulator_version": "n/a",
            "metrics": {}, "recipe": {}, "notes": "random weights, test only"}
    with pytest.raises(ValueError, match="no bundled weights"):
        register_ood_statistics("resnet18", "TEST", stats, {})
    register_bundled_weights(build_network("resnet18"), "resnet18", "TEST", meta)
    ood = register_ood_statistics("resnet18", "TEST", stats, {"fpr": 0.01})
    entry = json.loads((data / "manifest.json").read_text())["weights"][0]
    entry["meta"]["sha256"] = entry["sha256"]  # as the registry gives it
    assert ood["weights_sha256"] == entry["sha256"] and ood["method"] == OOD_METHOD
    assert check_ood_info(entry["meta"]) is None
    other = dict(entry["meta"], sha256="b" * 64)  # weights replaced, no refit
    assert "refit" in check_ood_info(other)
    with pytest.raises(OSError, match="fitted for weights"):
        read_ood_statistics(other)
    assert entry["meta"]["ood"] == ood and ood["fpr"] == 0.01
    assert (data / ood["file"]).is_file()
    assert ood["file"].startswith("resnet18-TEST-ood-")
    read = read_ood_statistics(entry["meta"])
    np.testing.assert_allclose(read.score(probe), stats.score(probe), rtol=1e-5)
    # a file of the user's is looked up beside the weights
    assert read_ood_statistics(entry["meta"], tmp_path / "data" / "w.safetensors") \
        is not None
    assert read_ood_statistics({"normalization": "asinh-v1"}) is None
    bad = dict(entry["meta"], ood=dict(ood, sha256="0" * 64))
    with pytest.raises(OSError, match="SHA-256"):
        read_ood_statistics(bad)
    (data / ood["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="OOD statistics"):
        read_ood_statistics(entry["meta"])


def test_stage_features_batch_independent():
    torch.manual_seed(3)
    net = build_network("resnet18").eval()
    x = torch.randn(10, 5, 21, 21)
    whole = stage_features(net, [x])
    split = stage_features(net, [x[:3], x[3:]])
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ood_sets_are_what_they_say():
    rng = np.random.default_rng(4)
    sample = rng.normal(0, 0.01, (6, 5, 21, 21)).astype(np.float32)
    sample[:, :, 10, 10] += 5.0  # a point source in every band
    sets = make_ood_sets(sample, seed=1, variants=True)
    assert tuple(sets) == OOD_SETS + OOD_VARIANTS
    for data in sets.values():
        assert data.shape == sample.shape and np.all(np.isfinite(data))
    noise = sets["pure noise"]
    assert abs(np.median(noise[:, :, 10, 10])) < 0.05 and np.std(noise) < 0.02
    ratio = sets["unphysical colours"][:, :, 10, 10] / sample[:, :, 10, 10]
    np.testing.assert_allclose(ratio[:, 0] / ratio[:, -1], 40 / 0.02, rtol=1e-4)
    sat = sets["saturated blobs"]
    assert np.all(sat[:, :, 10, 10] == 300.0) and np.all(sat <= 300.0)
    mags = sets["magnitudes"]
    assert np.all(mags[:, :, 10, 10] < mags[:, :, 0, 0])  # brighter is smaller
    jw = sets["JWST-like PSF"]
    assert np.all(jw[:, :, 10, 10] > 10 * np.std(noise))
