# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astro_clustercls.inference.ensemble (ClusterEnsemble, combine_votes)."""

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from astropy.table import MaskedColumn, QTable

from astro_clustercls import BandImages
from astro_clustercls._constants import DEFAULT_BANDS
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference import ClusterClassifier, classify_sources
from astro_clustercls.inference.ensemble import (
    ENSEMBLE_COLUMNS,
    ClusterEnsemble,
    combine_votes,
)
from astro_clustercls.io.export import read_table, write_table
from astro_clustercls.models import build_network, file_sha256, save_weights
from astro_clustercls.utils.exceptions import InputColumnWarning

# rows with incomplete cutouts (sources near the edges) are incidental here:
# their CutoutWarning is tested in test_first_hour.py
pytestmark = pytest.mark.filterwarnings(
    "ignore::astro_clustercls.utils.exceptions.CutoutWarning")

SHAPE = (96, 96)
BLOBS = [(20.0, 25.0), (48.0, 48.0), (75.0, 20.0), (15.0, 70.0), (70.0, 72.0),
         (35.0, 55.0), (85.0, 45.0), (55.0, 30.0)]
LOW, NOT = FLAGS.LOW_CONFIDENCE.bit, FLAGS.NOT_CLASSIFIED.bit


def _save(path, arch, *, seed, size, head_scale, n_bands=5, bands=DEFAULT_BANDS):
    """
    An untrained network saved with meta; its head is scaled up so that its
    classes vary from source to source (a random head gives one class to all).
    """
    torch.manual_seed(seed)
    net = build_network(arch, n_bands=n_bands).eval()
    head = net.fc if arch == "resnet18" else net.classifier[3]
    with torch.no_grad():
        head.weight.mul_(head_scale)
        head.bias.normal_(0.0, 0.3)
    save_weights(net, path, {"architecture": arch, "bands": list(bands),
                             "cutout_size": size, "normalization": "asinh-v1",
                             "notes": "untrained, for tests"})
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory, tiny_weights):
    """Weights files: two 15-px ResNet18s and a 25-px VGG19-BN (all untrained)."""
    d = tmp_path_factory.mktemp("ensemble-weights")
    return {"a": tiny_weights,
            "b": _save(d / "resnet-b.safetensors", "resnet18", seed=2, size=15,
                       head_scale=30.0),
            "vgg": _save(d / "vgg.safetensors", "vgg19_bn", seed=3, size=25,
                         head_scale=300.0),
            "dir": d}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    arrays = {}
    for b, band in enumerate(DEFAULT_BANDS):
        img = rng.normal(1.0, 0.05, SHAPE)
        for i, (x, y) in enumerate(BLOBS):
            sigma = 1.0 + 0.3 * ((i + b) % 4)
            img += 25.0 * (1 + i) * (1 + 0.3 * b) / (2 * np.pi * sigma**2) * np.exp(
                -((xx - x)**2 + (yy - y)**2) / (2 * sigma**2))
        arrays[band] = img
    return BandImages(arrays, unit="electron/s")


@pytest.fixture(scope="module")
def sources():
    """Blobs, random positions, and rows that not every member can classify."""
    rng = np.random.default_rng(1)
    xy = np.vstack([BLOBS, rng.uniform(3, SHAPE[1] - 3, (24, 2)),
                    [(-10.0, 40.0),    # only the 25-px member sees pixels
                     (500.0, 20.0),    # off the image for everyone
                     (np.nan, 30.0),   # bad position
                     (2.0, 3.0)]])     # partly off the image
    return QTable({"id": np.arange(len(xy)) + 100, "x_centroid": xy[:, 0],
                   "y_centroid": xy[:, 1], "mag": rng.uniform(18, 24, len(xy))})


@pytest.fixture(scope="module")
def ensemble(nets):
    members = [ClusterClassifier("resnet18", weights_path=nets["a"], device="cpu"),
               ("resnet18", nets["b"]),
               ("vgg19_bn", {"weights_path": nets["vgg"]})]
    return ClusterEnsemble(members, device="cpu", batch_size=16)


@pytest.fixture(scope="module")
def result(ensemble, sources, images):
    return ensemble(sources, images)


