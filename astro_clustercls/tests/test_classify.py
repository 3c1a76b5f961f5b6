# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the classifier (ClusterClassifier, classify_sources)."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table
from photutils.detection import DAOStarFinder

from astro_clustercls import BandImages, make_cutouts
from astro_clustercls._constants import DEFAULT_BANDS
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference import _streaming as streaming
from astro_clustercls.inference import classify_sources
from astro_clustercls.inference.classifier import (
    OUTPUT_COLUMNS,
    ClusterClassifier,
    clear_model_cache,
)
from astro_clustercls.models import build_network, file_sha256, save_weights
from astro_clustercls.preprocessing import dihedral, normalize
from astro_clustercls.utils.exceptions import (
    BandWarning,
    InputColumnWarning,
)

from .conftest import make_wcs

# rows with incomplete cutouts (sources near the edges) are incidental here:
# their CutoutWarning is tested in test_first_hour.py
pytestmark = pytest.mark.filterwarnings(
    "ignore::astro_clustercls.utils.exceptions.CutoutWarning")

SIZE = 21
SHAPE = (128, 128)
# blob positions (x, y): well inside, near the edge, and a close pair
BLOBS = [(30.0, 40.0), (64.0, 64.0), (100.0, 25.0), (20.0, 100.0), (90.0, 95.0),
         (45.0, 75.0), (110.0, 60.0), (4.0, 64.0)]


def make_images(*, seed=0, bands=DEFAULT_BANDS, wcs=False, shape=SHAPE):
    """Gaussian blobs of band-dependent flux and width on a noisy sky."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    images = {}
    for b, band in enumerate(bands):
        img = rng.normal(1.0, 0.05, shape)
        for i, (x, y) in enumerate(BLOBS):
            sigma = 1.0 + 0.25 * ((i + b) % 4)
            flux = 20.0 * (1 + i) * (1 + 0.3 * b)
            img += flux / (2 * np.pi * sigma**2) * np.exp(
                -((xx - x)**2 + (yy - y)**2) / (2 * sigma**2))
        images[band] = img
    wcs = make_wcs(shape, crval=(150.0, 2.0)) if wcs else None
    return BandImages(images, wcs=wcs, unit="electron/s")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A small, untrained ResNet18 weights file with meta (made once per module)."""
    torch.manual_seed(0)
    net = build_network("resnet18", n_bands=len(DEFAULT_BANDS))
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.safetensors"
    meta = {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
            "cutout_size": SIZE, "normalization": "asinh-v1",
            "notes": "random initialisation, for tests only"}
    save_weights(net, path, meta)
    return path


@pytest.fixture(scope="module")
def images():
    return make_images()


@pytest.fixture(scope="module")
def clf(weights_file):
    return ClusterClassifier("resnet18", weights_path=weights_file, device="cpu",
                             batch_size=16)


@pytest.fixture(scope="module")
def clf32(weights_file):
    """The float32 reference path (the default may run in bfloat16)."""
    return ClusterClassifier("resnet18", weights_path=weights_file, device="cpu",
                             batch_size=16, precision="fp32")


# largest |probability difference| allowed between bfloat16 autocast and float32
# for the untrained test network: bf16 keeps 8 significant bits (relative rounding
# 2**-9 ~ 0.2 %) at each of the ~20 layers of a ResNet18, and this network's
# logits are small and its probabilities near 0.25, so differences stay far
# below 0.02 (a trained network's sharper logits reach ~0.025: see
# benchmarks/bench_inference.py)
BF16_PROB_ATOL = 0.02


@pytest.fixture(scope="module")
def dao_table(images):
    data = images["F555W"].data
    finder = DAOStarFinder(threshold=5.0, fwhm=3.0)
    table = finder(data - np.median(data))
    assert table is not None and len(table) >= 5
    return table


