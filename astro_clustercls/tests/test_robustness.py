# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Robustness against real-world input (issue 9), through the public API.

Every bad input gets a clear error naming the parameter, or a row that is kept
and flagged; nothing is silently dropped or wrong. Only the cases not already
tested elsewhere are here (the other cases are tested in test_images.py,
test_positions.py, test_cutouts.py, test_flags.py, test_classify.py,
test_cli.py, test_export.py and models/tests/). Where numpy or torch could warn
(NaN, inf, all-NaN and constant cutouts), the calls run under `no_warnings`,
which records every warning with the "always" filter and fails on any: so
the checks do not depend on pytest's ``filterwarnings = error``, which turns a
warning into an exception that library code might catch.
"""

import contextlib
import gzip
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import QTable, Table

from astro_clustercls import BandImages, make_cutouts
from astro_clustercls.cli import _common as cli_common
from astro_clustercls.cli import main
from astro_clustercls.data.flags import FLAGS
from astro_clustercls.inference.classifier import MAX_BATCH_SIZE, ClusterClassifier
from astro_clustercls.io.export import read_table
from astro_clustercls.models import build_network, save_weights
from astro_clustercls.utils.exceptions import CutoutWarning

from .conftest import make_wcs

# rows with incomplete cutouts (sources near the edges) are incidental here:
# their CutoutWarning is tested in test_first_hour.py
pytestmark = pytest.mark.filterwarnings(
    "ignore::astro_clustercls.utils.exceptions.CutoutWarning")

BANDS = ("F555W", "F814W")
SIZE = 15
SHAPE = (40, 48)
#: (x, y) of the blobs: two well inside the image
BLOBS = [(14.0, 12.0), (33.0, 26.0)]
NONFINITE, MASKED, CENTER, PARTIAL, OFF, NOTCLS = (
    FLAGS.NONFINITE.bit, FLAGS.MASKED.bit, FLAGS.CENTER_BAD.bit,
    FLAGS.PARTIAL_OFF_IMAGE.bit, FLAGS.OFF_IMAGE.bit, FLAGS.NOT_CLASSIFIED.bit)


@contextlib.contextmanager
def no_warnings():
    """
    Fail if the block emits any warning (whatever the warning filters) but the
    one CutoutWarning that counts flagged rows.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    cutout = [w for w in caught if issubclass(w.category, CutoutWarning)]
    other = [w for w in caught if not issubclass(w.category, CutoutWarning)]
    assert not other, [f"{w.category.__name__}: {w.message}" for w in other]
    assert len(cutout) <= 1, [str(w.message) for w in cutout]


def make_arrays(*, seed=0, shape=SHAPE, dtype=np.float64):
    """Two noisy bands with Gaussian blobs at `BLOBS`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    arrays = {}
    for b, band in enumerate(BANDS):
        img = rng.normal(1.0, 0.05, shape)
        for i, (x, y) in enumerate(BLOBS):
            s = 1.2 + 0.4 * ((i + b) % 2)
            r2 = (xx - x)**2 + (yy - y)**2
            img += 40.0 * (1 + i + b) * np.exp(-r2 / (2 * s**2))
        arrays[band] = img.astype(dtype)
    return arrays


def check_result(result, n):
    """The output invariants: n rows; classes, probabilities and flags agree."""
    assert len(result) == n
    classified = ~np.ma.getmaskarray(result["cluster_class"])
    probs = np.asarray(result["class_prob"])
    assert np.all(np.isfinite(probs[classified]))
    np.testing.assert_allclose(probs[classified].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.isnan(probs[~classified]))
    assert set(np.asarray(result["cluster_class"])[classified].tolist()) <= {1, 2, 3, 4}
    flags = np.asarray(result["classify_flags"])
    np.testing.assert_array_equal((flags & NOTCLS) != 0, ~classified)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """An untrained 2-band ResNet18 for 15-pixel cutouts (made once per module)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-2band.safetensors"
    save_weights(build_network("resnet18", n_bands=len(BANDS)), path,
                 {"architecture": "resnet18", "bands": list(BANDS), "cutout_size": SIZE,
                  "normalization": "asinh-v1", "notes": "untrained, for tests"})
    return path


