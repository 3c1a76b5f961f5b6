# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Tests of astro_clustercls.inference.distributed: many fields and tiled mosaics, in this
process and on a dask.distributed LocalCluster (2 worker processes, started
once for the module).

Every result is compared, column by column and bit for bit, with
`ClusterClassifier` run in this process on the same field.
"""

import importlib
import sys

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import QTable

import astro_clustercls
from astro_clustercls import BandImages
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference import distributed as acd
from astro_clustercls.inference.classifier import ClusterClassifier
from astro_clustercls.inference.distributed import (
    FieldError,
    Tile,
    classify_fields,
    classify_mosaic,
    plan_tiles,
)
from astro_clustercls.simulation import simulate_field
from astro_clustercls.utils._optional_deps import HAS_DISTRIBUTED
from astro_clustercls.utils.exceptions import (
    BandWarning,
    ClusterClsWarning,
    CutoutWarning,
)

# rows with incomplete cutouts (sources near the edges, NaN or masked pixels) are
# incidental here: their CutoutWarning is tested in test_first_hour.py
pytestmark = pytest.mark.filterwarnings(
    "ignore::astro_clustercls.utils.exceptions.CutoutWarning")

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")
SIZE = 15            # cutout side of the test network
SHAPE = (128, 128)   # (ny, nx) of the simulated fields
N_SOURCES = 20

needs_dask = pytest.mark.skipif(not HAS_DISTRIBUTED, reason="needs dask.distributed")


# ---------------------------------------------------------------------------
# data: simulated fields written as HST-like drizzled FITS files
# ---------------------------------------------------------------------------
def _edge_positions(shape):
    """(x, y) positions of the edge cases added to every field's sources."""
    ny, nx = shape
    return np.array([[0.0, 0.0], [nx - 1.0, ny / 2], [-4.0, 30.0],    # on/over edges
                     [nx + 20.0, 5.0],                                 # off the image
                     [63.5, 64.0], [64.0, 63.49], [63.49, 31.5],       # tile borders
                     [np.nan, 50.0]])                                  # bad position


def _make_field(seed, shape=SHAPE, n=N_SOURCES):
    """
    A simulated field (`simulate_field`: PSF-convolved clusters, stars,
    diffuse light, noise, a NaN chip gap), a drizzle weight map with a few
    no-data pixels, and a sources table: the simulated objects plus edge cases.
    """
    images, truth = simulate_field(seed=seed, n_objects=n, shape=shape)
    arrays = {band: np.asarray(images[band].data, np.float32) for band in BANDS}
    weight = np.ones(shape, np.float32)
    weight[40:44, 90:93] = 0.0         # no data: MASKED flags
    weight[:, 0] = 0.0
    xy = np.concatenate([_edge_positions(shape),
                         np.column_stack([truth["x_centroid"], truth["y_centroid"]])])
    sources = QTable({"id": np.arange(len(xy)), "x_centroid": xy[:, 0],
                      "y_centroid": xy[:, 1]})
    return arrays, weight, sources, images.wcs


def _write_field(directory, seed):
    """One FITS file per band (SCI with WCS + WHT) and an ECSV sources table."""
    arrays, weight, sources, wcs = _make_field(seed)
    paths = {}
    for band, data in arrays.items():
        primary = fits.PrimaryHDU(header=fits.Header({"FILTER": band}))
        header = wcs.to_header()
        header["BUNIT"] = "ELECTRONS/S"
        sci = fits.ImageHDU(data, header, name="SCI")
        wht = fits.ImageHDU(weight, name="WHT")
        path = directory / f"field{seed}_{band.lower()}_drc.fits"
        fits.HDUList([primary, sci, wht]).writeto(path)
        paths[band] = str(path)
    table_path = directory / f"field{seed}.ecsv"
    sources.write(table_path)
    return str(table_path), paths