def reference_probs(weights_file, images, xy, size=SIZE):
    """Probabilities computed by hand from make_cutouts, normalize and the network."""
    from astro_clustercls.models import get_model

    stack = make_cutouts(images, np.asarray(xy, float), size)
    x = torch.from_numpy(normalize(stack.data, "asinh-v1"))
    net = get_model("resnet18", weights_path=weights_file)
    with torch.inference_mode():
        return torch.softmax(net(x), dim=1).numpy()


def check_columns(result):
    n = len(result)
    assert result["cluster_class"].dtype.kind == "i"
    assert isinstance(result["cluster_class"], MaskedColumn)
    assert result["class_prob"].shape == (n, 4)
    assert result["class_prob"].dtype == np.float32
    assert result["class_prob_max"].shape == (n,)
    assert result["classify_flags"].dtype.kind == "i"
    ok = ~np.ma.getmaskarray(result["cluster_class"])
    probs = np.asarray(result["class_prob"])
    np.testing.assert_allclose(probs[ok].sum(axis=1), 1.0, atol=1e-6)
    assert np.all((probs[ok] >= 0) & (probs[ok] <= 1))
    assert np.all(np.isnan(probs[~ok]))
    classes = np.asarray(result["cluster_class"].data)[ok]
    assert set(classes.tolist()) <= {1, 2, 3, 4}
    np.testing.assert_array_equal(classes, probs[ok].argmax(axis=1) + 1)
    np.testing.assert_array_equal(result["class_prob_max"][ok], probs[ok].max(axis=1))
    flags = np.asarray(result["classify_flags"])
    assert np.all((flags[~ok] & FLAGS.NOT_CLASSIFIED.bit) != 0)
    assert np.all((flags[ok] & FLAGS.NOT_CLASSIFIED.bit) == 0)


def test_daofinder_table(clf, clf32, images, dao_table, weights_file):
    result = clf32(dao_table, images)
    assert isinstance(result, QTable)
    assert len(result) == len(dao_table)
    assert result.colnames == dao_table.colnames + list(OUTPUT_COLUMNS)
    for name in dao_table.colnames:  # every input column and row, in order
        np.testing.assert_array_equal(np.asarray(result[name]),
                                      np.asarray(dao_table[name]))
    check_columns(result)
    # the same numbers as the hand-made pipeline on the same positions
    xy = np.column_stack([dao_table["x_centroid"], dao_table["y_centroid"]])
    ref = reference_probs(weights_file, images, xy)
    np.testing.assert_allclose(result["class_prob"], ref, atol=2e-6)
    assert "CutoutWarning" not in str(result.meta)
    # the default path (bf16 where the CPU has it) is close to the reference
    default = clf(dao_table, images)
    check_columns(default)
    assert default.meta["astro_clustercls"]["precision"] == clf.precision
    np.testing.assert_allclose(default["class_prob"], ref,
                               atol=2e-6 if clf.precision == "fp32" else BF16_PROB_ATOL)


def test_batch_size_invariance(weights_file, images):
    rng = np.random.default_rng(5)
    xy = rng.uniform(-5, 132, size=(40, 2))
    results = [ClusterClassifier("resnet18", weights_path=weights_file, device="cpu",
                                 batch_size=bs)(xy, images) for bs in (1, 7, 64)]
    base = results[0]
    check_columns(base)
    for other in results[1:]:
        np.testing.assert_array_equal(other["cluster_class"].mask,
                                      base["cluster_class"].mask)
        np.testing.assert_array_equal(other["cluster_class"], base["cluster_class"])
        np.testing.assert_allclose(other["class_prob"], base["class_prob"], atol=1e-6,
                                   equal_nan=True)
        np.testing.assert_array_equal(other["classify_flags"], base["classify_flags"])


def test_two_runs_identical(clf, images, dao_table):
    a = clf(dao_table, images)
    b = clf(dao_table, images)
    np.testing.assert_array_equal(a["class_prob"], b["class_prob"])


