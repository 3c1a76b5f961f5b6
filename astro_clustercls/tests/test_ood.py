# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The OUT_OF_DISTRIBUTION flag and the ood_score of the classifier and ensemble."""

import warnings

import numpy as np
import pytest
import torch
from astropy.table import Table
from safetensors.torch import save_file

from astro_clustercls import ClusterClassifier
from astro_clustercls.cli import main as cli_main
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.evaluation.ood_sets import OOD_SETS, as_images, make_ood_sets
from astro_clustercls.inference import ClusterEnsemble
from astro_clustercls.inference.distributed import classify_mosaic
from astro_clustercls.inference.ensemble import ENSEMBLE_COLUMNS, ENSEMBLE_OOD_COLUMNS
from astro_clustercls.models import (
    OOD_METHOD,
    _api,
    build_network,
    check_ood_info,
    file_sha256,
    fit_feature_statistics,
    save_weights,
    stage_features,
)
from astro_clustercls.models._ood import DETECTION_SIGMA
from astro_clustercls.simulation import make_training_set
from astro_clustercls.utils.exceptions import (
    ClusterClsWarning,
    InputColumnWarning,
    WeightsWarning,
)

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")
OOD_BIT = FLAGS.OUT_OF_DISTRIBUTION.bit


def _classify(clf, cutouts, **kwargs):
    images, xy = as_images(cutouts, BANDS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterClsWarning)
        return clf(xy, images, **kwargs)


def _flagged(table):
    return np.asarray(table["classify_flags"]) & OOD_BIT != 0


@pytest.fixture(scope="module")
def sets():
    """80 objects of the simulator's held-out galaxy and the OOD sets made of them."""
    held = make_training_set(80, 51, 5, bands=BANDS, held_out=True).data
    return {"held-out": held, **make_ood_sets(held, seed=5)}