@pytest.fixture(scope="module")
def weights_path(tmp_path_factory):
    import torch

    from astro_clustercls.models import build_network, save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "w.safetensors"
    meta = {"arch": "resnet18", "bands": list(BANDS), "cutout_size": SIZE,
            "normalization": "asinh-v1", "categories": [1, 2, 3, 4]}
    save_weights(build_network("resnet18", n_bands=5), path, meta)
    return str(path)


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Three fields on disk: [(sources_path, {band: fits_path}), ...]."""
    directory = tmp_path_factory.mktemp("fields")
    return [_write_field(directory, seed) for seed in (1, 2, 3)]


@pytest.fixture(scope="module")
def reference(fields, weights_path):
    """ClusterClassifier, in this process, on each field."""
    clf = ClusterClassifier("resnet18", weights_path=weights_path, device="cpu")
    return [clf(QTable.read(src), BandImages.from_files(paths))
            for src, paths in fields]


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


_ADDED_META = {"date", "field_index", "field_name", "field_sources", "field_images",
               "executed_on", "tiles"}


def assert_same_table(result, expected):
    """Same columns, values (NaN == NaN), masks, dtypes and provenance."""
    assert isinstance(result, QTable), result
    assert result.colnames == expected.colnames
    assert len(result) == len(expected)
    for name in expected.colnames:
        a, b = result[name], expected[name]
        if isinstance(b, SkyCoord):
            assert np.array_equal(a.ra.deg, b.ra.deg, equal_nan=True), name
            assert np.array_equal(a.dec.deg, b.dec.deg, equal_nan=True), name
            continue
        assert np.asarray(a).dtype == np.asarray(b).dtype, name
        assert np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)), name
        values_a, values_b = np.ma.getdata(a), np.ma.getdata(b)
        kind = np.asarray(values_b).dtype.kind
        assert np.array_equal(values_a, values_b, equal_nan=kind == "f"), name
        assert getattr(a, "description", None) == getattr(b, "description", None)
    meta_a = {k: v for k, v in result.meta["astro_clustercls"].items()
              if k not in _ADDED_META}
    meta_b = {k: v for k, v in expected.meta["astro_clustercls"].items()
              if k not in _ADDED_META}
    assert meta_a == meta_b


def _usable_per_tile(expected, tile_size, xy=None, shape=SHAPE):
    """Number of classified sources in each tile with classified sources."""
    if xy is None:
        xy = np.column_stack([expected["x_centroid"], expected["y_centroid"]])
    corners = np.ceil(xy - SIZE / 2)
    owner = acd._assign_tiles(corners, shape, tile_size, SIZE)
    done = ~np.ma.getmaskarray(expected["cluster_class"])
    counts = np.bincount(owner[done])
    return counts[counts > 0]


def _single_rows_exact(weights_path):
    """
    Whether ClusterClassifier gives the same probabilities for a row alone and
    in a batch. If not, a tile holding one source cannot reproduce the untiled
    run bit for bit (torch's CPU kernels take another path for batches of 1).
    """
    images = _make_field(9, shape=(40, 40), n=8)[0]
    clf = ClusterClassifier("resnet18", weights_path=weights_path, device="cpu")
    xy = np.array([[20.0, 20.0], [12.0, 25.0]])
    alone = clf(xy[:1], images)["class_prob"]
    batch = clf(xy, images)["class_prob"][:1]
    return np.array_equal(alone, batch)


# this test comes first, before the module's LocalCluster exists: it hides
# the dask modules from sys.modules for a moment
def test_works_without_dask(monkeypatch, fields, reference, weights_path):
    """The module imports and runs in this process with dask uninstalled."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("dask", "distributed"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)   # as if not installed
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "astro_clustercls.inference.distributed")
    monkeypatch.setattr(astro_clustercls.inference, "distributed", acd)
    with pytest.raises(ImportError):
        import dask  # noqa: F401
    fresh = importlib.import_module("astro_clustercls.inference.distributed")
    assert fresh is not acd
    result = fresh.classify_fields(fields[:1], weights_path=weights_path,
                                   device="cpu", tile_size=64)[0]
    assert_same_table(result, reference[0])
    loaded = [m for m, mod in sys.modules.items()
              if mod is not None and m.split(".")[0] in ("dask", "distributed")]
    assert loaded == []