def test_chunking_matches_single_pass(monkeypatch, clf, images):
    """Chunks of 3 sources give what one pass gives; cutouts are made per chunk."""
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 127, size=(11, 2))
    whole = clf(xy, images)
    calls = []
    real = streaming.make_cutouts

    def spy(images, positions, size, **kwargs):
        calls.append(len(positions))
        return real(images, positions, size, **kwargs)

    monkeypatch.setattr(streaming, "chunk_size", lambda nb, size, bs: 3)
    monkeypatch.setattr(streaming, "make_cutouts", spy)
    chunked = clf(xy, images)
    assert calls == [3, 3, 3, 2]
    np.testing.assert_allclose(chunked["class_prob"], whole["class_prob"], atol=1e-6)
    np.testing.assert_array_equal(chunked["cluster_class"], whole["cluster_class"])


def test_chunk_size_bounded():
    # memory per chunk stays near 64 MB whatever the number of sources; a chunk
    # holds at least one batch
    n = streaming.chunk_size(5, 101, 16)
    assert 64 <= n <= 4096
    assert n * 2 * 4 * 5 * 101 * 101 <= 70 * 2**20
    assert streaming.chunk_size(5, 15, 256) == 4096
    assert streaming.chunk_size(5, 101, 1000) == 1000


def test_bad_rows_flagged_and_kept(clf, images, weights_file):
    table = QTable({"id": [1, 2, 3, 4, 5],
                    "x_centroid": [30.0, 500.0, np.nan, 2.0, 64.0],
                    "y_centroid": [40.0, 40.0, 10.0, 64.0, 64.0]})
    result = clf(table, images)
    assert result["id"].tolist() == [1, 2, 3, 4, 5]
    check_columns(result)
    mask = result["cluster_class"].mask.tolist()
    assert mask == [False, True, True, False, False]
    flags = result["classify_flags"]
    assert flags[1] == FLAGS.OFF_IMAGE | FLAGS.NOT_CLASSIFIED
    assert flags[2] == FLAGS.BAD_POSITION | FLAGS.NOT_CLASSIFIED
    assert flags[3] & FLAGS.PARTIAL_OFF_IMAGE.bit
    assert flags[0] == 0 and flags[4] == 0
    # the good rows are exactly what they are alone
    alone = clf(table[[0, 3, 4]], images)
    np.testing.assert_allclose(result["class_prob"][[0, 3, 4]], alone["class_prob"],
                               atol=1e-6)


def test_masked_position_and_all_nan_cutout(clf, weights_file):
    base = make_images()
    arrays = {b: base[b].data.copy() for b in base.bands}
    for a in arrays.values():
        a[:40, :40] = np.nan  # a chip gap
    images = BandImages(arrays)
    table = Table({"x_centroid": MaskedColumn([10.0, 64.0, 70.0],
                                              mask=[False, False, True]),
                   "y_centroid": [10.0, 64.0, 70.0]})
    result = clf(table, images)
    check_columns(result)
    assert result["cluster_class"].mask.tolist() == [True, False, True]
    assert result["classify_flags"][0] & FLAGS.NOT_CLASSIFIED.bit
    assert result["classify_flags"][0] & FLAGS.NONFINITE.bit
    assert result["classify_flags"][2] == FLAGS.BAD_POSITION | FLAGS.NOT_CLASSIFIED


def test_empty_inputs(clf, images):
    table = QTable({"x_centroid": np.zeros(0), "y_centroid": np.zeros(0)})
    result = clf(table, images)
    assert len(result) == 0
    assert result.colnames == ["x_centroid", "y_centroid", *OUTPUT_COLUMNS]
    assert result["class_prob"].shape == (0, 4)
    assert result.meta["astro_clustercls"]["n_sources"] == 0
    assert len(clf(np.zeros((0, 2)), images)) == 0


def test_array_and_skycoord_input(clf, weights_file):
    images = make_images(wcs=True)
    xy = np.array(BLOBS[:4])
    r1 = clf(xy, images)
    assert r1.colnames[:2] == ["x_centroid", "y_centroid"]
    np.testing.assert_array_equal(r1["x_centroid"], xy[:, 0])
    coords = images.wcs.pixel_to_world(xy[:, 0], xy[:, 1])
    r2 = clf(coords, images)
    assert r2.colnames[0] == "sky_centroid"
    assert isinstance(r2["sky_centroid"], SkyCoord)
    np.testing.assert_allclose(r2["class_prob"], r1["class_prob"], atol=1e-6)
    assert r2.meta["astro_clustercls"]["positions"] == "SkyCoord via WCS"
    # origin=1 for 1-based input: the same cutouts
    r3 = clf(xy + 1, images, origin=1)
    np.testing.assert_allclose(r3["class_prob"], r1["class_prob"], atol=1e-6)


