# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Property tests (hypothesis) of make_cutouts and of the classifier.

make_cutouts is checked against an independent reference built from astropy's
`~astropy.nddata.Cutout2D` (pixels, the inside-the-image map and the mask),
on images holding NaN, +-inf, float64 values beyond float32, masked pixels
and big-endian data, with positions given in every supported container
(test_cutouts.py and test_flags.py check identity with Cutout2D on clean
images and the internal consistency of the flags). The classifier is checked
for row count and order, flags that agree with the cutouts, batch-size
invariance and identical repeated runs.
"""

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.nddata import CCDData, Cutout2D, NoOverlapError
from astropy.table import MaskedColumn, QTable, Table
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as np_arrays

from astro_clustercls import BandImages, make_cutouts
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference.classifier import ClusterClassifier, clear_model_cache
from astro_clustercls.models import build_network, save_weights

# rows with incomplete cutouts (sources near the edges or a chip gap) are
# incidental here: their CutoutWarning is tested in test_first_hour.py
pytestmark = pytest.mark.filterwarnings(
    "ignore::astro_clustercls.utils.exceptions.CutoutWarning")

BANDS = ("F555W", "F814W")
SHAPE = (24, 30)
SIZE = 15
PARTIAL, OFF, NONFINITE, MASKED, BADPOS, CENTER, NOTCLS = (
    FLAGS.PARTIAL_OFF_IMAGE.bit, FLAGS.OFF_IMAGE.bit, FLAGS.NONFINITE.bit,
    FLAGS.MASKED.bit, FLAGS.BAD_POSITION.bit, FLAGS.CENTER_BAD.bit,
    FLAGS.NOT_CLASSIFIED.bit)
#: the bits make_cutouts sets (the classifier adds the others)
CUTOUT_BITS = PARTIAL | OFF | NONFINITE | MASKED | BADPOS | CENTER


def _messy_data(seed):
    """Two bands: noise and a blob, NaN/inf/huge pixels, a mask, big-endian data."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    a = rng.normal(1.0, 0.1, SHAPE) + 30 * np.exp(-((xx - 12)**2 + (yy - 10)**2) / 4)
    b = rng.normal(2.0, 0.1, SHAPE) + 50 * np.exp(-((xx - 20)**2 + (yy - 15)**2) / 6)
    a[:4, :5] = np.nan               # a chip-gap corner
    a[15, 7], a[3, 25] = np.inf, -np.inf
    a[18, 22] = 1e300                # float64 only: inf in float32 cutouts
    b[20, 3] = np.nan
    mask = np.zeros(SHAPE, bool)
    mask[8:10, 14] = True
    mask[15, 15] = True
    b[15, 15] = np.inf               # masked: MASKED, not NONFINITE
    return a, b.astype(">f4"), mask


class _Field(tuple):
    """(images, {band: (array, mask)}) with a short repr for hypothesis' reports."""

    def __repr__(self):
        return "<messy 2-band field>"


@pytest.fixture(scope="module")
def messy():
    a, b, mask = _messy_data(0)
    images = BandImages({"F555W": a, "F814W": CCDData(b, unit="adu", mask=mask)})
    return _Field((images, {"F555W": (a, None), "F814W": (b, mask)}))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-props.safetensors"
    save_weights(build_network("resnet18", n_bands=len(BANDS)), path,
                 {"architecture": "resnet18", "bands": list(BANDS), "cutout_size": SIZE,
                  "normalization": "asinh-v1"})
    return path