# ---------------------------------------------------------------------------
# the LocalCluster tests (one cluster for the module)
# ---------------------------------------------------------------------------
@needs_dask
def test_fields_on_cluster_match_single_process(client, fields, reference,
                                                weights_path):
    results = classify_fields(fields, client=client, weights_path=weights_path,
                              device="cpu")
    assert len(results) == 3
    workers = set(client.scheduler_info()["workers"])
    for i, (result, expected) in enumerate(zip(results, reference, strict=True)):
        assert_same_table(result, expected)
        meta = result.meta["astro_clustercls"]
        assert meta["field_index"] == i
        assert meta["field_name"] == f"field{i + 1}"
        assert meta["field_sources"] == fields[i][0]
        assert meta["field_images"] == fields[i][1]
        assert len(meta["executed_on"]) == 1 and meta["executed_on"][0] in workers
    # the edge cases are there: off image, partly off, bad position, masked
    flags = reference[0]["classify_flags"]
    for flag in ("OFF_IMAGE", "PARTIAL_OFF_IMAGE", "BAD_POSITION", "MASKED"):
        assert np.any(flags & getattr(FLAGS, flag).bit), flag


@needs_dask
def test_failing_field_on_cluster_keeps_the_others(client, fields, reference,
                                                   weights_path, tmp_path):
    missing = dict(fields[1][1], F336W=str(tmp_path / "nowhere_f336w.fits"))
    broken = [fields[0], (fields[1][0], missing), fields[2]]
    with pytest.warns(ClusterClsWarning, match=r"1 of 3 fields failed: field 1"):
        results = classify_fields(broken, client=client, weights_path=weights_path,
                                  device="cpu")
    assert_same_table(results[0], reference[0])
    assert_same_table(results[2], reference[2])
    error = results[1]
    assert isinstance(error, FieldError) and not error
    assert (error.index, error.name, error.exc_type) == (1, "field2",
                                                         "FileNotFoundError")
    assert "nowhere_f336w.fits" in error.message
    assert "from_files" in error.traceback          # the worker's traceback
    with pytest.raises(OSError, match="nowhere_f336w.fits") as info:
        classify_fields(broken, client=client, weights_path=weights_path,
                        device="cpu", raise_errors=True)
    assert any("field 1 (field2)" in note for note in info.value.__notes__)


@needs_dask
def test_mosaic_on_cluster_matches_untiled(client, fields, reference, weights_path):
    tile_size = 64
    # each tile holds several classified sources (see test_mosaic_single_source_tile)
    assert _usable_per_tile(reference[0], (tile_size, tile_size)).min() >= 2
    result = classify_mosaic(*fields[0], tile_size=tile_size, client=client,
                             weights_path=weights_path, device="cpu")
    assert_same_table(result, reference[0])
    tiles = result.meta["astro_clustercls"]["tiles"]
    assert tiles == {"tile_size": [64, 64], "overlap": SIZE // 2, "n_tiles": 4,
                     "n_tasks": 4}
    assert "field_index" not in result.meta["astro_clustercls"]
    # in-memory images: the tiles' windows are sent, not the whole images
    images = BandImages.from_files(fields[1][1])
    table = QTable.read(fields[1][0])
    assert _usable_per_tile(reference[1], (tile_size, tile_size)).min() >= 2
    tiled = classify_fields([(table, images)], client=client, tile_size=tile_size,
                            weights_path=weights_path, device="cpu")[0]
    assert_same_table(tiled, reference[1])