def test_sky_and_pixel_columns_agree(clf):
    images = make_images(wcs=True)
    xy = np.array(BLOBS)
    table = QTable({"ra_dec": images.wcs.pixel_to_world(xy[:, 0], xy[:, 1]),
                    "px": xy[:, 0], "py": xy[:, 1]})
    by_pixel = clf(table, images, xcol="px", ycol="py")
    by_sky = clf(table, images, skycol="ra_dec")
    np.testing.assert_allclose(by_sky["class_prob"], by_pixel["class_prob"], atol=1e-6)
    np.testing.assert_array_equal(by_sky["cluster_class"], by_pixel["cluster_class"])
    assert by_pixel.meta["astro_clustercls"]["positions"] == "columns px/py"
    assert "ra_dec" in by_sky.meta["astro_clustercls"]["positions"]


def test_meta(clf, images, dao_table, weights_file):
    result = clf(dao_table, images)
    meta = result.meta["astro_clustercls"]
    assert meta["model"] == "resnet18"
    assert meta["weights"] == f"file:{weights_file.name}"
    assert meta["weights_sha256"] == file_sha256(weights_file)
    assert meta["bands"] == list(DEFAULT_BANDS)
    assert meta["cutout_size"] == SIZE
    assert meta["normalization"] == "asinh-v1"
    assert meta["device"] == "cpu"
    assert meta["positions"] == "columns x_centroid/y_centroid"
    assert meta["tta"] is False
    assert meta["n_sources"] == len(dao_table)
    assert meta["categories"] == [1, 2, 3, 4]
    assert "astro_clustercls" in meta["version"] and "torch" in meta["version"]
    assert meta["weights_notes"] == "random initialisation, for tests only"