@pytest.fixture(scope="module")
def fp32():
    return ClusterClassifier("resnet18", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def scored(sets, fp32):
    return {name: _classify(fp32, data) for name, data in sets.items()}


def test_flag_bit_decodes():
    assert FLAGS.OUT_OF_DISTRIBUTION.bit == 512
    assert FLAGS.decode(512 | 128) == ("LOW_CONFIDENCE", "OUT_OF_DISTRIBUTION")
    assert FLAGS.to_mask(np.array([0, 512, 513]), ["OUT_OF_DISTRIBUTION"]).tolist() \
        == [False, True, True]
    assert "OUT_OF_DISTRIBUTION" in str(FLAGS)


def test_bundled_statistics_belong_to_the_bundled_weights():
    # a network retrained and registered without a refit fails here
    for name in ("resnet18", "vgg19_bn"):
        weights = _api.get_model_weights(name).verify("DEFAULT")
        info = weights.meta.get("ood")
        assert info, f"{name}: no OOD statistics; run 'astro-clustercls " \
                     f"experiments ood --arch {name} --register'"
        assert check_ood_info(weights.meta) is None
        assert info["weights_sha256"] == weights.sha256
        assert info["method"] == OOD_METHOD


@pytest.mark.parametrize("name", ["held-out", *OOD_SETS])
def test_rates_on_sets_made_here(scored, name):
    table = scored[name]
    assert not np.any(np.ma.getmaskarray(table["cluster_class"]))
    rate = float(np.mean(_flagged(table)))
    if name == "held-out":
        assert rate <= 0.05
    else:
        assert rate >= 0.9, (name, rate)
    # the flag is the score above 1
    score = np.ma.filled(table["ood_score"], np.nan)
    np.testing.assert_array_equal(_flagged(table), score > 1)


def test_columns_meta_and_unchanged_classes(sets, fp32, scored):
    table = scored["held-out"]
    assert table.colnames[-2:] == ["classify_flags", "ood_score"]
    assert table["ood_score"].dtype == np.float64
    meta = table.meta["astro_clustercls"]["ood"]
    assert meta["method"] == OOD_METHOD and meta["fpr"] > 0
    assert meta["file"].startswith("resnet18-") and len(meta["sha256"]) == 64
    assert meta["detection_sigma"] == DETECTION_SIGMA
    plain = _classify(ClusterClassifier("resnet18", device="cpu", precision="fp32",
                                        ood=False), sets["held-out"])
    assert "ood_score" not in plain.colnames
    assert plain.meta["astro_clustercls"]["ood"] is None
    assert not np.any(_flagged(plain))
    np.testing.assert_array_equal(np.asarray(plain["class_prob"]),
                                  np.asarray(table["class_prob"]))
    np.testing.assert_array_equal(np.asarray(plain["classify_flags"]),
                                  np.asarray(table["classify_flags"]) & ~OOD_BIT)


def test_unclassified_rows_get_no_score(sets, fp32):
    images, xy = as_images(sets["pure noise"][:4], BANDS)
    xy = np.vstack([xy, [[1e5, 1e5]]])  # off the image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterClsWarning)
        table = fp32(xy, images)
    assert table["ood_score"].mask.tolist() == [False] * 4 + [True]
    assert FLAGS.decode(table["classify_flags"][-1]) == ("OFF_IMAGE", "NOT_CLASSIFIED")
    assert np.all(_flagged(table)[:4])


def test_batch_size_independent(sets):
    data = np.concatenate([sets["held-out"][:30], sets["JWST-like PSF"][:10]])
    a = _classify(ClusterClassifier("resnet18", device="cpu", precision="fp32",
                                    batch_size=7), data)
    b = _classify(ClusterClassifier("resnet18", device="cpu", precision="fp32",
                                    batch_size=64), data)
    np.testing.assert_allclose(np.asarray(a["ood_score"]), np.asarray(b["ood_score"]),
                               rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(a["classify_flags"]),
                                  np.asarray(b["classify_flags"]))


def test_input_column_named_ood_score_is_kept(sets, fp32):
    images, xy = as_images(sets["held-out"][:3], BANDS)
    sources = Table({"x_centroid": xy[:, 0], "y_centroid": xy[:, 1],
                     "ood_score": [7.0, 8.0, 9.0]})
    with pytest.warns(InputColumnWarning, match="ood_score"):
        table = fp32(sources, images)
    assert table["ood_score_input"].tolist() == [7.0, 8.0, 9.0]
    assert table.meta["astro_clustercls"]["renamed_columns"] == {
        "ood_score": "ood_score_input"}
    assert np.all(np.asarray(table["ood_score"]) < 7)


def test_ensemble_ors_the_flags_and_reports_member_scores(sets):
    data = np.concatenate([sets["held-out"][:12], sets["pure noise"][:6],
                           sets["JWST-like PSF"][:6]])
    ens = ClusterEnsemble(("resnet18", "vgg19_bn"), device="cpu", precision="fp32")
    images, xy = as_images(data, BANDS)
    sources = Table({"x_centroid": xy[:, 0], "y_centroid": xy[:, 1],
                     "ood_score": np.zeros(len(xy))})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = ens(sources, images)
    renames = [w for w in caught if w.category is InputColumnWarning]
    assert len(renames) == 1 and "'ood_score' -> 'ood_score_input'" in str(
        renames[0].message)
    assert table.colnames == ["x_centroid", "y_centroid", "ood_score_input",
                              *ENSEMBLE_COLUMNS, *ENSEMBLE_OOD_COLUMNS]
    members = np.asarray(table["member_ood_score"])
    assert members.shape == (len(data), 2) and np.all(np.isfinite(members))
    np.testing.assert_array_equal(np.asarray(table["ood_score"]), members.max(axis=1))
    np.testing.assert_array_equal(_flagged(table), np.any(members > 1, axis=1))
    assert np.all(_flagged(table)[12:])
    assert [m["ood"]["file"].split("-")[0]
            for m in table.meta["astro_clustercls"]["members"]] == ["resnet18",
                                                                     "vgg19_bn"]


def test_int8_flags_agree_with_fp32(sets, scored):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    int8 = ClusterClassifier("resnet18", device="cpu", precision="int8")
    data = np.concatenate(list(sets.values()))
    table = _classify(int8, data)
    ref = np.concatenate([_flagged(scored[name]) for name in sets])
    assert np.mean(_flagged(table) == ref) >= 0.99
    assert table.meta["astro_clustercls"]["ood"]["int8_guard"] > 1


# -- weights files of the user's --------------------------------------------------
@pytest.fixture(scope="module")
def user_weights(tmp_path_factory):
    """A random 15-px network saved with OOD statistics beside it."""
    tmp = tmp_path_factory.mktemp("ood")
    torch.manual_seed(0)
    net = build_network("resnet18").eval()
    net.clustercls_meta = {"normalization": "asinh-v1"}
    rng = np.random.default_rng(0)
    train = make_training_set(300, 15, rng, bands=BANDS).data
    val = make_training_set(300, 15, rng, bands=BANDS).data
    from astro_clustercls.preprocessing import normalize
    feats = [stage_features(net, [normalize(d, "asinh-v1")]) for d in (train, val)]
    stats = fit_feature_statistics(*feats, n_components=8, fpr=0.01,
                                   detection_sigma=DETECTION_SIGMA)
    save_file(stats.to_tensors(), str(tmp / "stats.safetensors"))
    info = {"method": OOD_METHOD, "file": "stats.safetensors",
            "sha256": file_sha256(tmp / "stats.safetensors"), "fpr": 0.01}
    meta = {"architecture": "resnet18", "bands": list(BANDS), "cutout_size": 15,
            "normalization": "asinh-v1", "ood": info}
    save_weights(net, tmp / "w.safetensors", meta)
    return tmp, net, meta, train


def test_user_weights_with_statistics(user_weights):
    tmp, _, _, train = user_weights
    clf = ClusterClassifier("resnet18", weights_path=tmp / "w.safetensors",
                            device="cpu")
    table = _classify(clf, train[:20])
    assert np.all(np.isfinite(np.asarray(table["ood_score"])))
    assert table.meta["astro_clustercls"]["ood"]["file"] == "stats.safetensors"


def test_missing_or_corrupt_statistics(user_weights, tmp_path):
    tmp, net, meta, _ = user_weights
    path = tmp_path / "w.safetensors"
    save_weights(net, path, meta)
    with pytest.raises(FileNotFoundError, match="OOD statistics file"):
        ClusterClassifier("resnet18", weights_path=path, device="cpu")
    (tmp_path / "stats.safetensors").write_bytes(b"not a statistics file")
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        ClusterClassifier("resnet18", weights_path=path, device="cpu")
    # without a hash to check, an unreadable file still fails clearly
    save_weights(net, path, dict(meta, ood=dict(meta["ood"], sha256=None)))
    with pytest.raises(OSError, match="safetensors|OOD statistics"):
        ClusterClassifier("resnet18", weights_path=path, device="cpu")
    # not used, with a warning, when they belong to other weights or method
    (tmp_path / "stats.safetensors").write_bytes(
        (tmp / "stats.safetensors").read_bytes())
    for ood in (dict(meta["ood"], weights_sha256="0" * 64),
                dict(meta["ood"], method="stage-feature-statistics-v1")):
        save_weights(net, path, dict(meta, ood=ood))
        with pytest.warns(WeightsWarning, match="refit"):
            clf = ClusterClassifier("resnet18", weights_path=path, device="cpu")
        assert "ood_score" not in clf.output_columns
    # weights without statistics: no column, no warning
    save_weights(net, path, {k: v for k, v in meta.items() if k != "ood"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = ClusterClassifier("resnet18", weights_path=path, device="cpu")
    assert clf.output_columns[-1] == "classify_flags"


def test_tiled_mosaic_gives_the_same_scores(sets, fp32):
    data = np.concatenate([sets["held-out"][:8], sets["pure noise"][:8]])
    images, xy = as_images(data, BANDS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterClsWarning)
        tiled = classify_mosaic(xy, images, tile_size=102, device="cpu",
                                precision="fp32")
        whole = fp32(xy, images)
    assert tiled.meta["astro_clustercls"]["tiles"]["n_tiles"] > 1
    assert tiled.colnames == whole.colnames
    np.testing.assert_allclose(np.asarray(tiled["ood_score"]),
                               np.asarray(whole["ood_score"]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(tiled["classify_flags"]),
                                  np.asarray(whole["classify_flags"]))


def test_refit_is_one_command(tmp_path, monkeypatch):
    # a copy of the bundled directory: the weights linked, the manifest copied
    data = tmp_path / "data"
    data.mkdir()
    for f in _api.DATA_DIR.iterdir():
        if f.suffix == ".safetensors":
            (data / f.name).symlink_to(f)
    (data / "manifest.json").write_text((_api.DATA_DIR / "manifest.json").read_text())
    monkeypatch.setattr(_api, "DATA_DIR", data)
    old = _api.get_model_weights("resnet18").verify("DEFAULT").meta["ood"]["file"]
    rst = tmp_path / "ood.inc"
    assert cli_main(["experiments", "ood", "--arch", "resnet18", "--n-train", "150",
                     "--n-val", "150", "--n-test", "16", "--register",
                     "--rst", str(rst)]) == 0
    weights = _api.get_model_weights("resnet18").verify("DEFAULT")
    ood = weights.meta["ood"]
    assert ood["file"] != old and not (data / old).exists()
    assert ood["weights_sha256"] == weights.sha256 and ood["n_train"] == 150
    assert file_sha256(data / ood["file"]) == ood["sha256"]
    assert "JWST-like PSF" in rst.read_text() and set(ood["rates"]) >= set(OOD_SETS)
    clf = ClusterClassifier("resnet18", device="cpu", precision="fp32")
    assert clf.output_columns[-1] == "ood_score"
