# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
An output write that fails half-way leaves no partial file.

Every writer of the package (tables, regions, weights, trained models, band
images, training checkpoints and logs) is made to fail half-way: the
underlying writer (astropy, regions, safetensors, torch) is replaced by one
that writes part of its file and then raises (a full disk, or Ctrl-C). The
target must then be absent, or keep its old bytes, and no temporary file may
be left next to it.
"""

import errno
import inspect

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import MaskedColumn, QTable, Table

from astro_clustercls import BandImages
from astro_clustercls.io.export import to_regions, write_table
from astro_clustercls.models import _io as models_io
from astro_clustercls.models import read_weights_meta, save_weights
from astro_clustercls.training import LabelledCutouts, TrainResult, train

regions = pytest.importorskip("regions")

META = {"architecture": "demo", "bands": ["F555W"], "cutout_size": 5,
        "normalization": "asinh-v1"}
FAILURES = {"disk full": lambda: OSError(errno.ENOSPC, "No space left on device"),
            "ctrl-c": KeyboardInterrupt}


def _table():
    t = QTable()
    t["x_centroid"] = [10.0, 20.0, 30.0]
    t["y_centroid"] = [5.0, 15.0, 25.0]
    t["cluster_class"] = MaskedColumn([1, 3, 0], mask=[False, False, True])
    t["class_prob"] = np.full((3, 4), 0.25, np.float32)
    t.meta["astro_clustercls"] = {"model": "resnet18"}
    return t


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(25, 4))


def _train_result():
    net = _net()
    net.clustercls_meta = dict(META)
    return TrainResult(model=net, history=QTable({"epoch": [1]}), best_epoch=1,
                       stopped_early=False)


def _images():
    rng = np.random.default_rng(0)
    return BandImages({b: rng.normal(0, 1, (16, 16)).astype(np.float32)
                       for b in ("F275W", "F336W", "F555W")}, unit="electron/s")


# writer name -> (the class or module and attribute of the underlying writer,
#                 the call of the package that writes, the files it writes,
#                 which call of the underlying writer fails: the last one)
WRITERS = {
    "write_table": ((QTable, "write"),
                    lambda d: write_table(_table(), d / "out.ecsv", overwrite=True),
                    ["out.ecsv"], 1),
    "to_regions": ((regions.Regions, "write"),
                   lambda d: to_regions(_table(), filename=d / "out.reg",
                                        overwrite=True),
                   ["out.reg"], 1),
    "save_weights": ((models_io, "save_file"),
                     lambda d: save_weights(_net(), d / "w.safetensors", META),
                     ["w.safetensors"], 1),
    "TrainResult.save": ((models_io, "save_file"),
                         lambda d: _train_result().save(d / "model.safetensors"),
                         ["model.safetensors"], 1),
    # three bands: the first two are written in full, the third fails
    "BandImages.write": ((fits.PrimaryHDU, "writeto"),
                         lambda d: _images().write(d, overwrite=True),
                         ["f275w.fits", "f336w.fits", "f555w.fits"], 3),
}


def _half_then_raise(monkeypatch, owner, name, fail_at, exc):
    """Replace ``owner.name``: the ``fail_at``-th call writes half a file, raises."""
    real = inspect.getattr_static(owner, name)
    calls = []

    def writer(*args, **kwargs):
        calls.append(args[1])
        if len(calls) < fail_at:
            if isinstance(owner, type):   # a method (astropy's write is a descriptor)
                return real.__get__(args[0], type(args[0]))(*args[1:], **kwargs)
            return real(*args, **kwargs)
        with open(args[1], "wb") as f:      # the file's path is the 2nd argument
            f.write(b"SIMPLE  =                    T / half a file")
        raise exc()

    monkeypatch.setattr(owner, name, writer)
    return calls


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_failed_write_leaves_no_partial_file(writer, existing, failure, tmp_path,
                                             monkeypatch):
    (owner, name), write, files, fail_at = WRITERS[writer]
    if existing:
        for f in files:
            (tmp_path / f).write_bytes(b"old content of " + f.encode())
    before = _snapshot(tmp_path)
    exc = FAILURES[failure]
    calls = _half_then_raise(monkeypatch, owner, name, fail_at, exc)
    with pytest.raises(exc().__class__):
        write(tmp_path)
    assert len(calls) == fail_at
    monkeypatch.undo()
    # the targets are absent or untouched, and no temporary file is left
    assert _snapshot(tmp_path) == before
    # the same call without the failure writes every file
    write(tmp_path)
    after = _snapshot(tmp_path)
    assert sorted(after) == sorted(files)
    assert all(after[f] != before.get(f) for f in files)


def test_written_files_read_back(tmp_path):
    """What the writers above write is complete (a sanity check of the cases)."""
    for _, write, _, _ in WRITERS.values():
        write(tmp_path)
    assert len(Table.read(tmp_path / "out.ecsv")) == 3
    assert read_weights_meta(tmp_path / "w.safetensors")["bands"] == ["F555W"]
    meta = read_weights_meta(tmp_path / "model.safetensors")
    assert meta["recipe"]["best_epoch"] == 1
    back = BandImages.from_files({b: tmp_path / f"{b.lower()}.fits"
                                  for b in ("F275W", "F336W", "F555W")})
    np.testing.assert_array_equal(back["F336W"].data, _images()["F336W"].data)


def test_band_images_write_refuses_before_writing(tmp_path):
    images = _images()
    (tmp_path / "f555w.fits").write_bytes(b"old")
    with pytest.raises(OSError, match="already exists"):
        images.write(tmp_path)
    assert _snapshot(tmp_path) == {"f555w.fits": b"old"}    # nothing new written
    with pytest.raises(ValueError, match="same file"):
        images.write(tmp_path, pattern="all.fits", overwrite=True)
    assert _snapshot(tmp_path) == {"f555w.fits": b"old"}


# ------------------------------------------------------------- training outputs
def _sets():
    rng = np.random.default_rng(0)
    labels = np.tile([1, 2, 3, 4], 16)
    data = rng.normal(0, 1, (64, 1, 5, 5)).astype(np.float32)
    data[:, 0, 2, 2] += labels
    return LabelledCutouts(data, labels, normalize="identity")


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("output", ["checkpoint", "log"])
def test_failed_checkpoint_or_log_write_keeps_the_previous_file(output, failure,
                                                                tmp_path,
                                                                monkeypatch):
    """An epoch's write fails half-way: the previous epoch's file is intact."""
    train_set = _sets()
    ckpt, log = tmp_path / "run.pt", tmp_path / "run.ecsv"
    kw = dict(epochs=3, batch_size=16, device="cpu", amp=False, checkpoint=ckpt,
              log=log)
    owner, name = (torch, "save") if output == "checkpoint" else (Table, "write")
    # which call writes epoch 2's file (train may also checkpoint its start)
    epochs_written = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (
        epochs_written.append(obj["epoch"]), real_save(obj, f, *a, **k))[1])
    train(_net(), train_set, **kw)
    monkeypatch.undo()
    nth = {"checkpoint": epochs_written.index(2) + 1, "log": 2}[output]
    for p in tmp_path.iterdir():
        p.unlink()

    calls = _half_then_raise(monkeypatch, owner, name, nth, FAILURES[failure])
    with pytest.raises(FAILURES[failure]().__class__):
        train(_net(), train_set, **kw)
    assert len(calls) == nth
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ecsv", "run.pt"]
    assert torch.load(ckpt, weights_only=True)["epoch"] == (
        1 if output == "checkpoint" else 2)
    assert list(Table.read(log, format="ascii.ecsv")["epoch"]) == [1]
    # the first write failing leaves no file at all
    for p in tmp_path.iterdir():
        p.unlink()
    _half_then_raise(monkeypatch, owner, name, 1, FAILURES[failure])
    with pytest.raises(FAILURES[failure]().__class__):
        train(_net(), train_set, **kw)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        [] if output == "checkpoint" else ["run.pt"])