def test_missing_band(weights_file, images):
    four = images.select(["F336W", "F438W", "F555W", "F814W"])
    with pytest.raises(ValueError, match="F275W"):
        ClusterClassifier("resnet18", weights_path=weights_file)(BLOBS, four)
    clf0 = ClusterClassifier("resnet18", weights_path=weights_file,
                             missing_bands="zero", precision="fp32")
    with pytest.warns(BandWarning, match="F275W"):
        result = clf0(BLOBS, four)
    check_columns(result)
    assert np.all(result["classify_flags"] & FLAGS.BAND_MISSING.bit)
    assert result.meta["astro_clustercls"]["bands_used"]["F275W"] is None
    from astro_clustercls.models import get_model

    # reference: the four bands normalised, band 0 zero
    stack = make_cutouts(four, np.array(BLOBS), SIZE)
    x = np.zeros((len(BLOBS), 5, SIZE, SIZE), np.float32)
    x[:, 1:] = normalize(stack.data)
    with torch.inference_mode():
        ref = torch.softmax(get_model("resnet18", weights_path=weights_file)(
            torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(result["class_prob"], ref, atol=2e-6)


def test_extra_band_and_order(clf, images):
    base = clf(BLOBS, images)
    arrays = {b: images[b].data for b in reversed(images.bands)}  # other order
    arrays["F606W"] = images["F555W"].data
    with pytest.warns(BandWarning, match="F606W"):
        result = clf(BLOBS, BandImages(arrays))
    np.testing.assert_allclose(result["class_prob"], base["class_prob"], atol=1e-6)


def test_band_substitution(weights_file, images):
    base = ClusterClassifier("resnet18", weights_path=weights_file)(BLOBS, images)
    arrays = {("F435W" if b == "F438W" else b): images[b].data for b in images.bands}
    clf = ClusterClassifier("resnet18", weights_path=weights_file,
                            bands={"F438W": "F435W"})
    result = clf(BLOBS, BandImages(arrays))
    np.testing.assert_allclose(result["class_prob"], base["class_prob"], atol=1e-6)
    assert result.meta["astro_clustercls"]["bands_used"]["F438W"] == "F435W"
    with pytest.raises(ValueError, match="F999W"):
        ClusterClassifier("resnet18", weights_path=weights_file, bands={"F999W": "x"})
    with pytest.raises(ValueError, match="none of the network's bands"):
        clf(BLOBS, BandImages({"F110W": images["F555W"].data}))


def test_tta(weights_file):
    """TTA probabilities are invariant under a 90-degree rotation of the image."""
    images = make_images(shape=(96, 96))
    xy = np.array([(30.0, 40.0), (64.0, 64.0), (45.0, 75.0)])
    clf = ClusterClassifier("resnet18", weights_path=weights_file, tta=True,
                            precision="fp32")
    plain = ClusterClassifier("resnet18", weights_path=weights_file,
                              precision="fp32")
    result = clf(xy, images)
    check_columns(result)
    assert result.meta["astro_clustercls"]["tta"] is True
    # rotate every band by 90 degrees counter-clockwise (np.rot90):
    # pixel (x, y) goes to (y, nx - 1 - x)
    rotated = BandImages({b: np.rot90(images[b].data) for b in images.bands})
    xy_rot = np.column_stack([xy[:, 1], 95 - xy[:, 0]])
    np.testing.assert_allclose(clf(xy_rot, rotated)["class_prob"],
                               result["class_prob"], atol=2e-6)
    # without TTA the rotation changes the probabilities (the test can fail)
    assert not np.allclose(plain(xy_rot, rotated)["class_prob"],
                           plain(xy, images)["class_prob"], atol=1e-4)
    # and TTA is the mean of the 8 transforms
    stack = make_cutouts(images, xy, SIZE)
    x = torch.from_numpy(normalize(stack.data))
    net = clf._network()
    with torch.inference_mode():
        ref = sum(torch.softmax(net(dihedral(x, k)), dim=1) for k in range(8)) / 8
    np.testing.assert_allclose(result["class_prob"], ref.numpy(), atol=2e-6)


def test_confidence_threshold(weights_file, images):
    high = ClusterClassifier("resnet18", weights_path=weights_file,
                             confidence_threshold=1.0)(BLOBS, images)
    assert np.all(high["classify_flags"] & FLAGS.LOW_CONFIDENCE.bit)
    assert not np.any(high["cluster_class"].mask)
    low = ClusterClassifier("resnet18", weights_path=weights_file,
                            confidence_threshold=0.0)(BLOBS, images)
    assert not np.any(low["classify_flags"] & FLAGS.LOW_CONFIDENCE.bit)
    with pytest.raises(ValueError, match="confidence_threshold"):
        ClusterClassifier("resnet18", weights_path=weights_file,
                          confidence_threshold=1.5)


def test_existing_output_columns_kept_renamed(clf, images):
    """Input columns named like output columns are renamed, never replaced."""
    first = clf(BLOBS, images)
    with pytest.warns(InputColumnWarning,
                      match="'cluster_class' -> 'cluster_class_input'") as record:
        second = clf(first, images)
    assert len([w for w in record if w.category is InputColumnWarning]) == 1
    renamed = {c: f"{c}_input" for c in OUTPUT_COLUMNS}
    assert second.colnames == ["x_centroid", "y_centroid", *renamed.values(),
                               *OUTPUT_COLUMNS]
    assert second.meta["astro_clustercls"]["renamed_columns"] == renamed
    for old, new in renamed.items():  # the input values, untouched
        np.testing.assert_array_equal(np.ma.filled(second[new], -1),
                                      np.ma.filled(first[old], -1))
    np.testing.assert_allclose(second["class_prob"], first["class_prob"], atol=1e-6)
    # a third pass: the names taken are skipped
    with pytest.warns(InputColumnWarning, match="'cluster_class_input2'"):
        third = clf(second, images)
    assert "cluster_class_input" in third.colnames
    assert third.meta["astro_clustercls"]["renamed_columns"]["cluster_class"] == \
        "cluster_class_input2"


def test_classify_sources(weights_file, images, clf):
    a = classify_sources(BLOBS, images, model="resnet18", weights_path=weights_file)
    b = clf(BLOBS, images)
    np.testing.assert_allclose(a["class_prob"], b["class_prob"], atol=1e-6)


def test_model_cached(weights_file):
    a = ClusterClassifier("resnet18", weights_path=weights_file)
    b = ClusterClassifier("resnet18", weights_path=str(weights_file), batch_size=3)
    net = a._network()
    assert b._network() is net
    clear_model_cache()
    c = ClusterClassifier("resnet18", weights_path=weights_file)
    assert c._network() is not net


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": -3}, ValueError, "batch_size"),
    ({"batch_size": 10**6}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"device": "gpu"}, ValueError, r"'device' must be one of .*'cpu'"),
    ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "cuda:99"},
     ValueError, "device"),
    ({"device": 3}, TypeError, "device"),
    ({"cutout_size": 31}, ValueError, f"trained on {SIZE}-pixel"),
    ({"missing_bands": "skip"}, ValueError, "missing_bands"),
    ({"tta": "yes"}, TypeError, "tta"),
    ({"weights": "DEFAULT"}, ValueError, "not both"),
    ({"weights_sha256": "xyz"}, ValueError, "weights_sha256"),
])
def test_invalid_options(weights_file, kwargs, error, match):
    with pytest.raises(error, match=match):
        ClusterClassifier("resnet18", weights_path=weights_file, **kwargs)


