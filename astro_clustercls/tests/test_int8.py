# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The classifier's int8 path (ONNX Runtime) against its float32 path."""

import warnings

import numpy as np
import pytest

from astro_clustercls import ClusterClassifier, conf, runtime
from astro_clustercls.inference import classifier as classifier_module
from astro_clustercls.simulation import simulate_field
from astro_clustercls.utils.exceptions import ClusterClsWarning

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def field():
    images, truth = simulate_field(seed=21, n_objects=300, shape=(512, 512))
    xy = np.column_stack([np.asarray(truth["x_centroid"], float),
                          np.asarray(truth["y_centroid"], float)])
    return images, xy


def _classify(clf, field, **kwargs):
    images, xy = field
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterClsWarning)  # cutout flags
        return clf(xy, images, **kwargs)


@pytest.fixture
def supported(monkeypatch):
    """As on an AVX2 CPU without native bfloat16, whatever this machine is."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(classifier_module, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(classifier_module, "int8_support",
                        lambda device, native_bf16=None: (True, ""))


def test_auto_takes_int8_and_agrees_with_fp32(field, supported):
    clf = ClusterClassifier("resnet18", device="cpu")
    assert clf.precision == "int8" and clf.channels_last is False
    ref = ClusterClassifier("resnet18", device="cpu", precision="fp32")
    a, b = _classify(clf, field), _classify(ref, field)
    ok = ~np.ma.getmaskarray(a["cluster_class"])
    assert ok.sum() > 250
    agree = np.mean(np.asarray(a["cluster_class"])[ok]
                    == np.asarray(b["cluster_class"])[ok])
    assert agree >= 0.995
    np.testing.assert_allclose(np.asarray(a["class_prob"])[ok],
                               np.asarray(b["class_prob"])[ok], atol=0.15)
    meta = a.meta["astro_clustercls"]
    assert meta["precision"] == "int8" and meta["int8"]["agreement"] >= 0.995
    # rows do not depend on the batch they are in
    small = _classify(ClusterClassifier("resnet18", device="cpu", batch_size=7), field)
    np.testing.assert_array_equal(np.asarray(small["class_prob"]),
                                  np.asarray(a["class_prob"]))


def test_opt_outs(field, supported, monkeypatch, tiny_weights):
    assert ClusterClassifier("resnet18", device="cpu",
                             precision="fp32").precision == "fp32"
    monkeypatch.setattr(conf, "int8_auto", False)
    assert ClusterClassifier("resnet18", device="cpu").precision == "fp32"
    monkeypatch.setattr(conf, "int8_auto", True)
    # a weights file of the user's keeps float32 unless int8 is asked for
    assert ClusterClassifier("resnet18", weights_path=tiny_weights,
                             device="cpu").precision == "fp32"


def test_unsupported_cpu_keeps_fp32(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(classifier_module, "int8_support",
                        lambda device, native_bf16=None: (False, "no AVX2"))
    assert ClusterClassifier("resnet18", device="cpu").precision == "fp32"


def test_int8_only_on_the_cpu():
    with pytest.raises(ValueError, match="'precision' 'int8' runs on the CPU"):
        runtime.resolve_precision("int8", "cuda:0")
    assert runtime.resolve_precision("int8", "cpu") == "int8"