@needs_dask
def test_model_loaded_once_per_worker_and_threads(client, fields, reference,
                                                  weights_path):
    results = classify_fields(fields * 3, client=client, weights_path=weights_path,
                              device="cpu")
    for i, result in enumerate(results):
        assert_same_table(result, reference[i % 3])
    states = client.run(acd._worker_state)
    assert len(states) == 2
    assert sum(s["tasks"] for s in states.values()) >= 9
    for state in states.values():
        if state["tasks"]:
            # every test on this cluster uses the same classifier options
            assert list(state["classifier_builds"].values()) == [1], state
            assert state["network_loads"] == 1, state
            assert state["tasks"] > 1
            assert state["torch_threads"] == 1        # the worker's nthreads
    # threads_per_worker overrides the worker's nthreads for torch
    result = classify_fields(fields[:1], client=client, weights_path=weights_path,
                             device="cpu", threads_per_worker=2)[0]
    assert_same_table(result, reference[0])
    address = result.meta["astro_clustercls"]["executed_on"][0]
    assert client.run(acd._worker_state, workers=[address])[address][
        "torch_threads"] == 2


# ---------------------------------------------------------------------------
# in this process (no Dask needed)
# ---------------------------------------------------------------------------
def test_in_process_fields_match_and_mixed_inputs(fields, reference, weights_path):
    import torch

    threads = torch.get_num_threads()
    images = BandImages.from_files(fields[2][1])
    table = QTable.read(fields[1][0])
    table.rename_columns(["x_centroid", "y_centroid"], ["PX", "PY"])
    mixed = {"a": fields[0],                                             # paths
             "b": {"sources": table, "images": fields[1][1], "xcol": "PX",
                   "ycol": "PY"},                                        # named cols
             "c": (QTable.read(fields[2][0]), images)}                   # in memory
    results = classify_fields(mixed, weights_path=weights_path, device="cpu",
                              threads_per_worker=1)
    assert torch.get_num_threads() == threads    # restored after the run
    assert_same_table(results[0], reference[0])
    expected_b = reference[1].copy()
    expected_b.rename_columns(["x_centroid", "y_centroid"], ["PX", "PY"])
    expected_b.meta["astro_clustercls"]["positions"] = "columns PX/PY"
    assert_same_table(results[1], expected_b)
    assert_same_table(results[2], reference[2])
    assert [r.meta["astro_clustercls"]["field_name"] for r in results] == \
        ["a", "b", "c"]
    assert results[2].meta["astro_clustercls"]["executed_on"] == ["local"]
    assert "field_images" not in results[2].meta["astro_clustercls"]


def test_in_process_failure_and_raise(fields, reference, weights_path, tmp_path):
    bad_table = tmp_path / "bad.ecsv"
    bad_table.write_text("not a table\n")
    broken = [(str(bad_table), fields[0][1]), fields[1],
              (str(tmp_path / "absent.ecsv"), fields[2][1])]
    with pytest.warns(ClusterClsWarning, match="2 of 3 fields failed"):
        results = classify_fields(broken, weights_path=weights_path, device="cpu")
    assert isinstance(results[0], FieldError) and results[0].name == "bad"
    assert_same_table(results[1], reference[1])
    assert results[2].exc_type == "FileNotFoundError"
    assert "absent.ecsv" in results[2].message
    assert str(results[2]).startswith("field 2 (absent): FileNotFoundError:")
    with pytest.raises(OSError, match="absent.ecsv"):
        results[2].reraise()
    with pytest.raises(Exception) as info:
        classify_fields(broken, weights_path=weights_path, device="cpu",
                        raise_errors=True)
    assert any("field 0 (bad)" in note for note in info.value.__notes__)


def test_warnings_from_fields_are_shown_once_per_field(fields, reference,
                                                       weights_path):
    # an extra band: the classifier warns that it is not used
    paths = dict(fields[0][1], F606W=fields[0][1]["F555W"])
    with pytest.warns(BandWarning, match=r"^field 0 \(field1\): image band\(s\) "
                                         r"\['F606W'\]") as record:
        result = classify_fields([(fields[0][0], paths)], tile_size=64,
                                 weights_path=weights_path, device="cpu")[0]
    # 4 tiles, one warning (and at most one CutoutWarning for the whole field)
    assert len([w for w in record if issubclass(w.category, BandWarning)]) == 1
    assert len([w for w in record if issubclass(w.category, CutoutWarning)]) <= 1
    assert_same_table(result, reference[0])