@pytest.fixture(scope="module")
def clf(weights_file):
    return ClusterClassifier("resnet18", weights_path=weights_file, device="cpu",
                             batch_size=8)


# -- pixels -------------------------------------------------------------------------
@pytest.mark.parametrize("value, flags", [
    (np.nan, NONFINITE | CENTER), (np.inf, NONFINITE | CENTER),
    (-np.inf, NONFINITE | CENTER),
    (1e30, 0),                      # finite in float32: an ordinary (bright) pixel
    (1e300, NONFINITE | CENTER),    # float64 beyond float32: inf in the cutout
    (-1e300, NONFINITE | CENTER),
])
def test_nonfinite_and_huge_pixels_are_classified_and_flagged(clf, value, flags):
    arrays = make_arrays()
    clean = clf(BLOBS, BandImages(arrays))
    x, y = BLOBS[0]
    arrays["F814W"][int(y), int(x) + 1] = value  # next to the centre of object 0
    with no_warnings():
        result = clf(BLOBS, BandImages(arrays))
    check_result(result, 2)
    assert result["classify_flags"].tolist() == [flags, 0]
    assert not np.any(result["cluster_class"].mask)  # still classified
    # the other object is untouched
    np.testing.assert_array_equal(result["class_prob"][1], clean["class_prob"][1])
    if value != 1e30:  # the bad pixel reaches the network as the background (0)
        arrays["F814W"][int(y), int(x) + 1] = np.nan
        np.testing.assert_array_equal(clf(BLOBS, BandImages(arrays))["class_prob"][0],
                                      result["class_prob"][0])


@pytest.mark.parametrize("factor", [1e30, 1e-30, 1e250])
def test_huge_and_tiny_images_classify_like_the_originals(weights_file, factor):
    """
    The normalisation is scale-free: 1e30 (float32) or 1e250 (float64) x data.

    In float32: the network's inputs agree to float32 rounding, which a
    reduced-precision forward pass (bf16) would amplify to ~1e-3.
    """
    clf = ClusterClassifier("resnet18", weights_path=weights_file, precision="fp32")
    arrays = make_arrays()
    xy = [*BLOBS, (2.0, 3.0), (45.0, 38.0)]
    base = clf(xy, BandImages(arrays))
    scaled = {b: a * factor for b, a in arrays.items()}
    with no_warnings():
        result = clf(xy, BandImages(scaled))
    check_result(result, len(xy))
    if factor > 1e38:  # beyond float32: every pixel is +-inf, nothing to classify
        assert np.all(result["classify_flags"] & NOTCLS)
        assert np.all(result["classify_flags"] & NONFINITE)
        return
    np.testing.assert_array_equal(result["classify_flags"], base["classify_flags"])
    np.testing.assert_array_equal(result["cluster_class"], base["cluster_class"])
    np.testing.assert_allclose(result["class_prob"], base["class_prob"], atol=1e-4)


