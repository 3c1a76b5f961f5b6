# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Tests of the classifier's fast paths: precision (bf16 autocast),
channels_last, the background prefetch thread, spatial chunk order and the
release of memory-mapped pages, and the out-of-memory batch halving.
"""

import threading

import numpy as np
import pytest
import torch
from astropy.io import fits

from astro_clustercls import BandImages, runtime
from astro_clustercls._constants import DEFAULT_BANDS
from astro_clustercls.inference import _streaming as streaming
from astro_clustercls.inference.classifier import PRECISIONS, ClusterClassifier
from astro_clustercls.models import build_network, save_weights
from astro_clustercls.simulation import make_training_set
from astro_clustercls.utils.exceptions import ClusterClsWarning

# rows with incomplete cutouts (sources near the edges or a chip gap) are
# incidental here: their CutoutWarning is tested in test_first_hour.py
pytestmark = pytest.mark.filterwarnings(
    "ignore::astro_clustercls.utils.exceptions.CutoutWarning")

SIZE = 21
GRID = 16  # objects per side of the tiled test mosaic


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    net = build_network("resnet18", n_bands=len(DEFAULT_BANDS))
    path = tmp_path_factory.mktemp("weights") / "resnet18-perf.safetensors"
    save_weights(net, path, {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                             "cutout_size": SIZE, "normalization": "asinh-v1",
                             "notes": "random initialisation, for tests only"})
    return path


@pytest.fixture(scope="module")
def mosaic():
    """GRID x GRID simulated objects (make_training_set) tiled into 5-band images."""
    ts = make_training_set(GRID * GRID, SIZE, seed=11)
    tiles = ts.data.reshape(GRID, GRID, len(DEFAULT_BANDS), SIZE, SIZE)
    arrays = {b: np.ascontiguousarray(
        tiles[:, :, i].transpose(0, 2, 1, 3).reshape(GRID * SIZE, GRID * SIZE))
        for i, b in enumerate(DEFAULT_BANDS)}
    centre = SIZE // 2 + SIZE * np.arange(GRID, dtype=float)
    yy, xx = np.meshgrid(centre, centre, indexing="ij")
    xy = np.column_stack([xx.ravel(), yy.ravel()])
    return BandImages(arrays, unit="electron/s"), xy


def classifier(weights_file, **kwargs):
    kwargs.setdefault("device", "cpu")
    return ClusterClassifier("resnet18", weights_path=weights_file, **kwargs)


def test_precision_choice(weights_file, monkeypatch):
    auto = classifier(weights_file)
    expected = "bf16" if runtime.cpu_has_native_bf16() else "fp32"
    assert auto.precision == expected
    assert "precision=" in repr(auto)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert classifier(weights_file).precision == "fp32"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert classifier(weights_file).precision == "bf16"
    assert classifier(weights_file, precision="float32").precision == "fp32"
    assert classifier(weights_file, precision="BF16").precision == "bf16"
    assert set(PRECISIONS) == {"auto", "fp32", "bf16", "fp16", "int8"}
    with pytest.raises(ValueError, match="precision"):
        classifier(weights_file, precision="fp8")
    with pytest.raises(TypeError, match="precision"):
        classifier(weights_file, precision=16)
    with pytest.raises(TypeError, match="channels_last"):
        classifier(weights_file, channels_last="yes")


def test_meta_records_precision(weights_file, mosaic):
    images, xy = mosaic
    result = classifier(weights_file, precision="bf16", channels_last=False,
                        batch_size=32)(xy[:4], images)
    meta = result.meta["astro_clustercls"]
    assert meta["precision"] == "bf16"
    assert meta["precision_requested"] == "bf16"
    assert meta["channels_last"] is False
    assert meta["batch_size"] == 32


def test_bf16_agrees_with_fp32(weights_file, mosaic):
    """bf16 autocast gives the fp32 labels on >= 99 % of 256 simulated objects."""
    images, xy = mosaic
    ref = classifier(weights_file, precision="fp32", batch_size=64)(xy, images)
    low = classifier(weights_file, precision="bf16", batch_size=64)(xy, images)
    p32, p16 = np.asarray(ref["class_prob"]), np.asarray(low["class_prob"])
    assert np.all(np.isfinite(p16))
    diff = np.abs(p16 - p32).max()
    assert 0 < diff <= 0.02  # the bf16 path really ran, and stays close
    agree = np.mean(ref["cluster_class"] == low["cluster_class"])
    assert agree >= 0.99
    # a label may differ only where fp32's top two probabilities are within 2 diff
    top2 = np.sort(p32, axis=1)[:, -2:]
    differs = np.asarray(ref["cluster_class"] != low["cluster_class"])
    assert np.all(top2[differs, 1] - top2[differs, 0] <= 2 * diff)


def test_channels_last_matches_nchw(weights_file, mosaic):
    images, xy = mosaic
    a = classifier(weights_file, precision="fp32", channels_last=True)(xy[:40], images)
    b = classifier(weights_file, precision="fp32", channels_last=False)(xy[:40], images)
    np.testing.assert_allclose(a["class_prob"], b["class_prob"], atol=2e-6)
    np.testing.assert_array_equal(a["cluster_class"], b["cluster_class"])


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_batch_size_invariance_per_precision(weights_file, mosaic, precision):
    """Within one precision, labels do not depend on batch_size (bf16: bitwise)."""
    images, xy = mosaic
    xy = xy[::4]
    results = [classifier(weights_file, precision=precision, batch_size=bs)(xy, images)
               for bs in (1, 5, 64)]
    for other in results[1:]:
        np.testing.assert_array_equal(other["cluster_class"],
                                      results[0]["cluster_class"])
        np.testing.assert_allclose(other["class_prob"], results[0]["class_prob"],
                                   atol=1e-6)


def test_nonfinite_low_precision_logits_redone_in_fp32(weights_file, mosaic,
                                                       monkeypatch):
    images, xy = mosaic
    clf = classifier(weights_file, precision="bf16")
    ref32 = classifier(weights_file, precision="fp32")(xy[:6], images)
    real = ClusterClassifier._logits

    def overflow(self, net, x, precision):
        logits = real(self, net, x, precision)
        if precision != "fp32":
            logits[1] = float("inf")  # as an fp16 overflow would
        return logits

    monkeypatch.setattr(ClusterClassifier, "_logits", overflow)
    result = clf(xy[:6], images)
    probs = np.asarray(result["class_prob"])
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs[1], ref32["class_prob"][1], atol=2e-6)


def test_oom_halves_batch(weights_file, mosaic, monkeypatch):
    """A (fake) CUDA out-of-memory error halves the batch until it fits."""
    images, xy = mosaic
    xy = xy[:11]
    clf = classifier(weights_file, precision="fp32", batch_size=16)
    ref = clf(xy, images)
    real = ClusterClassifier._forward
    shapes = []

    def fake(self, net, batch, pad_to=None):
        shapes.append(batch.shape[0])
        if batch.shape[0] > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return real(self, net, batch, pad_to=pad_to)

    monkeypatch.setattr(ClusterClassifier, "_forward", fake)
    with pytest.warns(ClusterClsWarning, match="out of memory") as record:
        result = clf(xy, images)
    oom = [w for w in record if "out of memory" in str(w.message)]
    assert len(oom) == 2  # 16 -> 8 -> 4
    assert shapes == [11, 8, 4, 4, 3]  # 11 rows: fail, fail, then 4 + 4 + 3
    assert result.meta["astro_clustercls"]["batch_size"] == 4
    np.testing.assert_allclose(result["class_prob"], ref["class_prob"], atol=1e-6)
    np.testing.assert_array_equal(result["cluster_class"], ref["cluster_class"])
    assert clf.batch_size == 16  # the classifier's setting is unchanged

    def always(self, net, batch, pad_to=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    monkeypatch.setattr(ClusterClassifier, "_forward", always)
    with pytest.warns(ClusterClsWarning, match="out of memory"):
        with pytest.raises(torch.cuda.OutOfMemoryError):
            classifier(weights_file, batch_size=2)(xy, images)
    assert not _prefetch_threads()


def _prefetch_threads():
    return [t for t in threading.enumerate()
            if t.name == "astro_clustercls-prefetch" and t.is_alive()]


def test_cutouts_made_in_background_in_y_order(weights_file, mosaic, monkeypatch):
    images, xy = mosaic
    rng = np.random.default_rng(3)
    xy = xy[rng.permutation(len(xy))[:30]]
    clf = classifier(weights_file, precision="fp32")
    whole = clf(xy, images)
    calls = []
    real = streaming.make_cutouts

    def spy(images, positions, size, **kwargs):
        calls.append((threading.current_thread().name, np.asarray(positions)[:, 1]))
        return real(images, positions, size, **kwargs)

    monkeypatch.setattr(streaming, "chunk_size", lambda nb, size, bs: 7)
    monkeypatch.setattr(streaming, "make_cutouts", spy)
    chunked = clf(xy, images)
    assert [len(y) for _, y in calls] == [7, 7, 7, 7, 2]
    assert {name for name, _ in calls} == {"astro_clustercls-prefetch"}
    ys = np.concatenate([y for _, y in calls])
    assert np.all(np.diff(ys) >= 0)  # chunks follow y
    # ... but the output keeps the input order
    np.testing.assert_array_equal(chunked["x_centroid"], xy[:, 0])
    np.testing.assert_allclose(chunked["class_prob"], whole["class_prob"], atol=1e-6)
    assert not _prefetch_threads()


def test_error_in_background_thread_propagates(weights_file, mosaic, monkeypatch):
    images, xy = mosaic

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(streaming, "make_cutouts", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        classifier(weights_file)(xy[:5], images)
    assert not _prefetch_threads()


def test_memmapped_pages_released(weights_file, mosaic, tmp_path, monkeypatch):
    """Pages of memory-mapped FITS are paged out per chunk, without losing edits."""
    images, xy = mosaic
    files = {}
    for band in images.bands:
        files[band] = tmp_path / f"{band}.fits"
        fits.writeto(files[band], images[band].data.astype(">f4"))
    mapped = BandImages.from_files(files)
    buffers = streaming.mapped_buffers([mapped[b].data for b in mapped.bands])
    assert len(buffers) == len(DEFAULT_BANDS)
    clf = classifier(weights_file, precision="fp32")
    ref = clf(xy, images)

    released = []
    real = streaming.release_pages

    def spy(bufs):
        released.append(len(bufs))
        real(bufs)

    monkeypatch.setattr(streaming, "RELEASE_MIN_BYTES", 0)
    monkeypatch.setattr(streaming, "chunk_size", lambda nb, size, bs: 100)
    monkeypatch.setattr(streaming, "release_pages", spy)
    # an in-place edit of a copy-on-write map survives the page-out
    data = mapped["F555W"].data
    data[0, 0] = 12345.0
    result = clf(xy, mapped)
    assert released == [len(DEFAULT_BANDS)] * 3
    assert data[0, 0] == 12345.0
    # only the edited object changes
    same = np.arange(len(xy)) != 0
    np.testing.assert_allclose(result["class_prob"][same], ref["class_prob"][same],
                               atol=1e-6)
    # in-memory arrays have nothing to release
    assert streaming.mapped_buffers([images["F555W"].data]) == []


def test_chunk_bounds():
    ys = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 30.0, 31.0, 32.0, 33.0, np.nan, np.nan])
    bounds = streaming.chunk_bounds(ys, 3)
    assert bounds == [(0, 3), (3, 6), (6, 9), (9, 11)]
    # with a span of 5 rows, a chunk also stops where y moves on
    bounds = streaming.chunk_bounds(ys, 3, span=5)
    assert bounds == [(0, 3), (3, 5), (5, 8), (8, 9), (9, 11)]
    covered = np.concatenate([np.arange(a, b) for a, b in bounds])
    np.testing.assert_array_equal(covered, np.arange(len(ys)))
    assert streaming.chunk_bounds(np.zeros(0), 3, span=5) == []


def test_span_limits_chunks_of_mapped_images(weights_file, mosaic, tmp_path,
                                              monkeypatch):
    """Large memory-mapped images get chunks spanning a bounded band of rows."""
    images, xy = mosaic
    files = {}
    for band in images.bands:
        files[band] = tmp_path / f"{band}.fits"
        fits.writeto(files[band], images[band].data.astype(">f4"))
    mapped = BandImages.from_files(files)
    calls = []
    real = streaming.make_cutouts

    def spy(images, positions, size, **kwargs):
        calls.append(np.asarray(positions)[:, 1])
        return real(images, positions, size, **kwargs)

    row_bytes = 4 * images.shape[1] * len(DEFAULT_BANDS)
    monkeypatch.setattr(streaming, "RELEASE_MIN_BYTES", 0)
    monkeypatch.setattr(streaming, "SPAN_BYTES", 100 * row_bytes)
    monkeypatch.setattr(streaming, "make_cutouts", spy)
    clf = classifier(weights_file, precision="fp32")
    result = clf(xy, mapped)
    assert len(calls) > 1
    assert all(np.ptp(y) < 100 for y in calls)
    assert sum(len(y) for y in calls) == len(xy)
    monkeypatch.setattr(streaming, "make_cutouts", real)
    np.testing.assert_allclose(result["class_prob"], clf(xy, images)["class_prob"],
                               atol=1e-6)