@pytest.mark.parametrize(("tile_size", "overlap"), [(32, None), ((48, 64), 20),
                                                   (500, None)])
def test_mosaic_in_process_matches_untiled(weights_path, tile_size, overlap):
    """Tiles of a simulated 128x128 field with 140 sources, a chip gap, a
    mask, sources on tile borders, on image edges and off the image."""
    arrays, weight, sources, _ = _make_field(7, n=100)
    images = BandImages({b: CCDData(arrays[b], unit="electron/s", mask=weight == 0)
                         for b in BANDS})
    rng = np.random.default_rng(3)
    border = np.column_stack([np.repeat([31.5, 32.0, 63.5, 64.0], 5),
                              rng.uniform(0, 127, 20)])   # on tile borders
    sources = QTable({"x_centroid": np.concatenate([sources["x_centroid"],
                                                    border[:, 0], border[:, 1]]),
                      "y_centroid": np.concatenate([sources["y_centroid"],
                                                    border[:, 1], border[:, 0]])})
    clf = ClusterClassifier("resnet18", weights_path=weights_path, device="cpu")
    expected = clf(sources, images)
    ts = (tile_size, tile_size) if np.isscalar(tile_size) else tile_size
    assert _usable_per_tile(expected, ts).min() >= 2
    assert np.any(expected["classify_flags"] & FLAGS.MASKED.bit)
    result = classify_mosaic(sources, images, tile_size=tile_size,
                             tile_overlap=overlap, weights_path=weights_path,
                             device="cpu")
    assert_same_table(result, expected)
    tiles = result.meta["astro_clustercls"]["tiles"]
    assert tiles["overlap"] == (SIZE // 2 if overlap is None else overlap)
    assert tiles["n_tiles"] == len(plan_tiles(SHAPE, tile_size, 7))


def test_mosaic_sky_positions_and_empty(weights_path):
    arrays, _, sources, wcs = _make_field(4)
    xy = np.column_stack([sources["x_centroid"], sources["y_centroid"]])
    images = BandImages(arrays, wcs=wcs)
    sources["sky_centroid"] = wcs.pixel_to_world(sources["x_centroid"],
                                                 sources["y_centroid"])
    sources.remove_columns(["x_centroid", "y_centroid"])
    clf = ClusterClassifier("resnet18", weights_path=weights_path, device="cpu")
    expected = clf(sources, images)
    assert expected.meta["astro_clustercls"]["positions"].startswith("column sky")
    assert _usable_per_tile(expected, (48, 128), xy).min() >= 2
    result = classify_mosaic(sources, images, tile_size=(48, 128),
                             weights_path=weights_path, device="cpu")
    assert_same_table(result, expected)
    # no sources at all (pixel columns: an empty SkyCoord column trips
    # positions.resolve_positions, in ClusterClassifier too)
    empty = QTable({"x_centroid": np.zeros(0), "y_centroid": np.zeros(0)})
    result = classify_mosaic(empty, images, tile_size=64, weights_path=weights_path,
                             device="cpu")
    assert_same_table(result, clf(empty, images))


def test_mosaic_single_source_tile(weights_path):
    """A tile holding one source puts it in a batch of its own."""
    if not _single_rows_exact(weights_path):
        pytest.xfail("ClusterClassifier's probabilities for a batch of 1 differ "
                     "in the last bit from those in a larger batch (torch CPU "
                     "kernels): a one-source tile cannot match exactly")
    images = _make_field(8)[0]
    xy = np.array([[10.0, 10.0], [100.0, 100.0], [105.0, 98.0]])
    clf = ClusterClassifier("resnet18", weights_path=weights_path, device="cpu")
    expected = clf(xy, images)
    result = classify_mosaic(xy, images, tile_size=64, weights_path=weights_path,
                             device="cpu")
    assert_same_table(result, expected)


# ---------------------------------------------------------------------------
# tiles, validation, optional Dask
# ---------------------------------------------------------------------------
def test_plan_tiles_cover_the_image_once():
    tiles = plan_tiles((100, 250), (40, 128), 7)
    assert [t.core for t in tiles] == [(0, 40, 0, 128), (0, 40, 128, 250),
                                       (40, 80, 0, 128), (40, 80, 128, 250),
                                       (80, 100, 0, 128), (80, 100, 128, 250)]
    assert tiles[3].window == (33, 87, 121, 250)
    assert tiles[0].window == (0, 47, 0, 135)
    cover = np.zeros((100, 250), int)
    for tile in tiles:
        y0, y1, x0, x1 = tile.core
        cover[y0:y1, x0:x1] += 1
    assert np.all(cover == 1)
    assert isinstance(tiles[0], Tile)
    image = np.arange(100 * 250).reshape(100, 250)
    assert image[tiles[3].slices].shape == (54, 129)


def test_assign_tiles_by_cutout_centre():
    # 15-pixel cutouts: the centre pixel is ceil(p - 7.5) + 7, i.e. p rounded
    # half down; tiles of 10 pixels, 3 x 3 of them on a 30 x 30 image
    xy = np.array([[9.5, 0.0], [9.51, 0.0], [-50.0, 29.4], [np.nan, 5.0],
                   [100.0, 19.5], [15.0, 1e30]])
    corners = np.ceil(xy - 7.5)
    owner = acd._assign_tiles(corners, (30, 30), (10, 10), 15)
    assert owner.tolist() == [0, 1, 6, 0, 5, 7]


def test_validation(fields, weights_path):
    kw = {"weights_path": weights_path, "device": "cpu"}
    with pytest.raises(ValueError, match="'tile_overlap' must be at least half"):
        classify_fields(fields, tile_size=64, tile_overlap=3, **kw)
    with pytest.raises(ValueError, match="'tile_overlap' is only used"):
        classify_fields(fields, tile_overlap=9, **kw)
    with pytest.raises(TypeError, match="unknown option 'xcolumn'"):
        classify_fields(fields, xcolumn="x", **kw)
    with pytest.raises(TypeError, match=r"fields\[1\] must be"):
        classify_fields([fields[0], "field2.fits"], **kw)
    with pytest.raises(TypeError, match="'fields' must be"):
        classify_fields("field1.ecsv", **kw)
    with pytest.raises(TypeError, match="'client' must be"):
        classify_fields(fields, client="tcp://127.0.0.1:8786", **kw)
    with pytest.raises(ValueError, match="resnet18"):
        classify_fields(fields, model="resnet81", **kw)
    with pytest.raises(OSError, match="not found"):
        classify_fields(fields, weights_path="/nonexistent/w.safetensors")
    with pytest.raises(ValueError, match="'batch_size'"):
        classify_fields(fields, batch_size=0, **kw)
    with pytest.raises(ValueError, match="'tile_size'"):
        classify_mosaic(*fields[0], tile_size=0, **kw)


def test_ensemble_of_bundled_networks_in_process(fields, register_random):
    """``model=[...]``: the ensemble of bundled networks, as ClusterEnsemble gives."""
    from astro_clustercls.inference.ensemble import ClusterEnsemble

    for seed, arch in enumerate(("resnet18", "vgg19_bn")):
        register_random(arch, seed=seed, cutout_size=SIZE)
    results = classify_fields(fields[:2], model=["resnet18", "vgg19_bn"],
                              device="cpu")
    ens = ClusterEnsemble(("resnet18", "vgg19_bn"), device="cpu")
    for result, (sources, images) in zip(results, fields[:2], strict=True):
        expected = ens(QTable.read(sources), BandImages.from_files(images))
        for name in ("cluster_class", "class_agreement", "member_class",
                     "classify_flags"):
            np.testing.assert_array_equal(np.ma.filled(result[name], -1),
                                          np.ma.filled(expected[name], -1))
        np.testing.assert_array_equal(result["class_prob"], expected["class_prob"])
        assert result.meta["astro_clustercls"]["n_members"] == 2
    with pytest.raises(ValueError, match="'weights' and 'weights_path' must be None"):
        classify_fields(fields, model=["resnet18", "vgg19_bn"], weights="TEST")
    with pytest.raises(TypeError, match="two or more"):
        classify_fields(fields, model=["resnet18"])


# ---------------------------------------------------------------------------
# faults: a worker killed in the middle of a run
# ---------------------------------------------------------------------------
@needs_dask
@pytest.mark.parametrize("inputs", ["files", "in memory", "tiles", "tiles in memory"])
def test_worker_killed_mid_run_finishes_like_one_process(fields, reference,
                                                         weights_path, tmp_path,
                                                         monkeypatch, inputs):
    """
    SIGKILL one of two worker processes while it classifies a field (or a
    tile): Dask runs that task again on a live worker and every result is the
    one-process result, bit for bit. With in-memory images (or tile windows)
    the data scattered to the killed worker is lost with it: classify_fields
    scatters it again and submits its tasks again.
    """
    import os
    import signal
    import threading
    import time

    distributed = pytest.importorskip("distributed")
    if inputs.endswith("in memory"):
        work = [(QTable.read(src), BandImages.from_files(paths, memmap=False))
                for src, paths in fields]
    else:
        work = list(fields)
    expected = list(reference)
    options = {}
    if inputs.startswith("tiles"):
        # the fields whose 64-px tiles each hold several sources (see
        # test_mosaic_on_cluster_matches_untiled)
        work, expected, options = work[:2], expected[:2], {"tile_size": 64}
    work, expected = work * 2, expected * 2
    flag = tmp_path / "stalled"

    def stall_next_classification(flag):
        """On a worker: the next classification cuts a chunk, signals, hangs."""
        import time
        from pathlib import Path

        from astro_clustercls.inference import _streaming

        real = _streaming.make_cutouts

        def stalled(*args, **kwargs):
            stack = real(*args, **kwargs)
            Path(flag).touch()
            time.sleep(600)             # until the process is killed
            return stack

        _streaming.make_cutouts = stalled

    scattered, resubmitted = [], []
    put, resubmit = acd._DaskRunner.put, acd._DaskRunner._resubmit
    monkeypatch.setattr(acd._DaskRunner, "put", lambda self, images: (
        scattered.append(put(self, images)) or scattered[-1]))
    monkeypatch.setattr(acd._DaskRunner, "_resubmit", lambda self, i, **kw: (
        resubmitted.append(i) or resubmit(self, i, **kw)))

    # a cluster of its own (a random dashboard port: the module's cluster
    # holds the default one)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids)[0]
        client.run(stall_next_classification, str(flag), workers=[victim])
        out = {}

        def run():
            try:
                out["results"] = classify_fields(work, client=client, device="cpu",
                                                 weights_path=weights_path, **options)
            except BaseException as exc:  # noqa: BLE001 - checked below
                out["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not flag.exists():     # the victim is in the middle of a field
            assert thread.is_alive() and time.monotonic() < deadline, \
                "no classification reached the worker to kill"
            time.sleep(0.02)
        # in-memory data that only the victim holds is lost with it
        holders = client.who_has([f for f in scattered if hasattr(f, "key")])
        lost = [k for k, where in holders.items() if list(where) == [victim]]
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=300)
        assert not thread.is_alive(), "classify_fields did not finish"
    assert "error" not in out, out.get("error")
    results = out["results"]
    assert not [r for r in results if isinstance(r, FieldError)], results
    for result, exp in zip(results, expected, strict=True):
        assert_same_table(result, exp)
    executed = {a for r in results for a in r.meta["astro_clustercls"]["executed_on"]}
    assert victim not in executed      # its field was classified again elsewhere
    if not inputs.endswith("in memory"):
        assert resubmitted == []
    else:
        assert scattered
        print(f"{len(lost)} scattered piece(s) lost, {len(resubmitted)} task(s) "
              "submitted again")