def _write_band(path, band, data, *, dq=None, wcs=None, bzero=None):
    header = wcs.to_header() if wcs is not None else fits.Header()
    header["BUNIT"] = "ELECTRONS/S"
    sci = fits.ImageHDU(data, header, name="SCI")
    if bzero is not None:  # unsigned integers stored as FITS does it
        sci.scale("int16", bzero=bzero)
    hdus = [fits.PrimaryHDU(header=fits.Header({"FILTER": band})), sci]
    if dq is not None:
        hdus.append(fits.ImageHDU(dq, name="DQ"))
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.mark.parametrize("kind", ["ccd_mask", "dq_extension"])
def test_masked_pixels_are_replaced_and_flagged(clf, tmp_path, kind):
    """A masked pixel is flagged, and its value never reaches the network."""
    x, y = BLOBS[1]
    results = []
    for k, value in enumerate((0.0, 1e30)):
        arrays = make_arrays(dtype=np.float32)
        arrays["F555W"][int(y), int(x)] = value
        bad = np.zeros(SHAPE, bool)
        bad[int(y), int(x)] = True
        if kind == "ccd_mask":
            images = BandImages({"F555W": CCDData(arrays["F555W"], unit="adu",
                                                  mask=bad),
                                 "F814W": arrays["F814W"]})
        else:
            files = {b: _write_band(tmp_path / f"{b}{k}_flt.fits", b, arrays[b],
                                    dq=(bad * 16).astype(np.int16) if b == "F555W"
                                    else np.zeros(SHAPE, np.int16))
                     for b in BANDS}
            images = BandImages.from_files(files)
        with no_warnings():
            results.append(clf(BLOBS, images))
    check_result(results[0], 2)
    assert results[0]["classify_flags"].tolist() == [0, MASKED | CENTER]
    np.testing.assert_array_equal(results[0]["class_prob"], results[1]["class_prob"])


def test_all_nan_band_in_a_cutout(clf):
    """One band all NaN around an object (chip gap): classified, flagged, no warning."""
    arrays = make_arrays()
    arrays["F814W"][:30, :25] = np.nan  # covers object 0's whole cutout in F814W
    with no_warnings():
        result = clf(BLOBS, BandImages(arrays))
    check_result(result, 2)
    assert result["classify_flags"].tolist() == [NONFINITE | CENTER, 0]
    assert not np.any(result["cluster_class"].mask)
    # every band all-NaN: kept, not classified (see test_classify for a chip gap)
    arrays["F555W"][:30, :25] = np.nan
    with no_warnings():
        result = clf(BLOBS, BandImages(arrays))
    assert result["classify_flags"].tolist() == [NONFINITE | CENTER | NOTCLS, 0]


@pytest.mark.parametrize("value", [0.0, 7.0, -3.0, 1e30])
def test_constant_images(clf, value):
    """A constant image normalises to zeros, whatever the constant."""
    images = BandImages({b: np.full(SHAPE, value, np.float32) for b in BANDS})
    zeros = BandImages({b: np.zeros(SHAPE, np.float32) for b in BANDS})
    xy = [*BLOBS, (0.0, 0.0)]
    with no_warnings():
        result = clf(xy, images)
    check_result(result, 3)
    assert result["classify_flags"].tolist() == [0, 0, PARTIAL | CENTER]
    np.testing.assert_array_equal(result["class_prob"], clf(xy, zeros)["class_prob"])


@pytest.mark.parametrize("dtype, bzero", [(">i2", None), (">i4", None), (">f4", None),
                                          (">f8", None), ("uint16", 32768)])
def test_integer_and_big_endian_fits(clf, tmp_path, dtype, bzero):
    """FITS files (big-endian, integer, BZERO-scaled) classify like native arrays."""
    arrays = make_arrays()
    if np.dtype(dtype).kind in "iu":
        arrays = {b: np.round(a * 100).astype(dtype) for b, a in arrays.items()}
    else:
        arrays = {b: a.astype(dtype) for b, a in arrays.items()}
    files = {b: _write_band(tmp_path / f"{b}.fits", b, arrays[b], bzero=bzero)
             for b in BANDS}
    images = BandImages.from_files(files)
    native = BandImages({b: arrays[b].astype(arrays[b].dtype.newbyteorder("="))
                         for b in BANDS})
    xy = [*BLOBS, (1.0, 39.0)]
    with no_warnings():
        result = clf(xy, images)
    check_result(result, 3)
    expected = clf(xy, native)
    np.testing.assert_array_equal(result["class_prob"], expected["class_prob"])
    np.testing.assert_array_equal(result["classify_flags"], expected["classify_flags"])


