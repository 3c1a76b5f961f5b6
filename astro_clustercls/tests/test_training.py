# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astro_clustercls.training on a tiny CNN and a separable synthetic task."""

import os

import numpy as np
import pytest
import torch
from astropy.table import QTable, Table

from astro_clustercls import BandImages
from astro_clustercls.training import (
    LabelledCutouts,
    TrainResult,
    class_weights,
    fine_tune,
    fit_temperature,
    predict_logits,
    resolve_device,
    stratified_split,
    train,
)
from astro_clustercls.utils.exceptions import ClusterClsWarning

SIZE = 9


def _blobs(n, seed, size=SIZE):
    """Separable 2-band task: class sets the blob width and the band ratio."""
    rng = np.random.default_rng(seed)
    labels = np.tile([1, 2, 3, 4], n // 4 + 1)[:n]
    rng.shuffle(labels)
    yy, xx = np.mgrid[:size, :size] - size // 2
    data = rng.normal(0.0, 0.3, (n, 2, size, size))
    for i, lab in enumerate(labels):
        sigma = (0.8, 1.6, 2.6, 0.8)[lab - 1]
        ratio = (1.0, 1.0, 1.0, 0.1)[lab - 1]
        g = 3.0 * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        data[i, 0] += g
        data[i, 1] += ratio * g
    return data.astype(np.float32), labels


def _net(n_bands=2):
    return torch.nn.Sequential(
        torch.nn.Conv2d(n_bands, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


def _identity(data):
    return data


@pytest.fixture(scope="module")
def sets():
    data, labels = _blobs(200, 0)
    vdata, vlabels = _blobs(80, 1)
    train_set = LabelledCutouts(data, labels, normalize=_identity, augment=True)
    val_set = LabelledCutouts(vdata, vlabels, normalize=_identity)
    return train_set, val_set


def _fresh_model(seed=0):
    torch.manual_seed(seed)
    return _net()


def _weights(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


KW = dict(epochs=3, batch_size=32, lr=1e-2, device="cpu", amp=False)


def test_loss_decreases_and_learns(sets):
    train_set, val_set = sets
    result = train(_fresh_model(), train_set, val_set, **KW)
    assert isinstance(result, TrainResult)
    loss = np.asarray(result.history["train_loss"])
    assert len(loss) == 3
    assert loss[-1] < 0.8 * loss[0]
    assert result.history["val_acc"][-1] > 0.5  # chance is 0.25
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1
    assert not result.model.training
    # the returned model is the best epoch's: its predictions give that val_acc
    logits = predict_logits(result.model, val_set, batch_size=17, device="cpu")
    acc = np.mean(np.argmax(logits, axis=1) + 1 == val_set.labels)
    assert acc == pytest.approx(result.history["val_acc"][result.best_epoch - 1])
    tta = predict_logits(result.model, val_set, device="cpu", tta=True)
    assert tta.shape == (80, 4) and not np.allclose(tta, logits)


def test_same_seed_same_weights_other_seed_differs(sets):
    train_set, val_set = sets
    kw = dict(KW, amp="auto")
    a = _weights(train(_fresh_model(), train_set, val_set, seed=3, **kw).model)
    b = _weights(train(_fresh_model(), train_set, val_set, seed=3, **kw).model)
    c = _weights(train(_fresh_model(), train_set, val_set, seed=4, **kw).model)
    assert _same(a, b)
    assert not _same(a, c)


def test_sampler_balance_runs(sets):
    train_set, val_set = sets
    unbalanced = train_set.subset(np.flatnonzero(train_set.labels != 3)[:120].tolist()
                                  + np.flatnonzero(train_set.labels == 3)[:10].tolist())
    result = train(_fresh_model(), unbalanced, val_set, class_balance="sampler",
                   optimizer="sgd", schedule="step", **dict(KW, lr=5e-2))
    assert np.all(np.isfinite(result.history["train_loss"]))


def test_checkpoint_weights_only_and_log(sets, tmp_path):
    train_set, val_set = sets
    ckpt = tmp_path / "run.pt"
    log = tmp_path / "run.ecsv"
    train(_fresh_model(), train_set, val_set, checkpoint=ckpt, log=log, **KW)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 3
    assert set(state) >= {"model", "optimizer", "scheduler", "history", "best_state",
                          "rng", "epoch"}
    table = QTable.read(log, format="ascii.ecsv")
    assert list(table["epoch"]) == [1, 2, 3]
    for col in ("train_loss", "val_loss", "val_acc", "val_recall_1", "val_recall_4",
                "lr", "seconds"):
        assert col in table.colnames
    assert sorted(os.listdir(tmp_path)) == ["run.ecsv", "run.pt"]


class _Interrupt(torch.nn.Module):
    """Raise KeyboardInterrupt on the n-th forward call in training mode."""

    def __init__(self, net, at):
        super().__init__()
        self.net, self.at, self.calls = net, at, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
        return self.net(x)


def test_interrupt_then_resume_matches_uninterrupted(sets, tmp_path):
    train_set, val_set = sets
    full = train(_Interrupt(_fresh_model(), at=-1), train_set, val_set,
                 checkpoint=tmp_path / "full.pt", **KW)
    ckpt = tmp_path / "part.pt"
    n_batches = -(-len(train_set) // KW["batch_size"])
    with pytest.raises(KeyboardInterrupt):  # in the middle of epoch 2
        train(_Interrupt(_fresh_model(), at=n_batches + 3), train_set, val_set,
              checkpoint=ckpt, **KW)
    assert sorted(os.listdir(tmp_path)) == ["full.pt", "part.pt"]  # no temp file
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    # resume into a model that starts from other weights: the checkpoint rules
    resumed = train(_Interrupt(_fresh_model(seed=9), at=-1), train_set, val_set,
                    checkpoint=ckpt, resume=True, **KW)
    assert list(resumed.history["epoch"]) == [1, 2, 3]
    assert _same(_weights(full.model), _weights(resumed.model))
    np.testing.assert_array_equal(resumed.history["val_loss"], full.history["val_loss"])
    a = torch.load(tmp_path / "full.pt", weights_only=True)["model"]
    b = torch.load(ckpt, weights_only=True)["model"]
    assert _same(a, b)  # the final (not only the best) weights agree too


class _BNNet(torch.nn.Module):
    """A small CNN with BatchNorm (running statistics) and dropout (RNG)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 4))

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("setting", [
    {},                                          # AdamW, cosine, weighted loss
    {"optimizer": "sgd", "schedule": "step", "class_balance": "sampler"}],
    ids=["adamw", "sgd-sampler"])
@pytest.mark.parametrize("where", ["epoch 1", "epoch 2", "last batch"])
def test_resume_after_interrupt_mid_epoch_is_bit_identical(sets, tmp_path, one_thread,
                                                           setting, where):
    """
    Ctrl-C in the middle of an epoch, then ``resume=True``: the final weights
    (BatchNorm statistics included) equal the uninterrupted run's bit for bit.

    The run is resumed into the very model object that was interrupted (its
    weights already changed by the part of the epoch that ran), as after a
    Ctrl-C in an interactive session.
    """
    _, val_set = sets
    data, labels = _blobs(200, 0)
    train_set = LabelledCutouts(data, labels, normalize=_identity, augment=True,
                                band_dropout=0.2)
    kw = dict(KW, seed=5, **setting)
    torch.manual_seed(1)
    full = train(_Interrupt(_BNNet(), at=-1), train_set, val_set,
                 checkpoint=tmp_path / "full.pt", **kw)
    n_batches = -(-len(train_set) // kw["batch_size"])
    at = {"epoch 1": 3, "epoch 2": n_batches + 2,
          "last batch": kw["epochs"] * n_batches}[where]
    torch.manual_seed(1)
    model = _Interrupt(_BNNet(), at=at)
    ckpt = tmp_path / "part.pt"
    with pytest.raises(KeyboardInterrupt):
        train(model, train_set, val_set, checkpoint=ckpt, **kw)
    model.at = -1
    resumed = train(model, train_set, val_set, checkpoint=ckpt, resume=True, **kw)
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert b["epoch"] == a["epoch"] == kw["epochs"]
    assert _same(a["model"], b["model"])      # the final weights
    assert _same(_weights(full.model), _weights(resumed.model))   # the best epoch's
    assert resumed.best_epoch == full.best_epoch
    for col in ("train_loss", "val_loss", "lr"):
        np.testing.assert_array_equal(resumed.history[col], full.history[col])


def test_interrupt_while_saving_keeps_previous_checkpoint(sets, tmp_path, monkeypatch):
    train_set, val_set = sets
    ckpt = tmp_path / "run.pt"
    real_save = torch.save
    calls = []

    def flaky_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 3:  # epoch 2 (after epochs 0 and 1): half a file, Ctrl-C
            with open(f, "wb") as fh:
                fh.write(b"PK\x03\x04partial")
            raise KeyboardInterrupt
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        train(_fresh_model(), train_set, val_set, checkpoint=ckpt, **KW)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["run.pt"]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_early_stopping(sets):
    train_set, val_set = sets
    # lr = 0: the validation loss never improves after epoch 1
    result = train(_fresh_model(), train_set, val_set, early_stopping=2,
                   **dict(KW, epochs=10, lr=0.0))
    assert result.stopped_early
    assert list(result.history["epoch"]) == [1, 2, 3]
    assert result.best_epoch == 1


def test_class_weights_hand_computed():
    labels = [1] * 6 + [2] * 3 + [3]
    # N / (K_present n_k) with N = 10, K_present = 3; absent class 4 -> 0
    np.testing.assert_allclose(class_weights(labels), [10 / 18, 10 / 9, 10 / 3, 0.0])


def test_weighted_loss_uses_balanced_weights(sets, monkeypatch):
    train_set, _ = sets
    subset = train_set.subset(list(range(0, 200, 1))[:10])
    seen = {}
    real = torch.nn.CrossEntropyLoss

    def spy(*args, **kwargs):
        seen.setdefault("weights", []).append(kwargs.get("weight"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", spy)
    train(_fresh_model(), subset, None, **dict(KW, epochs=1))
    counts = np.array([np.sum(subset.labels == c) for c in (1, 2, 3, 4)])
    expected = np.where(counts > 0, 10 / ((counts > 0).sum() * np.maximum(counts, 1)),
                        0)
    np.testing.assert_allclose(seen["weights"][0].numpy(), expected, rtol=1e-6)


def test_dataset_normalises_once_and_augments_reproducibly():
    data, labels = _blobs(16, 5)
    calls = []

    def norm(x):
        calls.append(x.shape)
        return x * 2.0

    ds = LabelledCutouts(data, labels, normalize=norm, augment=True, max_shift=0,
                         seed=7)
    _ = [ds[i] for i in range(len(ds))]
    _ = [ds[i] for i in range(len(ds))]
    assert calls == [data.shape]
    assert ds.tensors.dtype == torch.float32
    x, y = ds[3]
    assert int(y) == labels[3] - 1
    base = torch.from_numpy(data[3] * 2.0)
    variants = [torch.rot90(base, k, dims=(1, 2)) for k in range(4)]
    variants += [torch.rot90(torch.flip(base, dims=(2,)), k, dims=(1, 2))
                 for k in range(4)]
    assert any(torch.allclose(x, v) for v in variants)
    assert torch.equal(ds[3][0], x)  # same epoch, same index -> same transform
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        seen.add(next(i for i, v in enumerate(variants) if torch.allclose(ds[3][0], v)))
    assert len(seen) > 3


def test_band_dropout_and_shift():
    data, labels = _blobs(8, 2)
    ds = LabelledCutouts(data + 10.0, labels, normalize=_identity, augment=True,
                         max_shift=0, band_dropout=1.0)
    for i in range(len(ds)):
        x = ds[i][0]
        zero = [bool(torch.all(x[b] == 0)) for b in range(2)]
        assert sum(zero) == 1
    ds = LabelledCutouts(np.ones((100, 1, 5, 5)), [1] * 100, normalize=_identity,
                         augment=True, max_shift=2)
    zeros = {int((ds[i][0] == 0).sum()) for i in range(100)}
    # a shift (dx, dy) empties 5 |dx| + 5 |dy| - |dx dy| pixels of a 5x5 cutout
    possible = {5 * abs(dx) + 5 * abs(dy) - abs(dx * dy)
                for dx in range(-2, 3) for dy in range(-2, 3)}
    assert zeros <= possible and len(zeros) >= 4


def test_dataset_validation():
    data, labels = _blobs(4, 0)
    with pytest.raises(ValueError, match="masked"):
        LabelledCutouts(data, np.ma.masked_array(labels, [1, 0, 0, 0]),
                        normalize=_identity)
    with pytest.raises(ValueError, match="not in classes"):
        LabelledCutouts(data, [0, 1, 2, 3], normalize=_identity)
    with pytest.raises(ValueError, match="shape"):
        LabelledCutouts(data[0], labels, normalize=_identity)
    ds = LabelledCutouts(np.where(np.arange(SIZE) > 3, np.nan, data), labels,
                         normalize=_identity)
    assert torch.all(torch.isfinite(ds.tensors))


def _field(n_per_class=12, seed=0, shape=(160, 160)):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    gx, gy = np.meshgrid(np.arange(12, nx - 12, 16), np.arange(12, ny - 12, 16))
    pos = np.column_stack([gx.ravel(), gy.ravel()])[: 4 * n_per_class]
    labels = np.repeat([1, 2, 3, 4], n_per_class)
    rng.shuffle(labels)
    yy, xx = np.mgrid[:ny, :nx]
    images = {"F555W": rng.normal(0, 0.2, shape), "F814W": rng.normal(0, 0.2, shape)}
    for (x, y), lab in zip(pos, labels, strict=True):
        sigma = (0.8, 1.6, 2.6, 0.8)[lab - 1]
        g = 3 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        images["F555W"] += g
        images["F814W"] += (1.0, 1.0, 1.0, 0.1)[lab - 1] * g
    table = Table({"x_centroid": pos[:, 0].astype(float),
                   "y_centroid": pos[:, 1].astype(float)})
    table["cluster_class"] = np.ma.masked_array(labels, labels * 0)
    return BandImages(images), table


def test_from_table_drops_unlabelled_and_off_image():
    images, table = _field()
    table["cluster_class"].mask[[0, 5]] = True
    table["x_centroid"][7] = -500.0  # off the image
    with pytest.warns(ClusterClsWarning, match="dropped 2 unlabelled rows and 1"):
        ds = LabelledCutouts.from_table(table, images, size=SIZE, normalize=_identity)
    assert len(ds) == len(table) - 3
    assert 0 not in ds.indices and 7 not in ds.indices
    np.testing.assert_array_equal(ds.labels,
                                  np.asarray(table["cluster_class"])[ds.indices])
    assert ds.bands == ("F555W", "F814W")
    row = ds.indices[0]
    x, y = int(table["x_centroid"][row]), int(table["y_centroid"][row])
    np.testing.assert_allclose(ds.tensors[0, 0].numpy(),
                               images["F555W"].data[y - 4:y + 5, x - 4:x + 5],
                               rtol=1e-6)


def test_fine_tune_module(tmp_path):
    images, table = _field()
    model = _fresh_model()
    model.clustercls_meta = {"cutout_size": SIZE, "bands": ["F555W", "F814W"]}
    result = fine_tune(model, table, images, normalize=_identity, epochs=2, lr=1e-2,
                       batch_size=16, device="cpu", amp=False, seed=1,
                       log=tmp_path / "ft.ecsv")
    assert result.config["cutout_size"] == SIZE
    assert len(result.config["val_rows"]) == 8  # round(0.2 * 12) = 2 per class
    assert set(result.config["val_rows"]).isdisjoint(result.config["train_rows"])
    assert len(result.history) == 2
    with pytest.raises(ValueError, match="'size' is needed"):
        fine_tune(_fresh_model(), table, images, normalize=_identity)


def test_fine_tune_save_and_evaluate_with_the_package(tmp_path):
    """get_model -> fine_tune (default normalisation) -> save -> ClusterClassifier."""
    models = pytest.importorskip("astro_clustercls.models")
    classify = pytest.importorskip("astro_clustercls.inference.classifier")
    from astro_clustercls.evaluation.metrics import evaluate

    images, table = _field(n_per_class=6)
    images = BandImages({b: images["F555W"].data for b in
                         ("F275W", "F336W", "F438W", "F555W", "F814W")})
    torch.manual_seed(0)
    model = models.get_model("resnet18", n_bands=5)
    result = fine_tune(model, table, images, size=15, epochs=1, batch_size=16,
                       device="cpu", amp=False)
    assert result.model.clustercls_meta["cutout_size"] == 15
    assert result.model.clustercls_meta["normalization"] == "asinh-v1"
    path = tmp_path / "w.safetensors"
    result.save(path, meta={"label_set": "test"})
    meta = models.read_weights_meta(path)
    assert meta["label_set"] == "test" and meta["recipe"]["epochs"] == 1
    assert "val_loss" in meta["metrics"]["validation"]
    clf = classify.ClusterClassifier("resnet18", weights_path=path, device="cpu")
    report = evaluate(clf, table, images)
    assert report.meta["n_evaluated"] == len(table) == int(report["n"].sum())


def test_stratified_split():
    labels = np.array([1] * 50 + [2] * 10 + [3] * 3 + [4])
    tr, va = stratified_split(labels, 0.2, seed=0)
    assert np.intersect1d(tr, va).size == 0 and tr.size + va.size == labels.size
    assert [int(np.sum(labels[va] == c)) for c in (1, 2, 3, 4)] == [10, 2, 1, 0]
    tr2, va2 = stratified_split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(va, va2)


def test_fit_temperature_recovers_scale():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (4000, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in p]) + 1
    t = fit_temperature(3.0 * z, labels)
    assert abs(t - 3.0) < 0.3


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="device"):
        resolve_device("nonsense")