def test_unknown_model_suggests():
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        ClusterClassifier("resnet81")
    with pytest.raises(ValueError, match="vgg19_bn"):
        ClusterClassifier("vgg19")


def test_cutout_size_matching_is_accepted(weights_file):
    clf = ClusterClassifier("resnet18", weights_path=weights_file, cutout_size=SIZE)
    assert clf.cutout_size == SIZE


def test_weights_hash_mismatch(weights_file, tmp_path):
    digest = file_sha256(weights_file)
    ok = ClusterClassifier("resnet18", weights_path=weights_file,
                           weights_sha256=digest[:12])
    assert ok.weights_sha256 == digest
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        ClusterClassifier("resnet18", weights_path=weights_file,
                          weights_sha256="0" * 64)


def test_bundled_weights_hash_checked(monkeypatch, tmp_path, weights_file, images):
    """A tampered bundled file is refused; an intact one is used by name."""
    from astro_clustercls.models import _api, register_bundled_weights

    monkeypatch.setattr(_api, "DATA_DIR", tmp_path)
    clear_model_cache()
    torch.manual_seed(1)
    meta = {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
            "cutout_size": SIZE, "normalization": "asinh-v1",
            "categories": [1, 2, 3, 4], "label_set": "test", "training_data": "none",
            "simulator_version": "none", "metrics": {}, "recipe": {},
            "notes": "untrained, for a test"}
    member = register_bundled_weights(build_network("resnet18"), "resnet18", "TEST_V1",
                                      meta)
    clf = ClusterClassifier("resnet18")  # DEFAULT
    result = clf(BLOBS, images)
    info = result.meta["astro_clustercls"]
    assert info["weights"] == "ResNet18_Weights.TEST_V1"
    assert info["weights_sha256"] == member.sha256
    clear_model_cache()
    path = tmp_path / member.path
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        ClusterClassifier("resnet18", weights="TEST_V1")
    clear_model_cache()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/astro_clustercls_pwned",))


