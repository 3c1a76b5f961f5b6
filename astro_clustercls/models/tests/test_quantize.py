# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of int8 inference (`astro_clustercls.models._quantize`)."""

import functools
import importlib.util
import io
import pickle
import platform
import sys

import numpy as np
import pytest
import torch
from torch import nn

from .._quantize import (
    DEFAULT_MARGIN,
    MIN_AGREEMENT,
    Int8Network,
    int8_expected_faster,
    int8_network,
    int8_support,
    quantize_network,
    simulated_calibration,
)

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")
SIZE = 15
META = {"bands": list(BANDS), "cutout_size": SIZE, "normalization": "asinh-v1"}

needs_ort = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None
        for m in ("onnxruntime", "onnx")),
    reason="needs onnxruntime and onnx")


@functools.lru_cache(maxsize=1)
def _calibration():
    return simulated_calibration(META, n=64, seed=1)


def tiny_network():
    """
    A small seeded CNN (convolutions, a BatchNorm, a linear head) whose head
    is scaled so that its logits spread over a few units and its labels over
    the classes, as a trained network's do.
    """
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(5, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4)).eval()
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        feats = net[:-1](torch.from_numpy(_calibration()))
        mean, std = feats.mean(0), feats.std(0) + 1e-6
        weight = torch.randn(4, 32) * 0.4 / std
        net[-1].weight.copy_(weight)
        net[-1].bias.copy_(-weight @ mean)
    net.clustercls_meta = dict(META)
    return net


@pytest.fixture(scope="module")
def cutouts():
    """Calibration, test and validation cutouts, simulated and normalised."""
    return (_calibration(), simulated_calibration(META, n=256, seed=2),
            simulated_calibration(META, n=256, seed=3))


@pytest.fixture(scope="module")
def quantized(cutouts):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return quantize_network(tiny_network(), cutouts[0], margin="auto",
                            validation=cutouts[2], num_threads=1)


# -- where int8 is chosen -------------------------------------------------------
def test_support_devices_and_bf16():
    assert int8_support("cuda:0") == (False, "int8 inference runs on the CPU only")
    assert not int8_expected_faster("mps")
    ok, reason = int8_support("cpu", native_bf16=True)
    assert not ok and "bfloat16" in reason


def test_support_other_cpus(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    ok, reason = int8_support("cpu", native_bf16=False)
    assert not ok and "x86-64" in reason and "aarch64" in reason


def test_support_without_onnxruntime(monkeypatch):
    from .. import _quantize

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86-64 only")
    monkeypatch.setattr(_quantize, "_has_module", lambda name: name != "onnxruntime")
    ok, reason = int8_support("cpu", native_bf16=False)
    assert not ok and "onnxruntime not installed" in reason and "pip install" in reason


@needs_ort
def test_support_here():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86-64 only")
    ok, reason = int8_support("cpu", native_bf16=False)
    assert ok == ("AVX" in torch.backends.cpu.get_cpu_capability().upper())
    assert ok or reason


# -- calibration ---------------------------------------------------------------
def test_calibration_is_deterministic():
    a = simulated_calibration(META, n=8, seed=5)
    assert a.shape == (8, 5, SIZE, SIZE) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, simulated_calibration(META, n=8, seed=5))
    assert not np.array_equal(a, simulated_calibration(META, n=8, seed=6))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"meta": None}, TypeError, "'meta'"),
    ({"meta": {"bands": list(BANDS)}}, ValueError, "'meta' lacks.*cutout_size"),
    ({"n": 0}, ValueError, "'n'"),
    ({"seed": 1.5}, TypeError, "'seed'"),
])
def test_calibration_errors(kwargs, error, match):
    kwargs = {"meta": META, **kwargs}
    with pytest.raises(error, match=match):
        simulated_calibration(**kwargs)


# -- errors name the parameter (checked before onnxruntime is imported) -------
@pytest.mark.parametrize(("change", "error", "match"), [
    ({"net": "resnet18"}, TypeError, "'net' must be a torch.nn.Module"),
    ({"calibration": np.zeros((2, 5, SIZE))}, ValueError, "'calibration' must have"),
    ({"calibration": "cutouts"}, TypeError, "'calibration' must hold real"),
    ({"calibration": np.full((2, 5, SIZE, SIZE), np.nan)}, ValueError,
     "'calibration' must be finite"),
    ({"margin": -0.1}, ValueError, "'margin' must be finite and >= 0"),
    ({"margin": "0.2"}, TypeError, "'margin' must be a number.* or 'auto'"),
    ({"num_threads": 0}, ValueError, "'num_threads'"),
    ({"validation": np.zeros((2, 5, 9, 9))}, ValueError, "'validation' cutouts"),
])
def test_quantize_errors(change, error, match):
    kwargs = {"net": tiny_network(), "calibration": np.zeros((2, 5, SIZE, SIZE)),
              **change}
    with pytest.raises(error, match=match):
        quantize_network(kwargs.pop("net"), kwargs.pop("calibration"), **kwargs)


def test_quantize_needs_eval_mode():
    with pytest.raises(ValueError, match="'net' must be in evaluation mode"):
        quantize_network(tiny_network().train(), np.zeros((2, 5, SIZE, SIZE)))


def test_missing_onnxruntime_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="onnxruntime and onnx: pip install"):
        quantize_network(tiny_network(), np.zeros((2, 5, SIZE, SIZE)))