def hand_vote(member_tables):
    """The ensemble's columns computed row by row from the members' own tables."""
    n, m = len(member_tables[0]), len(member_tables)
    out = {"cluster_class": np.zeros(n, int), "mask": np.ones(n, bool),
           "class_prob": np.full((n, 4), np.nan), "class_prob_max": np.full(n, np.nan),
           "class_agreement": np.full(n, np.nan), "n": np.zeros(n, int),
           "flags": np.zeros(n, int)}
    for i in range(n):
        labels, probs = [], []
        for t in member_tables:
            out["flags"][i] |= int(t["classify_flags"][i])
            if not np.ma.getmaskarray(t["cluster_class"])[i]:
                labels.append(int(t["cluster_class"][i]))
                probs.append(np.asarray(t["class_prob"][i], dtype=float))
        out["flags"][i] &= ~(LOW | NOT)
        if not labels:
            out["flags"][i] |= NOT
            continue
        mean = np.mean(probs, axis=0)
        counts = Counter(labels)
        top = max(counts.values())
        tied = [c for c in (1, 2, 3, 4) if counts.get(c, 0) == top]
        best = max(tied, key=lambda c: (mean[c - 1], -c))
        out["cluster_class"][i] = best
        out["mask"][i] = False
        out["class_prob"][i] = mean
        out["class_prob_max"][i] = mean[best - 1]
        out["class_agreement"][i] = top / len(labels)
        out["n"][i] = len(labels)
    assert m == len(member_tables)
    return out


def test_mode_agreement_and_means_by_hand(ensemble, result, sources, images):
    tables = [clf(sources, images) for clf in ensemble.members]
    expected = hand_vote(tables)
    got = result["cluster_class"]
    assert isinstance(got, MaskedColumn) and got.dtype.kind == "i"
    np.testing.assert_array_equal(got.mask, expected["mask"])
    np.testing.assert_array_equal(got.data[~expected["mask"]],
                                  expected["cluster_class"][~expected["mask"]])
    np.testing.assert_allclose(result["class_prob"], expected["class_prob"],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result["class_prob_max"], expected["class_prob_max"],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result["class_agreement"], expected["class_agreement"],
                               rtol=1e-6)
    np.testing.assert_array_equal(result["class_n_members"], expected["n"])
    np.testing.assert_array_equal(result["classify_flags"], expected["flags"])
    for j, t in enumerate(tables):
        col = result["member_class"][:, j]
        np.testing.assert_array_equal(np.ma.getmaskarray(col),
                                      np.ma.getmaskarray(t["cluster_class"]))
        ok = ~np.ma.getmaskarray(col)
        np.testing.assert_array_equal(np.asarray(col)[ok],
                                      np.asarray(t["cluster_class"])[ok])
    # the data are not degenerate: 2-1 votes, 3-way ties (broken by the mean
    # probability) and a row classified by one member only
    votes = np.round(np.asarray(result["class_agreement"], float)
                     * np.asarray(result["class_n_members"]))[~expected["mask"]]
    agreement = set(zip(votes.astype(int).tolist(),
                        np.asarray(result["class_n_members"])[~expected["mask"]].tolist(),
                        strict=True))
    assert {(2, 3), (1, 3), (1, 1)} <= agreement, agreement
    assert np.count_nonzero(result["class_n_members"] == 3) >= 30


def test_rows_kept_in_order_with_flags(result, sources):
    assert len(result) == len(sources)
    assert result.colnames == sources.colnames + list(ENSEMBLE_COLUMNS)
    for name in sources.colnames:
        np.testing.assert_array_equal(result[name], sources[name])
    n_members = np.asarray(result["class_n_members"])
    flags = np.asarray(result["classify_flags"])
    cls_mask = np.ma.getmaskarray(result["cluster_class"])
    vgg_only, off, bad, partial = (np.flatnonzero(sources["id"] == i)[0]
                                   for i in (132, 133, 134, 135))
    # seen by the 25-px VGG only: classified, with the resnets' OFF_IMAGE kept
    assert n_members[vgg_only] == 1 and not cls_mask[vgg_only]
    assert result["class_agreement"][vgg_only] == 1.0
    assert flags[vgg_only] & FLAGS.OFF_IMAGE.bit
    assert not flags[vgg_only] & NOT
    assert result["member_class"].mask[vgg_only].tolist() == [True, True, False]
    for row, bit in ((off, FLAGS.OFF_IMAGE.bit), (bad, FLAGS.BAD_POSITION.bit)):
        assert cls_mask[row] and n_members[row] == 0
        assert flags[row] & bit and flags[row] & NOT
        assert np.all(np.isnan(result["class_prob"][row]))
        assert np.isnan(result["class_agreement"][row])
        assert result["member_class"].mask[row].all()
    assert flags[partial] & FLAGS.PARTIAL_OFF_IMAGE.bit and not cls_mask[partial]
    # NOT_CLASSIFIED exactly where the class is masked
    np.testing.assert_array_equal((flags & NOT) != 0, cls_mask)
    ok = ~cls_mask
    np.testing.assert_allclose(np.asarray(result["class_prob"])[ok].sum(axis=1), 1.0,
                               atol=1e-5)