def test_gzipped_fits_and_truncated_gzip(clf, tmp_path):
    """A .fits.gz reads like the file; a cut gzip stream is an OSError."""
    arrays = make_arrays(dtype=np.float32)
    plain = {b: _write_band(tmp_path / f"{b}.fits", b, arrays[b],
                            dq=np.zeros(SHAPE, np.int16)) for b in BANDS}
    zipped = {}
    for b, path in plain.items():
        zipped[b] = tmp_path / f"{b}.fits.gz"
        zipped[b].write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(
        clf(BLOBS, BandImages.from_files(zipped))["class_prob"],
        clf(BLOBS, BandImages.from_files(plain))["class_prob"])
    raw = zipped["F555W"].read_bytes()
    for keep in (len(raw) // 3, len(raw) - 20):  # the DQ extension, the gzip trailer
        cut = tmp_path / "cut.fits.gz"
        cut.write_bytes(raw[:keep])
        with pytest.raises(OSError, match="cut.fits.gz: its gzip stream is truncated"):
            BandImages.from_files({"F555W": cut, "F814W": zipped["F814W"]})


def test_truncated_fits_is_an_error_at_load_time(tmp_path):
    """A plain file cut inside its last extension: OSError when read, not later."""
    path = _write_band(tmp_path / "full.fits", "F555W",
                       np.ones(SHAPE, np.float32), dq=np.zeros(SHAPE, np.int16))
    raw = path.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(raw[:len(raw) - 3000])  # inside the DQ data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OSError, match="cannot read FITS file .*cut.fits.*"
                                          "truncated"):
            BandImages.from_files({"F555W": cut})
    assert not caught


# -- geometry -----------------------------------------------------------------------
def test_image_smaller_than_a_cutout_is_classified(clf):
    arrays = {b: a[20:26, 30:35] for b, a in make_arrays().items()}  # 6 x 5 pixels
    with no_warnings():
        result = clf([(2.0, 3.0), (4.4, 0.2), (30.0, 3.0)], BandImages(arrays))
    check_result(result, 3)
    assert result["classify_flags"].tolist() == [PARTIAL, PARTIAL | CENTER,
                                                 OFF | NOTCLS]
    assert result["cluster_class"].mask.tolist() == [False, False, True]


# -- tables -------------------------------------------------------------------------
def test_one_row_inputs(clf):
    images = BandImages(make_arrays(), wcs=make_wcs(SHAPE, crval=(150.0, 2.0)))
    both = clf(BLOBS, images)
    table = QTable({"id": [7, 8], "x_centroid": [b[0] for b in BLOBS],
                    "y_centroid": [b[1] for b in BLOBS]})
    one = clf(table[[1]], images)
    check_result(one, 1)
    assert one["id"].tolist() == [8]
    np.testing.assert_allclose(one["class_prob"][0], both["class_prob"][1], atol=1e-6)
    scalar = clf(images.wcs.pixel_to_world(*BLOBS[1]), images)  # a scalar SkyCoord
    np.testing.assert_allclose(scalar["class_prob"][0], both["class_prob"][1],
                               atol=1e-6)
    with pytest.raises(TypeError, match=r"got Row.*table\[\[i\]\]"):
        clf(table[1], images)


def test_empty_table_with_masked_columns(clf):
    """A photutils table filtered down to no rows (MaskedColumn positions)."""
    from astropy.table import MaskedColumn

    table = Table({"id": np.zeros(0, int),
                   "xcentroid": MaskedColumn(np.zeros(0), mask=np.zeros(0, bool)),
                   "ycentroid": MaskedColumn(np.zeros(0), mask=np.zeros(0, bool))})
    images = BandImages(make_arrays())
    assert make_cutouts(images, table, SIZE).data.shape == (0, 2, SIZE, SIZE)
    result = clf(table, images)
    check_result(result, 0)
    assert result.colnames[:3] == ["id", "xcentroid", "ycentroid"]


