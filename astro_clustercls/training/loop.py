# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The training loop (`train`), fine-tuning from a labelled catalog
(`fine_tune`) and batched prediction (`predict_logits`).

Reproducibility: every random choice of epoch ``e`` (shuffling, sampling,
augmentation, dropout) comes from generators seeded with ``(seed, e)`` (and the
object index for augmentation), so two runs with the same seed give identical
weights on CPU, a run resumed from a checkpoint continues exactly as the
uninterrupted run would have, and the result does not depend on
``num_workers``.
"""

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from astropy.table import QTable

from .._constants import CLASSES
from ..models import get_model, save_weights
from ..preprocessing import DEFAULT_RECIPE
from ..runtime import resolve_precision, torch_device, tta_probabilities
from ..utils._files import atomic_write
from ..utils._meta import get_meta
from ..utils._parameters import validate_choice, validate_positive_int
from ..utils._progress_bars import add_progress_bar
from ..utils.exceptions import ClusterClsWarning
from .dataset import (
    LabelledCutouts,
    _seed_for,
    class_weights,
    stratified_split,
)

__all__ = ["TrainResult", "train", "fine_tune", "predict_logits"]

_CHECKPOINT_VERSION = 1


# ----------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """
    The outcome of `train` / `fine_tune`.

    Attributes
    ----------
    model : torch.nn.Module
        The network with the weights of the best epoch (lowest validation
        loss; the last epoch without validation set), in eval mode.
    history : `~astropy.table.QTable`
        One row per epoch (see `train`'s ``log``).
    best_epoch : int
        1-based epoch of ``model``'s weights.
    stopped_early : bool
        Whether early stopping ended the run.
    best_val_loss : float
        Validation loss of the best epoch (NaN without validation set).
    config : dict
        The training settings (plain types), for a model card.
    """

    model: torch.nn.Module
    history: QTable
    best_epoch: int
    stopped_early: bool
    best_val_loss: float = float("nan")
    config: dict = field(default_factory=dict)

    def save(self, path, *, meta=None, fp16=True):
        """
        Write ``model``'s weights as safetensors with their meta.

        The meta is ``model.clustercls_meta`` (when present), then ``recipe``
        (the training settings and best epoch) and the validation figures of
        the best epoch under ``metrics['validation']``, updated with ``meta``;
        it must end up with ``bands``, ``cutout_size`` and ``normalization``
        so that `~astro_clustercls.models.get_model` and
        `~astro_clustercls.ClusterClassifier` can use the file
        (``weights_path=``).

        Parameters
        ----------
        path : str or path-like
            Output file (``*.safetensors``).
        meta : dict, optional
            Extra or overriding meta (e.g. ``label_set``, ``training_data``).
        fp16 : bool, optional
            Store float16 tensors (default).

        Returns
        -------
        str
            SHA-256 of the written file.
        """
        info = dict(getattr(self.model, "clustercls_meta", None) or {})
        recipe = info.get("recipe") if isinstance(info.get("recipe"), dict) else {}
        info["recipe"] = {**recipe, **self.config, "best_epoch": int(self.best_epoch)}
        if len(self.history) and self.best_epoch:
            row = self.history[int(self.best_epoch) - 1]
            val = {name: float(row[name]) for name in self.history.colnames
                   if name.startswith("val_") and np.isfinite(float(row[name]))}
            if val:
                metrics = dict(info.get("metrics") or {})
                metrics["validation"] = val
                info["metrics"] = metrics
        info.update(meta or {})
        missing = [k for k in ("bands", "cutout_size", "normalization")
                   if info.get(k) is None]
        if missing:
            raise ValueError(f"the weights' meta lacks {missing}: pass them in 'meta'")
        info.pop("sha256", None)
        # the OOD statistics of the weights trained from belong to those
        # weights, not to these (refit: astro-clustercls experiments ood)
        info.pop("ood", None)
        return save_weights(self.model, path, info, fp16=fp16)


def _amp_dtype(amp, device):
    """
    The autocast dtype of training and prediction (None: float32).

    ``'auto'`` is `~astro_clustercls.runtime.resolve_precision`'s choice, as
    for the classifier, but only bfloat16 is used (float16 training would need
    loss scaling): where the classifier would run float16, training runs
    float32. True or 'bf16' ask for bfloat16 on the CPU or CUDA.
    """
    if amp is False or amp is None:
        return None
    if amp not in (True, "auto", "bf16", "bfloat16"):
        raise ValueError(f"'amp' must be 'auto', True, False or 'bf16', got {amp!r}")
    if device.type not in ("cpu", "cuda"):
        return None
    if amp == "auto" and resolve_precision("auto", device) != "bf16":
        return None
    return torch.bfloat16


def _atomic_save(obj, path):
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _atomic_write_table(table, path):
    atomic_write(path, lambda tmp: table.write(tmp, format="ascii.ecsv",
                                               overwrite=True))


def _clone_state(model):
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _history_table(history, classes):
    table = QTable()
    for key, values in history.items():
        table[key] = np.asarray(values)
    table.meta["classes"] = [int(c) for c in classes]
    return table


def _run_eval(model, loader, device, criterion, amp_dtype, channels_last, k):
    model.eval()
    total, n = 0.0, 0
    cm = np.zeros((k, k), dtype=np.int64)
    with torch.no_grad():
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                                enabled=amp_dtype is not None):
                logits = model(x)
            loss = criterion(logits.float(), y)
            total += float(loss) * y.shape[0]
            n += y.shape[0]
            pred = logits.argmax(dim=1).cpu().numpy()
            np.add.at(cm, (y.cpu().numpy(), pred), 1)
    return total / max(n, 1), cm


def train(model, train_set, val_set=None, *, epochs=20, batch_size=128, lr=1e-3,
          weight_decay=1e-4, optimizer="adamw", momentum=0.9, schedule="cosine",
          class_balance="weighted_loss", early_stopping=5, seed=0, device=None,
          checkpoint=None, resume=False, log=None, progress_bar=None,
          channels_last=True, amp="auto", num_workers=0, fused=None):
    """
    Train a network on a `LabelledCutouts` set.

    Parameters
    ----------
    model : torch.nn.Module
        The network (outputs one logit per class of ``train_set.classes``).
        It is trained in place and returned with the best weights.
    train_set : `LabelledCutouts`
        Training data (its ``augment`` setting is used).
    val_set : `LabelledCutouts`, optional
        Validation data (augmentation off in evaluation is up to the caller:
        use ``subset(..., augment=False)``); needed for early stopping and the
        choice of the best epoch.
    epochs : int, optional
        Maximum number of epochs (default 20).
    batch_size : int, optional
        Default 128.
    lr, weight_decay : float, optional
        Learning rate (default 1e-3) and weight decay (default 1e-4).
    optimizer : {'adamw', 'sgd'}, optional
        AdamW (default) or SGD with ``momentum`` (Nesterov). Wei et al. 2020
        do not state theirs.
    momentum : float, optional
        SGD momentum (default 0.9).
    schedule : {'cosine', 'step', None}, optional
        Cosine decay to 0 over ``epochs`` (default), step decay (x0.1 at 1/3
        and 2/3 of the epochs), or a constant rate.
    class_balance : {'weighted_loss', 'sampler', None}, optional
        Balanced class weights in the cross-entropy (default, see
        `class_weights`), or a sampler drawing every class equally often, or
        nothing. With either, the validation loss uses the same balanced
        weights, so early stopping watches a class-balanced figure.
    early_stopping : int or None, optional
        Stop after this many epochs without a lower validation loss (default
        5); None or 0 to run all epochs.
    seed : int, optional
        Seed of shuffling, sampling, augmentation and dropout (default 0).
        The model's initial weights are the caller's: seed torch before
        building it. torch's global generator is re-seeded at every epoch
        (from ``seed`` and the epoch).
    device : str or torch.device, optional
        None: ``conf.device``; 'auto': cuda if available, else cpu.
    checkpoint : str or path-like, optional
        File written (atomically: temporary file + `os.replace`) before the
        first epoch and after every epoch with the model, optimizer,
        scheduler and RNG states, the epoch (0 before the first),
        the best weights so far and the history. It holds tensors and plain
        Python types only and loads with ``torch.load(weights_only=True)``.
    resume : bool, optional
        Continue from ``checkpoint`` if it exists (the run then ends exactly
        as the uninterrupted run would have).
    log : str or path-like, optional
        ECSV file rewritten after every epoch with the history: ``epoch``,
        ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
        ``val_balanced_acc``, ``val_recall_<class>`` per class, ``lr``,
        ``seconds``.
    progress_bar : bool or None, optional
        tqdm bar over the batches of each epoch. None (default):
        ``astro_clustercls.conf.progress_bar``, whose default None is auto (a
        bar when standard error is a terminal).
    channels_last : bool, optional
        Use the channels-last memory format (faster convolutions on CPU and
        on recent GPUs; default True).
    amp : {'auto', True, False, 'bf16'}, optional
        bfloat16 autocast of the forward pass (weights, optimizer and loss
        stay float32). 'auto' (default): on CUDA when it supports bf16; on CPU
        when oneDNN has native bf16 (AVX512-BF16 / AMX), where it is faster.
        bf16 keeps the 8-bit exponent of float32, so no loss scaling is
        needed. Reproducibility of bf16 on CPU depends on oneDNN's kernels:
        with one thread (``torch.set_num_threads(1)``) and 51-px cutouts, runs
        with a seed were bit-identical (measured for ResNet18 and VGG19-BN);
        with several threads, or 15-px cutouts even on one thread, they
        differed in the last bits of some weights. ``amp=False`` is
        bit-reproducible.
    num_workers : int, optional
        DataLoader worker processes (default 0: in the main process).
    fused : bool or None, optional
        Use torch's fused (one kernel for all parameters) optimizer step. The
        default, None, uses it on CPU and CUDA: AdamW's step on ResNet18 takes
        10 ms instead of 44 ms on one CPU core (measured). Fused and unfused
        steps differ in rounding, so pass ``fused=False`` to reproduce a run
        made without it (the bundled recipes record their choice).

    Returns
    -------
    `TrainResult`

    Raises
    ------
    ValueError
        For invalid settings, or a checkpoint that does not fit the model.
    KeyboardInterrupt
        Re-raised after an interrupt; the checkpoint of the last complete
        epoch stays valid (and no temporary file is left), so ``resume=True``
        continues from it.
    """
    epochs = validate_positive_int("epochs", epochs)
    batch_size = validate_positive_int("batch_size", batch_size)
    optimizer_name = validate_choice("optimizer", optimizer, ("adamw", "sgd"))
    schedule = validate_choice("schedule", schedule, ("cosine", "step", None))
    class_balance = validate_choice("class_balance", class_balance,
                                    ("weighted_loss", "sampler", None))
    if early_stopping is not None and (isinstance(early_stopping, bool)
                                       or early_stopping < 0):
        raise ValueError(f"'early_stopping' must be a patience >= 0 or None, got "
                         f"{early_stopping!r}")
    patience = int(early_stopping) if early_stopping else 0
    if patience and val_set is None:
        patience = 0
    if resume and checkpoint is None:
        raise ValueError("'resume' needs a 'checkpoint' path")
    for name, ds in (("train_set", train_set), ("val_set", val_set)):
        if ds is not None and not isinstance(ds, torch.utils.data.Dataset):
            raise TypeError(f"{name!r} must be a LabelledCutouts (torch Dataset)")
    device = torch_device(device)
    amp_dtype = _amp_dtype(amp, device)
    classes = np.asarray(getattr(train_set, "classes", CLASSES))
    k = classes.size
    train_labels = np.asarray(train_set.labels)

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    weights = torch.as_tensor(class_weights(train_labels, classes=classes),
                              dtype=torch.float32, device=device)
    criterion = torch.nn.CrossEntropyLoss(
        weight=weights if class_balance == "weighted_loss" else None)
    val_criterion = torch.nn.CrossEntropyLoss(
        weight=weights if class_balance is not None else None)

    params = [p for p in model.parameters() if p.requires_grad]
    if fused is None:
        fused = device.type in ("cpu", "cuda")
    elif not isinstance(fused, (bool, np.bool_)):
        raise TypeError(f"'fused' must be True, False or None, got {fused!r}")
    fused = bool(fused) or None  # torch: None picks its (unfused) default
    if optimizer_name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0,
                              weight_decay=weight_decay, fused=fused)
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    elif schedule == "step":
        step = max(1, math.ceil(epochs / 3))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=0.1)
    else:
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)

    config = {"epochs": epochs, "batch_size": batch_size, "lr": float(lr),
              "weight_decay": float(weight_decay), "optimizer": optimizer_name,
              "momentum": float(momentum), "schedule": str(schedule),
              "class_balance": str(class_balance), "early_stopping": patience,
              "seed": int(seed), "amp": str(amp_dtype),
              "channels_last": bool(channels_last), "fused": bool(fused),
              "classes": [int(c) for c in classes],
              "n_train": len(train_set), "n_val": len(val_set) if val_set else 0}
    keys = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc",
            "val_balanced_acc"] + [f"val_recall_{int(c)}" for c in classes] + \
        ["lr", "seconds"]
    history = {key: [] for key in keys}
    best_state, best_epoch, best_loss, bad_epochs = None, 0, float("inf"), 0
    start_epoch = 1
    stopped_early = False

    if resume and Path(checkpoint).exists():
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if ckpt.get("version") != _CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint {str(checkpoint)!r} has an unknown format")
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {str(checkpoint)!r} does not fit the model: "
                             f"{exc}") from None
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        history = {key: list(ckpt["history"].get(key, [])) for key in keys}
        best_state = ckpt["best_state"]
        best_epoch = int(ckpt["best_epoch"])
        best_loss = float(ckpt["best_val_loss"])
        bad_epochs = int(ckpt["bad_epochs"])
        stopped_early = bool(ckpt.get("stopped_early", False))
        start_epoch = int(ckpt["epoch"]) + 1
        if ckpt.get("config", {}).get("epochs") not in (None, epochs) \
                or ckpt.get("config", {}).get("seed") not in (None, int(seed)):
            warnings.warn("resuming with different 'epochs' or 'seed' than the "
                          "checkpoint's: the run will not match an uninterrupted one",
                          ClusterClsWarning)
    elif resume:
        warnings.warn(f"no checkpoint at {str(checkpoint)!r}: starting from epoch 1",
                      ClusterClsWarning)

    val_loader = None
    if val_set is not None:
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=batch_size,
                                                 shuffle=False, num_workers=num_workers)

    def save(epoch):
        state = {"version": _CHECKPOINT_VERSION, "epoch": epoch,
                 "model": _clone_state(model), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "history": history,
                 "best_state": best_state, "best_epoch": best_epoch,
                 "best_val_loss": best_loss, "bad_epochs": bad_epochs,
                 "stopped_early": stopped_early, "config": config,
                 "rng": {"torch": torch.get_rng_state()}}
        _atomic_save(state, checkpoint)

    if checkpoint is not None and start_epoch == 1:
        # the starting point: a run interrupted in its first epoch resumes from
        # these weights, not from those the interrupted epoch had changed
        save(0)
    epoch = start_epoch
    if stopped_early:
        epoch = epochs + 1  # a finished run: nothing to do
    while epoch <= epochs:
        t0 = time.perf_counter()
        torch.manual_seed(_seed_for(seed, epoch, 1))
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        gen = torch.Generator().manual_seed(_seed_for(seed, epoch, 2))
        if class_balance == "sampler":
            w = weights.cpu().numpy()[np.searchsorted(classes, train_labels)]
            sampler = torch.utils.data.WeightedRandomSampler(
                torch.as_tensor(w, dtype=torch.double), num_samples=len(train_set),
                replacement=True, generator=gen)
            loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size,
                                                 sampler=sampler,
                                                 num_workers=num_workers)
        else:
            loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size,
                                                 shuffle=True, generator=gen,
                                                 num_workers=num_workers)
        model.train()
        total, correct, n = 0.0, 0, 0
        batches = add_progress_bar(loader, desc=f"epoch {epoch}/{epochs}",
                                   total=len(loader), progress_bar=progress_bar)
        for x, y in batches:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                                enabled=amp_dtype is not None):
                logits = model(x)
            loss = criterion(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * y.shape[0]
            correct += int((logits.detach().argmax(dim=1) == y).sum())
            n += y.shape[0]
        lr_now = opt.param_groups[0]["lr"]
        sched.step()

        row = {"epoch": epoch, "train_loss": total / max(n, 1),
               "train_acc": correct / max(n, 1), "lr": lr_now}
        if val_loader is not None:
            vloss, cm = _run_eval(model, val_loader, device, val_criterion, amp_dtype,
                                  channels_last, k)
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = np.diagonal(cm) / cm.sum(axis=1)
            row.update(val_loss=vloss, val_acc=float(np.trace(cm) / max(cm.sum(), 1)),
                       val_balanced_acc=float(np.nanmean(recall))
                       if np.any(np.isfinite(recall)) else float("nan"))
            for c, r in zip(classes, recall, strict=True):
                row[f"val_recall_{int(c)}"] = float(r)
            if vloss < best_loss:
                best_loss, best_epoch, bad_epochs = vloss, epoch, 0
                best_state = _clone_state(model)
            else:
                bad_epochs += 1
        else:
            row.update(val_loss=float("nan"), val_acc=float("nan"),
                       val_balanced_acc=float("nan"),
                       **{f"val_recall_{int(c)}": float("nan") for c in classes})
            best_epoch = epoch
            best_state = None
        row["seconds"] = time.perf_counter() - t0
        for key in keys:
            history[key].append(row[key])
        if patience and bad_epochs >= patience:
            stopped_early = True
        if checkpoint is not None:
            save(epoch)
        if log is not None:
            _atomic_write_table(_history_table(history, classes), log)
        if stopped_early:
            break
        epoch += 1

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    table = _history_table(history, classes)
    table.meta.update(get_meta(training=config, best_epoch=best_epoch,
                               stopped_early=stopped_early))
    return TrainResult(model=model, history=table, best_epoch=best_epoch,
                       stopped_early=stopped_early,
                       best_val_loss=best_loss if val_set is not None else float("nan"),
                       config=config)


def fine_tune(model_or_name, sources, images, *, label_col="cluster_class",
              weights="DEFAULT", size=None, bands=None, normalize=None,
              classes=CLASSES, val_fraction=0.2, val_sources=None, augment=True,
              max_shift=1, band_dropout=0.0, seed=0, epochs=10, lr=1e-4,
              xcol=None, ycol=None, skycol=None, origin=0, **train_kwargs):
    """
    Fine-tune a network on a user's labelled catalog and images.

    Parameters
    ----------
    model_or_name : torch.nn.Module or str
        A network (e.g. from `astro_clustercls.models.build_network` for
        training from ImageNet or from scratch), or a registered model name
        loaded with ``astro_clustercls.models.get_model(name, weights=weights)``.
    sources : `~astropy.table.Table`
        Positions and labels (e.g. from `~astro_clustercls.data.catalogs.read_legus`).
    images : `~astro_clustercls.BandImages`
        The images, with the bands the network expects.
    label_col : str, optional
        Label column (default ``'cluster_class'``; masked rows are dropped).
    weights : str, optional
        Weights of a named model (default ``'DEFAULT'``).
    size, bands, normalize : optional
        Cutout side, band order and normalisation. Default: from the model's
        ``clustercls_meta`` (``cutout_size``, ``bands``, ``normalization``)
        when present; ``size`` is required otherwise.
    classes : sequence of int, optional
        Default 1..4.
    val_fraction : float, optional
        Fraction of each class held out for validation (default 0.2;
        stratified, seeded with ``seed``). Ignored with ``val_sources``.
    val_sources : `~astropy.table.Table`, optional
        A separate validation table (e.g. another galaxy) on the same images.
    augment, max_shift, band_dropout : optional
        Augmentation of the training set (see `LabelledCutouts`).
    seed : int, optional
        Seed of the split and of `train`.
    epochs, lr : optional
        Defaults for fine-tuning: 10 epochs, lr 1e-4.
    xcol, ycol, skycol, origin
        Position columns (see `~astro_clustercls.make_cutouts`).
    **train_kwargs
        Passed to `train` (``batch_size``, ``checkpoint``, ``log``, ...).

    Returns
    -------
    `TrainResult`
        ``config`` also records the cutout size, bands, normalisation, label
        column and the rows used for training and validation.
    """
    if isinstance(model_or_name, str):
        model = get_model(model_or_name, weights=weights)
    elif isinstance(model_or_name, torch.nn.Module):
        model = model_or_name
    else:
        raise TypeError(f"'model_or_name' must be a torch.nn.Module or a model name, "
                        f"got {type(model_or_name).__name__}")
    meta = dict(getattr(model, "clustercls_meta", None) or {})
    if size is None:
        size = meta.get("cutout_size")
        if size is None:
            raise ValueError("'size' is needed: the model has no clustercls_meta "
                             "with a 'cutout_size'")
    if bands is None:
        bands = meta.get("bands")
        if bands is not None:
            bands = [b for b in bands]
    if normalize is None and meta.get("normalization"):
        normalize = meta["normalization"]
    common = dict(size=int(size), label_col=label_col, classes=classes, bands=bands,
                  normalize=normalize, xcol=xcol, ycol=ycol, skycol=skycol,
                  origin=origin, seed=seed)
    full = LabelledCutouts.from_table(sources, images, augment=augment,
                                      max_shift=max_shift, band_dropout=band_dropout,
                                      **common)
    if val_sources is not None:
        train_set = full
        val_set = LabelledCutouts.from_table(val_sources, images, augment=False,
                                             **common)
    else:
        tr, va = stratified_split(full.labels, val_fraction, seed=seed)
        train_set = full.subset(tr)
        val_set = full.subset(va, augment=False) if va.size else None
    result = train(model, train_set, val_set, epochs=epochs, lr=lr, seed=seed,
                   **train_kwargs)
    result.config.update(cutout_size=int(size),
                         bands=list(full.bands) if full.bands else None,
                         normalization=str(full.normalization), label_col=label_col,
                         train_rows=train_set.indices.tolist(),
                         val_rows=val_set.indices.tolist() if val_set else [])
    # what a saved file needs to be used again (see TrainResult.save)
    info = dict(getattr(result.model, "clustercls_meta", None) or {})
    info.update(cutout_size=int(size),
                bands=list(full.bands) if full.bands else info.get("bands"))
    if normalize is None:
        info["normalization"] = DEFAULT_RECIPE
    elif isinstance(normalize, str) and normalize != "identity":
        info["normalization"] = normalize
    else:  # a callable cannot be recorded: TrainResult.save then asks for it
        info["normalization"] = None
    result.model.clustercls_meta = info
    return result


def predict_logits(model, dataset, *, batch_size=256, device=None, tta=False,
                   temperature=1.0, amp=False, channels_last=False):
    """
    Network outputs (logits) for every item of a dataset, in order.

    Parameters
    ----------
    model : torch.nn.Module
        The network (put in eval mode).
    dataset : `LabelledCutouts` or torch.Tensor (N, B, S, S)
        Normalised cutouts; a dataset's augmentation is not applied.
    batch_size : int, optional
        Default 256.
    device : str or torch.device, optional
        See `~astro_clustercls.runtime.resolve_device`.
    tta : bool, optional
        Test-time augmentation with the package's convention
        (`~astro_clustercls.runtime.tta_probabilities`): the class
        probabilities ``softmax(logits / temperature)`` are averaged over the
        8 rotations/flips, and their logarithm is returned, so that
        ``softmax`` of the result gives them back (what
        ``ClusterClassifier(tta=True)`` reports).
    temperature : float, optional
        Only with ``tta``: the temperature of the averaged probabilities
        (default 1). Without ``tta`` the raw logits are returned.
    amp, channels_last : optional
        As in `train` (both off by default).

    Returns
    -------
    ndarray, shape (N, K), float32
        Logits; class probabilities are ``softmax(logits / T)`` with the
        temperature T of `fit_temperature` (1 when not calibrated).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from astro_clustercls.training import LabelledCutouts, predict_logits
    >>> ds = LabelledCutouts(np.ones((3, 1, 5, 5)), [1, 2, 3], normalize='identity',
    ...                      classes=(1, 2, 3))
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(25, 3))
    >>> predict_logits(net, ds, device='cpu').shape
    (3, 3)
    """
    batch_size = validate_positive_int("batch_size", batch_size)
    device = torch_device(device)
    amp_dtype = _amp_dtype(amp, device)
    tensors = dataset.tensors if hasattr(dataset, "tensors") else torch.as_tensor(
        np.asarray(dataset, dtype=np.float32))
    model.to(device).eval()
    out = []

    def logits_of(v):
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            return model(v).float()

    with torch.no_grad():
        for start in range(0, tensors.shape[0], batch_size):
            x = tensors[start:start + batch_size].to(device)
            if tta:
                logits = torch.log(tta_probabilities(logits_of, x,
                                                     temperature=temperature))
            else:
                logits = logits_of(x)
            out.append(logits.cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)