def test_batch_size_invariance(nets, sources, images):
    members = [("resnet18", nets["a"]), ("resnet18", nets["b"]),
               ("vgg19_bn", nets["vgg"])]
    r1 = ClusterEnsemble(members, device="cpu", batch_size=1,
                         precision="fp32")(sources, images)
    r2 = ClusterEnsemble(members, device="cpu", batch_size=64,
                         precision="fp32")(sources, images)
    np.testing.assert_array_equal(r1["cluster_class"].filled(0),
                                  r2["cluster_class"].filled(0))
    np.testing.assert_array_equal(r1["member_class"].filled(0),
                                  r2["member_class"].filled(0))
    np.testing.assert_allclose(r1["class_prob"], r2["class_prob"], atol=1e-6)
    np.testing.assert_array_equal(r1["classify_flags"], r2["classify_flags"])


def test_meta_and_ecsv_round_trip(result, nets, ensemble, tmp_path):
    meta = result.meta["astro_clustercls"]
    assert meta["ensemble"] == "mode"
    assert meta["model"] == "resnet18+resnet18+vgg19_bn" == ensemble.model
    assert meta["n_members"] == 3 and len(meta["members"]) == 3
    assert [m["model"] for m in meta["members"]] == ["resnet18", "resnet18", "vgg19_bn"]
    assert [m["cutout_size"] for m in meta["members"]] == [15, 15, 25]
    assert [m["weights_sha256"] for m in meta["members"]] == [
        file_sha256(nets[k]) for k in ("a", "b", "vgg")]
    assert all("date" not in m and "version" not in m for m in meta["members"])
    assert meta["positions"] == "columns x_centroid/y_centroid"
    assert meta["n_sources"] == len(result)
    assert meta["n_classified"] == int(np.count_nonzero(
        ~np.ma.getmaskarray(result["cluster_class"])))
    assert meta["members"][2]["n_classified"] == int(np.count_nonzero(
        ~result["member_class"].mask[:, 2]))
    assert "version" in meta and "date" in meta
    assert result["member_class"].meta["members"] == ["resnet18", "resnet18",
                                                      "vgg19_bn"]
    path = write_table(result, tmp_path / "ens.ecsv")
    back = read_table(path)
    np.testing.assert_array_equal(back["member_class"].mask,
                                  result["member_class"].mask)
    np.testing.assert_array_equal(back["member_class"].filled(0),
                                  result["member_class"].filled(0))
    assert back.meta["astro_clustercls"]["members"][1]["weights_sha256"] == \
        file_sha256(nets["b"])


def test_combine_votes_two_members_disagree():
    # 1-1 tie: the class of highest mean probability wins
    v = combine_votes([[1, 2]], [[[0.6, 0.4, 0.0, 0.0], [0.1, 0.7, 0.1, 0.1]]])
    assert v.cluster_class.tolist() == [2]
    np.testing.assert_allclose(v.class_prob, [[0.35, 0.55, 0.05, 0.05]], rtol=1e-6)
    np.testing.assert_allclose(v.class_prob_max, [0.55], rtol=1e-6)
    np.testing.assert_allclose(v.class_agreement, [0.5])
    assert v.n_members.tolist() == [2]


def test_combine_votes_majority_beats_probability():
    # 2-1: the vote wins even though class 2 has the higher mean probability;
    # class_prob_max is then the mean probability of the voted class
    p = [[[0.40, 0.35, 0.25, 0.0], [0.40, 0.35, 0.25, 0.0], [0.0, 0.99, 0.01, 0.0]]]
    v = combine_votes([[1, 1, 2]], p)
    assert v.cluster_class.tolist() == [1]
    np.testing.assert_allclose(v.class_prob_max, [0.8 / 3], rtol=1e-6)
    assert v.class_prob[0].argmax() == 1  # mean probabilities prefer class 2
    np.testing.assert_allclose(v.class_agreement, [2 / 3], rtol=1e-6)