def test_pickle_file_refused(tmp_path):
    import os

    marker = "/tmp/astro_clustercls_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    state = build_network("resnet18").state_dict()
    meta = {"bands": list(DEFAULT_BANDS), "cutout_size": SIZE,
            "normalization": "asinh-v1"}
    # a clean torch state dict file loads (with meta given for it)
    good = tmp_path / "good.pt"
    torch.save(state, good)
    clf = ClusterClassifier("resnet18", weights_path=good, weights_meta=meta)
    assert clf.cutout_size == SIZE
    # one carrying a Python object is refused before anything runs
    torch.save({"state_dict": state, "payload": _Evil()}, path)
    with pytest.raises(OSError, match="refusing to load"):
        ClusterClassifier("resnet18", weights_path=path, weights_meta=meta)
    assert not os.path.exists(marker)
    # a plain pickle file is refused too
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(OSError):
        ClusterClassifier("resnet18", weights_path=plain, weights_meta=meta)
    assert not os.path.exists(marker)
    # without meta, a torch file gets a clear error
    with pytest.raises(ValueError, match="carries no meta"):
        ClusterClassifier("resnet18", weights_path=good)


def test_corrupt_and_missing_weights(weights_file, tmp_path):
    with pytest.raises(OSError, match="not found"):
        ClusterClassifier("resnet18", weights_path=tmp_path / "nope.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(weights_file.read_bytes()[:1000])
    with pytest.raises(OSError, match="truncated or corrupt"):
        ClusterClassifier("resnet18", weights_path=truncated)
    with pytest.raises(TypeError, match="weights_path"):
        ClusterClassifier("resnet18", weights_path=3)


def test_keyboard_interrupt_propagates(monkeypatch, clf, images):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(streaming, "make_cutouts", interrupt)
    with pytest.raises(KeyboardInterrupt):
        clf(BLOBS, images)


def test_bad_sources(clf, images):
    with pytest.raises(ValueError, match="no position columns"):
        clf(QTable({"flux": [1.0, 2.0]}), images)
    with pytest.raises(TypeError):
        clf("sources.ecsv", images)
    with pytest.raises(ValueError, match="no WCS"):
        clf(SkyCoord([150.0], [2.0], unit="deg"), images)
    with pytest.raises(TypeError, match="images"):
        clf(BLOBS, [1, 2, 3])
    with pytest.raises(ValueError, match="pixel"):
        clf(QTable({"x_centroid": [1.0] * u.deg, "y_centroid": [1.0] * u.deg}), images)


def test_repr(clf):
    text = repr(clf)
    assert "resnet18" in text and "cpu" in text and str(SIZE) in text


def test_progress_bar_runs(weights_file, images, capsys):
    clf = ClusterClassifier("resnet18", weights_path=weights_file, progress_bar=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's environment chatter
        result = clf([*BLOBS, (900.0, 900.0)], images)
    assert len(result) == len(BLOBS) + 1
    err = capsys.readouterr().err
    assert "classify (resnet18)" in err
    assert f"{len(BLOBS) + 1}/{len(BLOBS) + 1}" in err  # off-image row counted


def test_other_band_count_from_meta(tmp_path, images):
    """A 3-band network takes its bands from its meta; other bands are ignored."""
    torch.manual_seed(2)
    bands3 = ["F336W", "F555W", "F814W"]
    path = tmp_path / "three.safetensors"
    save_weights(build_network("resnet18", n_bands=3), path,
                 {"architecture": "resnet18", "bands": bands3, "cutout_size": 15,
                  "normalization": "asinh-v1", "notes": "three bands"})
    clf = ClusterClassifier("resnet18", weights_path=path)
    assert clf.bands == tuple(bands3) and clf.cutout_size == 15
    with pytest.warns(BandWarning, match="F275W"):
        result = clf(BLOBS, images)
    check_columns(result)
    ref = clf(BLOBS, images.select(bands3))
    np.testing.assert_allclose(result["class_prob"], ref["class_prob"], atol=1e-6)
    # a file whose meta disagrees with its weights is refused
    wrong = tmp_path / "wrong.safetensors"
    save_weights(build_network("resnet18", n_bands=3), wrong,
                 {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
                  "cutout_size": 15, "normalization": "asinh-v1"})
    with pytest.raises(ValueError, match="meta lists 5 bands but the weights take 3"):
        ClusterClassifier("resnet18", weights_path=wrong)