def test_pixel_unit_columns(clf):
    images = BandImages(make_arrays())
    xy = np.array(BLOBS)
    table = QTable({"x_centroid": xy[:, 0] * u.pix, "y_centroid": xy[:, 1] * u.pix})
    result = clf(table, images)
    assert result["x_centroid"].unit == u.pix  # input columns untouched
    np.testing.assert_array_equal(result["class_prob"], clf(xy, images)["class_prob"])
    table["y_centroid"] = xy[:, 1] * u.arcsec
    with pytest.raises(ValueError, match="ycol column has unit arcsec"):
        clf(table, images)


@pytest.mark.parametrize("precision", [None, "fp32"])
def test_duplicate_rows_give_identical_results(weights_file, precision):
    """Bit-identical, even when a duplicate falls in a last batch of one row."""
    options = {} if precision is None else {"precision": precision}
    images = BandImages(make_arrays())
    xy = np.array([BLOBS[0], BLOBS[1], (3.0, 3.0), BLOBS[0], BLOBS[1]])
    for batch_size in (2, 3, 4):  # the duplicates fall in different batches
        result = ClusterClassifier("resnet18", weights_path=weights_file,
                                   batch_size=batch_size, **options)(xy, images)
        probs = np.asarray(result["class_prob"])
        np.testing.assert_array_equal(probs[3:], probs[:2])
        classes = result["cluster_class"]
        assert classes[3:].tolist() == classes[:2].tolist()


def test_non_table_sources_error_names_sources(clf):
    images = BandImages(make_arrays())
    with pytest.raises(TypeError, match="'sources' must be"):
        clf({"x": [1.0], "y": [2.0]}, images)


def test_non_table_positions_errors_say_what_to_do():
    images = BandImages(make_arrays())
    records = np.array([(1.0, 2.0)],
                       dtype=[("x_centroid", float), ("y_centroid", float)])
    with pytest.raises(TypeError, match=r"'positions' must be .*with fields.*"
                                        r"Table\(array\)"):
        make_cutouts(images, records, SIZE)
    for bad in ({"x": 1}, "sources.ecsv", None, object(), [{"x": 1.0, "y": 2.0}]):
        with pytest.raises(TypeError, match="'positions' must be an \\(N, 2\\) array"):
            make_cutouts(images, bad, SIZE)


# -- parameters and weights ------------------------------------------------------
def test_largest_batch_size_runs(weights_file):
    images = BandImages(make_arrays())
    xy = [*BLOBS, (-40.0, 3.0)]
    big = ClusterClassifier("resnet18", weights_path=weights_file,
                            batch_size=MAX_BATCH_SIZE)(xy, images)
    small = ClusterClassifier("resnet18", weights_path=weights_file,
                              batch_size=2)(xy, images)
    check_result(big, 3)
    np.testing.assert_array_equal(big["cluster_class"], small["cluster_class"])
    np.testing.assert_allclose(big["class_prob"], small["class_prob"], atol=1e-6)


def test_weights_of_another_architecture(weights_file):
    with pytest.raises(ValueError, match="resnet18 weights.*not vgg19_bn"):
        ClusterClassifier("vgg19_bn", weights_path=weights_file)


# -- command line -------------------------------------------------------------------
@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """Two FITS bands with a WCS, a source table (pixel and sky columns)."""
    d = tmp_path_factory.mktemp("field")
    wcs = make_wcs(SHAPE, crval=(150.0, 2.0))
    arrays = make_arrays(dtype=np.float32)
    files = {b: _write_band(d / f"{b.lower()}_flt.fits", b, arrays[b], wcs=wcs,
                            dq=np.zeros(SHAPE, np.int16)) for b in BANDS}
    xy = np.array([*BLOBS, (0.0, 20.0)])
    sources = QTable({"id": [1, 2, 3], "x_centroid": xy[:, 0], "y_centroid": xy[:, 1],
                      "sky_centroid": wcs.pixel_to_world(xy[:, 0], xy[:, 1])})
    src = d / "sources.ecsv"
    sources.write(src)
    return {"dir": d, "files": files, "sources": src, "table": sources,
            "arrays": arrays}