# -- the int8 network ------------------------------------------------------------
@needs_ort
def test_agrees_with_float32(quantized, cutouts):
    # margin='auto' widened the guard until the validation labels agreed
    info = quantized.info
    assert info["margin_from"] == "validation" and info["n_validation"] == 256
    assert info["margin"] == quantized.margin >= DEFAULT_MARGIN
    assert info["agreement"] >= MIN_AGREEMENT
    # on other cutouts: int8 alone is close, the guarded labels agree
    x = torch.from_numpy(cutouts[1])
    with torch.inference_mode():
        ref = tiny_network()(x)
        got = quantized(x)
    raw = torch.from_numpy(quantized.run(cutouts[1], "int8"))
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert (raw - ref).abs().median() < 0.1 * ref.abs().mean()
    assert (raw.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
    assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.995
    stats = quantized.agreement(cutouts[1])
    assert stats["agreement"] >= 0.995 and 0 < stats["recomputed"] < 0.5
    # the guard: near-ties are the float32 model's rows, the others int8's
    ref32 = quantized.run(cutouts[1], "float")
    top2 = np.sort(raw.numpy(), axis=1)[:, -2:]
    redo = top2[:, 1] - top2[:, 0] < quantized.margin
    assert redo.any() and not redo.all()
    np.testing.assert_array_equal(got.numpy()[redo], ref32[redo])
    np.testing.assert_array_equal(got.numpy()[~redo], raw.numpy()[~redo])
    np.testing.assert_allclose(ref32, ref.numpy(), atol=1e-4)


def test_fixed_margin_off(cutouts):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    q = quantize_network(tiny_network(), cutouts[0], margin=0, num_threads=1)
    assert q.margin == 0 and "agreement" not in q.info
    x = cutouts[1][:32]
    np.testing.assert_array_equal(q(torch.from_numpy(x)).numpy(), q.run(x, "int8"))
    assert q.n_recomputed == 0 and q.n_rows == 32


@needs_ort
def test_batch_size_independent(quantized, cutouts):
    x = cutouts[1][:64]
    with torch.inference_mode():
        full = quantized(torch.from_numpy(x)).numpy()
        for bs in (1, 7, 64):
            parts = [quantized(torch.from_numpy(x[i:i + bs])).numpy()
                     for i in range(0, len(x), bs)]
            np.testing.assert_array_equal(np.concatenate(parts), full)
        # channels_last input and a shifted window give the same rows
        cl = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        np.testing.assert_array_equal(quantized(cl).numpy(), full)
        np.testing.assert_array_equal(quantized(torch.from_numpy(x[5:40])).numpy(),
                                      full[5:40])
        assert quantized(torch.zeros((0, 5, SIZE, SIZE))).shape == (0, 4)


@needs_ort
def test_quantization_is_deterministic(quantized, cutouts):
    again = quantize_network(tiny_network(), cutouts[0], margin="auto",
                             validation=cutouts[2], num_threads=1)
    assert again.int8_model == quantized.int8_model
    assert again.info == quantized.info
    x = torch.from_numpy(cutouts[1][:32])
    np.testing.assert_array_equal(again(x).numpy(), quantized(x).numpy())


@needs_ort
def test_save_load_pickle(quantized, cutouts, tmp_path):
    x = torch.from_numpy(cutouts[1][:16])
    ref = quantized(x).numpy()
    path = quantized.save(tmp_path / "net.int8.zip")
    loaded = Int8Network.load(path)
    assert loaded.margin == quantized.margin
    assert loaded.info["n_calibration"] == 64
    np.testing.assert_array_equal(loaded(x).numpy(), ref)
    from_bytes = Int8Network.load(io.BytesIO(quantized.to_bytes()))
    np.testing.assert_array_equal(from_bytes(x).numpy(), ref)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(quantized))(x).numpy(),
                                  ref)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(OSError, match="'path'.*not an int8 network file"):
        Int8Network.load(bad)


@needs_ort
def test_input_errors(quantized):
    with pytest.raises(ValueError, match="runs on the CPU"):
        quantized(torch.zeros((1, 5, SIZE, SIZE), device="meta"))
    with pytest.raises(ValueError, match="shape"):
        quantized(torch.zeros((5, SIZE, SIZE)))
    with pytest.raises(TypeError, match="'int8_model'"):
        Int8Network("model", b"")


@needs_ort
def test_int8_network_is_cached(monkeypatch, tmp_path):
    from .. import _quantize

    monkeypatch.setattr(_quantize, "CALIBRATION_SIZE", 32)
    monkeypatch.setattr(_quantize, "VALIDATION_SIZE", 64)
    net = tiny_network()
    net.clustercls_meta["sha256"] = "0123456789abcdef" * 4
    built = int8_network(net, cache_dir=tmp_path, num_threads=1)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("net-0123456789abcdef-c32")
    assert built.info["n_calibration"] == 32 and built.info["n_validation"] == 64
    loaded = int8_network(net, cache_dir=tmp_path, num_threads=1)
    assert loaded.int8_model == built.int8_model and loaded.info == built.info
    files[0].write_bytes(b"damaged")  # rebuilt and replaced
    assert int8_network(net, cache_dir=tmp_path).int8_model == built.int8_model
    with pytest.raises(TypeError, match="'net' must be a network from get_model"):
        int8_network(nn.Linear(2, 2))