def test_combine_votes_masked_members_and_exact_ties():
    nan = [np.nan] * 4
    labels = np.ma.MaskedArray([[3, 9, 4], [2, 2, 2], [1, 1, 1], [2, 1, 3]],
                               mask=[[0, 1, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0]])
    probs = np.array([[[0.1, 0.1, 0.45, 0.35], nan, [0.1, 0.1, 0.2, 0.6]],
                      [nan, nan, nan],
                      [[0.9, 0.1, 0.0, 0.0], nan, nan],
                      # 3-way tie with equal mean probabilities: lowest class
                      [[0.125, 0.5, 0.25, 0.125], [0.5, 0.125, 0.25, 0.125],
                       [0.25, 0.25, 0.375, 0.125]]])
    v = combine_votes(labels, probs)
    # row 0: the masked member (whose label 9 is not even a class) is ignored;
    # 3 vs 4 tied, mean probabilities 0.325 vs 0.475
    assert v.cluster_class.mask.tolist() == [False, True, False, False]
    assert v.cluster_class.data[[0, 2, 3]].tolist() == [4, 1, 1]
    assert v.n_members.tolist() == [2, 0, 1, 3]
    np.testing.assert_allclose(v.class_prob[0], [0.1, 0.1, 0.325, 0.475], rtol=1e-6)
    assert np.all(np.isnan(v.class_prob[1])) and np.isnan(v.class_prob_max[1])
    assert np.isnan(v.class_agreement[1])
    np.testing.assert_allclose(v.class_agreement[[0, 2, 3]], [0.5, 1.0, 1 / 3],
                               rtol=1e-6)
    assert v.class_prob.dtype == np.float32


def test_combine_votes_other_classes_and_errors():
    v = combine_votes([[7, 5], [5, 5]], [[[0.3, 0.7], [0.8, 0.2]],
                                         [[0.6, 0.4], [0.9, 0.1]]], classes=[7, 5])
    assert v.cluster_class.tolist() == [7, 5]  # tie: mean 0.55 for 7
    with pytest.raises(ValueError, match="'labels' must have shape"):
        combine_votes([1, 2], np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match="'probs' must have shape"):
        combine_votes([[1, 2]], np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"'labels' holds \[5\]"):
        combine_votes([[1, 5]], np.full((1, 2, 4), 0.25))
    with pytest.raises(ValueError, match="'probs' must be finite"):
        combine_votes([[1, 2]], [[[np.nan] * 4, [0.25] * 4]])
    with pytest.raises(ValueError, match="'labels' must be integer"):
        combine_votes([[1.5, 2.0]], np.full((1, 2, 4), 0.25))
    with pytest.raises(ValueError, match="'classes'"):
        combine_votes([[1, 2]], np.full((1, 2, 4), 0.25), classes=[1, 1, 2, 3])


def test_confidence_threshold_and_min_agreement(ensemble, result, sources, images):
    strict = ClusterClassifier("resnet18",
                               weights_path=ensemble.members[0].weights_path,
                               device="cpu", confidence_threshold=1.0)
    members = [strict, *ensemble.members[1:]]
    ok = ~np.ma.getmaskarray(result["cluster_class"])
    prob = np.where(ok, np.asarray(result["class_prob_max"]), 1.0)
    agree = np.where(ok, np.asarray(result["class_agreement"]), 1.0)
    threshold = float(np.median(prob[ok]))
    for options, expected_low in (
            ({"confidence_threshold": threshold}, ok & (prob < threshold)),
            ({"min_agreement": 0.5}, ok & (agree < 0.5)),
            ({"confidence_threshold": threshold, "min_agreement": 0.5},
             ok & ((prob < threshold) | (agree < 0.5)))):
        assert 0 < np.count_nonzero(expected_low) < np.count_nonzero(ok)
        r = ClusterEnsemble(members, **options)(sources, images)
        np.testing.assert_array_equal((np.asarray(r["classify_flags"]) & LOW) != 0,
                                      expected_low)
        meta = r.meta["astro_clustercls"]
        assert meta["confidence_threshold"] == options.get("confidence_threshold")
        assert meta["min_agreement"] == options.get("min_agreement")
    # the strict member flags all its rows LOW_CONFIDENCE; the ensemble does not
    # carry the members' bits: without thresholds nothing is LOW_CONFIDENCE
    own = strict(sources, images)
    own_ok = ~np.ma.getmaskarray(own["cluster_class"])
    assert np.all(own["classify_flags"][own_ok] & LOW)
    r0 = ClusterEnsemble(members)(sources, images)
    assert not np.any(np.asarray(r0["classify_flags"]) & LOW)
    np.testing.assert_array_equal(r0["class_prob"], result["class_prob"])