def _cli_args(field, weights_file, out, *, images=None, sources=None, weights=None,
              extra=()):
    images = images or [f"{b}={p}" for b, p in field["files"].items()]
    return ["classify", "--images", *images, "--sources", str(sources or
                                                              field["sources"]),
            "--out", str(out), "--weights-path", str(weights or weights_file),
            "--device", "cpu", *extra]


def assert_one_line_error(capsys, rc, match):
    """One error line on stderr after the stage lines (if any), no traceback."""
    out, err = capsys.readouterr()
    assert rc not in (0, None)
    assert "Traceback" not in err + out
    lines = [line for line in err.strip().splitlines()
             if not (line.startswith("astro-clustercls: ") and line.endswith("..."))]
    assert len(lines) == 1, err
    assert lines[0].startswith("astro-clustercls: error: ") and match in lines[0], \
        lines[0]


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("case", [
    "sky_sources_images_without_wcs", "truncated_fits", "truncated_gzip",
    "images_of_different_shapes", "hdu_index_out_of_range", "bad_hdu_syntax",
    "pickle_weights", "weights_is_a_directory", "image_is_a_directory",
    "output_directory_missing", "pixel_columns_with_sky_units"])
def test_cli_errors_are_one_line(field, weights_file, tmp_path, capsys, case):
    out = tmp_path / "out.ecsv"
    kwargs = {}
    files = {b: str(p) for b, p in field["files"].items()}
    if case == "sky_sources_images_without_wcs":
        nowcs = {b: _write_band(tmp_path / f"{b}.fits", b, field["arrays"][b])
                 for b in BANDS}
        kwargs["images"] = [f"{b}={p}" for b, p in nowcs.items()]
        sky = tmp_path / "sky.ecsv"
        field["table"]["id", "sky_centroid"].write(sky)
        kwargs["sources"] = sky
        match = "images have no WCS"
    elif case in ("truncated_fits", "truncated_gzip"):
        raw = field["files"]["F555W"].read_bytes()
        if case == "truncated_gzip":
            cut = tmp_path / "cut.fits.gz"
            raw = gzip.compress(raw)
        else:
            cut = tmp_path / "cut.fits"
        cut.write_bytes(raw[:len(raw) - 3000])  # inside the DQ data
        files["F555W"] = str(cut)
        kwargs["images"] = [f"{b}={p}" for b, p in files.items()]
        match = "truncated"
    elif case == "images_of_different_shapes":
        small = _write_band(tmp_path / "small.fits", "F814W",
                            field["arrays"]["F814W"][:30],
                            wcs=make_wcs((30, 48), crval=(150.0, 2.0)))
        files["F814W"] = str(small)
        kwargs["images"] = [f"{b}={p}" for b, p in files.items()]
        match = "band 'F814W' has shape (30, 48)"
    elif case == "hdu_index_out_of_range":
        kwargs["extra"] = ["--hdu", "7"]
        match = "extension 7 of"
    elif case == "bad_hdu_syntax":
        kwargs["extra"] = ["--hdu", "SCI,two"]
        match = "--hdu must be"
    elif case == "pickle_weights":
        marker = tmp_path / "marker"
        evil = tmp_path / "evil.safetensors"
        evil.write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}, protocol=2))
        kwargs["weights"] = evil
        match = "evil.safetensors"
    elif case == "weights_is_a_directory":
        kwargs["weights"] = tmp_path
        match = "not a file"
    elif case == "image_is_a_directory":
        files["F555W"] = str(tmp_path)
        kwargs["images"] = [f"{b}={p}" for b, p in files.items()]
        match = "FITS file not found"
    elif case == "output_directory_missing":
        out = tmp_path / "nodir" / "out.ecsv"
        match = "does not exist"
    elif case == "pixel_columns_with_sky_units":
        t = QTable({"x_centroid": [1.0, 2.0] * u.deg, "y_centroid": [1.0, 2.0] * u.deg})
        kwargs["sources"] = tmp_path / "deg.ecsv"
        t.write(kwargs["sources"])
        match = "unit deg"
    before = set(tmp_path.rglob("*"))
    rc = main(_cli_args(field, weights_file, out, **kwargs))
    assert_one_line_error(capsys, rc, match)
    assert set(tmp_path.rglob("*")) == before  # no output, no temporary file
    if case == "pickle_weights":
        assert not marker.exists()