# -- the reference ------------------------------------------------------------------
def reference(arrays, xy, size, fill_value):
    """Data, flags and band flags of each row from Cutout2D, one row at a time."""
    n, nb = len(xy), len(arrays)
    data = np.full((n, nb, size, size), fill_value, np.float32)
    band_flags = np.zeros((n, nb), np.int32)
    flags = np.zeros(n, np.int32)
    c0 = max(size // 2 - 1, 0)
    centre = (slice(c0, min(c0 + 3, size)),) * 2
    for i, (x, y) in enumerate(xy):
        if not np.all(np.isfinite([x, y])):
            flags[i] = BADPOS
            continue
        centre_ok = True
        for k, (image, mask) in enumerate(arrays.values()):
            ones = np.ones(image.shape, np.float32)
            try:
                inside = Cutout2D(ones, (x, y), size, mode="partial",
                                  fill_value=0).data == 1
            except NoOverlapError:
                band_flags[i, k] = OFF
                continue
            with np.errstate(over="ignore"):
                pixels = Cutout2D(image, (x, y), size, mode="partial",
                                  fill_value=np.nan).data.astype(np.float32)
            masked = np.zeros((size, size), bool) if mask is None else (
                Cutout2D(mask, (x, y), size, mode="partial", fill_value=False).data
                & inside)
            good = inside & ~masked
            nonfinite = good & ~np.isfinite(pixels)
            data[i, k][good] = pixels[good]
            band_flags[i, k] = ((PARTIAL if not inside.all() else 0)
                                | (MASKED if masked.any() else 0)
                                | (NONFINITE if nonfinite.any() else 0))
            centre_ok &= bool((good & ~nonfinite)[centre].all())
        flags[i] = np.bitwise_or.reduce(band_flags[i])
        if not flags[i] & OFF and not centre_ok:
            flags[i] |= CENTER
    return data, flags, band_flags


coordinate = st.one_of(st.floats(-12, 42, allow_nan=False),
                       st.integers(-12, 42).map(lambda v: v + 0.5),
                       st.just(np.nan))
positions_strategy = np_arrays(np.float64, st.tuples(st.integers(0, 10), st.just(2)),
                               elements=coordinate)


def as_container(xy, kind, masked_rows):
    """The same positions in one of the containers users pass."""
    if kind == "array":
        return xy
    if kind == "pixel_quantity":
        return QTable({"x_centroid": xy[:, 0] * u.pix, "y_centroid": xy[:, 1] * u.pix})
    if kind == "photutils2_masked":
        return Table({"id": np.arange(len(xy)),
                      "xcentroid": MaskedColumn(xy[:, 0], mask=masked_rows),
                      "ycentroid": xy[:, 1]})
    return Table({"X": xy[:, 0] + 1, "Y": xy[:, 1] + 1})  # 1-based, named columns


@settings(max_examples=25, deadline=None)
@given(xy=positions_strategy, size=st.integers(1, 13),
       fill_value=st.sampled_from([np.nan, 0.0, -3.5]),
       kind=st.sampled_from(["array", "pixel_quantity", "photutils2_masked",
                             "named_one_based"]),
       seed=st.integers(0, 2**32 - 1))
def test_cutouts_match_an_independent_reference(messy, xy, size, fill_value, kind,
                                                seed):
    images, arrays = messy
    masked_rows = np.random.default_rng(seed).random(len(xy)) < 0.2
    positions = as_container(xy, kind, masked_rows)
    kwargs = ({"xcol": "X", "ycol": "Y", "origin": 1} if kind == "named_one_based"
              else {})
    stack = make_cutouts(images, positions, size, fill_value=fill_value, **kwargs)
    if kind == "photutils2_masked":
        xy = np.where(masked_rows[:, None], np.nan, xy)
    elif kind == "named_one_based":
        xy = (xy + 1) - 1  # what origin=1 gives back, to the last bit
    xy = np.where(np.isnan(xy).any(axis=1)[:, None], np.nan, xy)  # bad: (NaN, NaN)
    data, flags, band_flags = reference(arrays, xy, size, fill_value)
    assert stack.data.shape == (len(xy), 2, size, size)       # one row per input,
    np.testing.assert_array_equal(stack.positions, xy)       # in input order
    np.testing.assert_array_equal(stack.data, data)
    np.testing.assert_array_equal(stack.flags, flags)
    np.testing.assert_array_equal(stack.band_flags, band_flags)


@settings(max_examples=25, deadline=None)
@given(xy=positions_strategy, size=st.integers(1, 13), seed=st.integers(0, 2**32 - 1))
def test_cutout_rows_are_independent(messy, xy, size, seed):
    """A row depends on its own position only: subsets, repeats, any order."""
    images, _ = messy
    whole = make_cutouts(images, xy, size)
    index = np.random.default_rng(seed).integers(0, max(len(xy), 1),
                                                 size=len(xy) + 3 if len(xy) else 0)
    part = make_cutouts(images, xy[index], size)
    np.testing.assert_array_equal(part.data, whole.data[index])
    np.testing.assert_array_equal(part.flags, whole.flags[index])
    np.testing.assert_array_equal(part.band_flags, whole.band_flags[index])
    np.testing.assert_array_equal(part.corners, whole.corners[index])


# -- the classifier -----------------------------------------------------------------
def classify(weights_file, images, sources, batch_size=4):
    return ClusterClassifier("resnet18", weights_path=weights_file, device="cpu",
                             batch_size=batch_size)(sources, images)


def assert_same_rows(a, b, *, probs_atol):
    np.testing.assert_array_equal(np.ma.getmaskarray(a["cluster_class"]),
                                  np.ma.getmaskarray(b["cluster_class"]))
    np.testing.assert_array_equal(np.ma.filled(a["cluster_class"], 0),
                                  np.ma.filled(b["cluster_class"], 0))
    np.testing.assert_array_equal(a["classify_flags"], b["classify_flags"])
    if probs_atol == 0:
        np.testing.assert_array_equal(a["class_prob"], b["class_prob"])
    else:
        np.testing.assert_allclose(a["class_prob"], b["class_prob"], atol=probs_atol,
                                   rtol=0, equal_nan=True)


@settings(max_examples=20, deadline=None)
@given(xy=positions_strategy, seed=st.integers(0, 2**32 - 1))
def test_classification_keeps_rows_and_flags_follow_the_cutouts(messy, weights_file,
                                                                 xy, seed):
    images, _ = messy
    n = len(xy)
    table = QTable({"id": np.arange(n) * 10, "x_centroid": xy[:, 0],
                    "y_centroid": xy[:, 1]})
    result = classify(weights_file, images, table)
    # every row, in order, with its own columns
    assert len(result) == n and result["id"].tolist() == table["id"].tolist()
    # the cutout bits are make_cutouts' flags for the same positions
    stack = make_cutouts(images, xy, SIZE)
    flags = np.asarray(result["classify_flags"])
    np.testing.assert_array_equal(flags & CUTOUT_BITS, stack.flags)
    # a class iff the cutout overlaps the image and holds a finite pixel
    classifiable = stack.usable & np.isfinite(stack.data).any(axis=(1, 2, 3))
    classified = ~np.ma.getmaskarray(result["cluster_class"])
    np.testing.assert_array_equal(classified, classifiable)
    np.testing.assert_array_equal((flags & NOTCLS) != 0, ~classifiable)
    probs = np.asarray(result["class_prob"])
    np.testing.assert_allclose(probs[classified].sum(axis=1), 1, atol=1e-5)
    assert np.isnan(probs[~classified]).all()
    # rows permuted in: the same rows permuted out
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = classify(weights_file, images, table[perm])
    assert shuffled["id"].tolist() == table["id"][perm].tolist()
    assert_same_rows(shuffled, result[perm], probs_atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(xy=positions_strategy, batch_size=st.integers(1, 12))
def test_batch_size_invariance(messy, weights_file, xy, batch_size):
    images, _ = messy
    reference_run = classify(weights_file, images, xy, batch_size=5)
    assert_same_rows(classify(weights_file, images, xy, batch_size=batch_size),
                     reference_run, probs_atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(xy=positions_strategy, batch_size=st.integers(1, 12))
def test_two_runs_are_identical(messy, weights_file, xy, batch_size):
    """Two runs, the network loaded afresh for the second: bit-identical output."""
    images, _ = messy
    first = classify(weights_file, images, xy, batch_size=batch_size)
    clear_model_cache()
    second = classify(weights_file, images, xy, batch_size=batch_size)
    assert_same_rows(first, second, probs_atol=0)