def test_classify_sources_with_a_list(nets, sources, images, result):
    r = classify_sources(sources, images, model=[("resnet18", nets["a"]),
                                                 ("resnet18", nets["b"]),
                                                 ("vgg19_bn", nets["vgg"])],
                         device="cpu")
    np.testing.assert_array_equal(r["cluster_class"].filled(0),
                                  result["cluster_class"].filled(0))
    assert r.meta["astro_clustercls"]["ensemble"] == "mode"


def test_existing_columns_kept_renamed_with_one_warning(ensemble, sources, images,
                                                        result):
    src = sources.copy()
    src["class_agreement"] = 1.0
    src["cluster_class"] = np.arange(len(src)) % 4 + 1  # e.g. true labels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = ensemble(src, images)
    ours = [w for w in caught if issubclass(w.category, InputColumnWarning)]
    assert len(ours) == 1
    assert "'class_agreement' -> 'class_agreement_input'" in str(ours[0].message)
    assert "'cluster_class' -> 'cluster_class_input'" in str(ours[0].message)
    assert "cluster_class" in src.colnames  # the input is not modified
    assert "cluster_class_input" not in src.colnames
    assert r.colnames == sources.colnames + ["class_agreement_input",
                                             "cluster_class_input"] + \
        list(ENSEMBLE_COLUMNS)
    np.testing.assert_array_equal(r["cluster_class_input"], src["cluster_class"])
    assert np.all(r["class_agreement_input"] == 1.0)
    assert r.meta["astro_clustercls"]["renamed_columns"] == {
        "cluster_class": "cluster_class_input",
        "class_agreement": "class_agreement_input"}
    np.testing.assert_array_equal(r["cluster_class"].filled(0),
                                  result["cluster_class"].filled(0))


def test_properties_and_repr(ensemble):
    assert len(ensemble) == 3
    assert ensemble.cutout_sizes == (15, 15, 25) and ensemble.cutout_size == 25
    assert ensemble.bands == tuple(DEFAULT_BANDS)
    text = repr(ensemble)
    assert text.startswith("<ClusterEnsemble") and "vgg19_bn" in text


def test_empty_sources(ensemble, images):
    r = ensemble(np.zeros((0, 2)), images)
    assert len(r) == 0 and r["member_class"].shape == (0, 3)
    assert r.meta["astro_clustercls"]["n_classified"] == 0


def test_invalid_members(nets, ensemble):
    a = ensemble.members[0]
    with pytest.raises(TypeError, match="'members' must be a sequence"):
        ClusterEnsemble("resnet18")
    with pytest.raises(TypeError, match="'members' must be a sequence"):
        ClusterEnsemble(a)
    with pytest.raises(ValueError, match="'members' must hold at least 2"):
        ClusterEnsemble([a])
    with pytest.raises(TypeError, match=r"'members\[1\]'"):
        ClusterEnsemble([a, 3])
    with pytest.raises(TypeError, match=r"'members\[1\]'"):
        ClusterEnsemble([a, ("resnet18", nets["b"], "x")])
    with pytest.raises(ValueError, match="'members' holds the same network twice"):
        ClusterEnsemble([a, ("resnet18", nets["a"])], device="cpu")
    with pytest.raises(ValueError, match="same network twice"):
        ClusterEnsemble([a, a])
    with pytest.raises(TypeError, match="give them per member"):
        ClusterEnsemble(["resnet18", "vgg19_bn"], weights_path=nets["a"])
    with pytest.raises(ValueError, match="'confidence_threshold' must be in"):
        ClusterEnsemble([a, ensemble.members[1]], confidence_threshold=1.5)
    with pytest.raises(TypeError, match="'min_agreement'"):
        ClusterEnsemble([a, ensemble.members[1]], min_agreement=True)
    with pytest.raises(ValueError, match="'model' must be one of"):
        ClusterEnsemble([a, ("resnet19", nets["b"])])
    with pytest.raises(OSError, match="weights_path"):
        ClusterEnsemble([a, ("resnet18", nets["dir"] / "missing.safetensors")])


def test_members_must_share_bands_and_classes(nets, ensemble):
    three = _save(nets["dir"] / "three-band.safetensors", "resnet18", seed=4, size=15,
                  head_scale=1.0, n_bands=3, bands=("F336W", "F555W", "F814W"))
    with pytest.raises(ValueError, match="'members' must take the same bands"):
        ClusterEnsemble([ensemble.members[0], ("resnet18", three)])
    other = ClusterClassifier("resnet18", weights_path=nets["b"], device="cpu")
    other.meta = {**other.meta, "categories": [4, 3, 2, 1]}
    with pytest.raises(ValueError, match="'members' must predict the same classes"):
        ClusterEnsemble([ensemble.members[0], other])