def test_cli_hdu_by_index_and_version(field, weights_file, tmp_path, capsys):
    expected = None
    for hdu in ("SCI", "1", "SCI,1", "sci"):
        out = tmp_path / f"out-{hdu.replace(',', '_')}.ecsv"
        rc = main(_cli_args(field, weights_file, out, extra=["--hdu", hdu]))
        assert rc == 0, capsys.readouterr().err
        probs = np.asarray(read_table(out)["class_prob"])
        if expected is None:
            expected = probs
        np.testing.assert_array_equal(probs, expected)


def test_cli_empty_and_one_row_tables(field, weights_file, tmp_path, capsys):
    for n in (0, 1):
        src = tmp_path / f"src{n}.ecsv"
        field["table"][:n].write(src)
        out = tmp_path / f"out{n}.ecsv"
        rc = main(_cli_args(field, weights_file, out, sources=src))
        stdout, err = capsys.readouterr()
        assert rc == 0, err
        assert "warning" not in err
        result = read_table(out)
        assert len(result) == n and result["class_prob"].shape == (n, 4)
        assert f"total {n} rows" in stdout


@pytest.mark.parametrize("stage", ["table", "regions"])
@pytest.mark.parametrize("existing", [False, True])
def test_cli_interrupt_while_writing_leaves_no_partial_output(
        field, weights_file, tmp_path, capsys, monkeypatch, stage, existing):
    out = tmp_path / "out.ecsv"
    reg = tmp_path / "out.reg"
    if existing:
        out.write_text("old table")
        reg.write_text("old regions")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    name = "write_table" if stage == "table" else "to_regions"
    real = getattr(cli_common, name)

    def partial_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)  # a complete file under its temporary name...
        raise KeyboardInterrupt  # ...then Ctrl-C

    monkeypatch.setattr(cli_common, name, partial_then_interrupt)
    extra = ["--regions", str(reg)] + (["--overwrite"] if existing else [])
    rc = main(_cli_args(field, weights_file, out, extra=extra))
    assert rc == 130
    assert "interrupted" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
    # and without the interrupt both files are written
    monkeypatch.undo()
    assert main(_cli_args(field, weights_file, out, extra=[*extra, "--overwrite"])) == 0
    assert len(read_table(out)) == len(field["table"])
    assert reg.read_text().count("circle") == len(field["table"])


def test_table_read_back_is_the_same(field, weights_file, tmp_path):
    """ECSV output from the CLI == the Python API's table (no rows lost or moved)."""
    out = tmp_path / "out.ecsv"
    assert main(_cli_args(field, weights_file, out)) == 0
    images = BandImages.from_files(field["files"])
    expected = ClusterClassifier("resnet18", weights_path=weights_file)(
        Table.read(field["sources"]), images)
    result = read_table(out)
    assert result["id"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(result["classify_flags"], expected["classify_flags"])
    np.testing.assert_allclose(result["class_prob"], expected["class_prob"], atol=1e-6,
                               equal_nan=True)
