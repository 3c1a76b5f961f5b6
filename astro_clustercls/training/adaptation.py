# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Adapt a network to one's own field: `adapt`.

The bundled networks were trained on simulated galaxies; a new galaxy differs
in distance, depth, background, crowding and PSF, and that costs accuracy
(see the paper-experiments tutorial: fine-tuning on objects made in the
held-out galaxy's conditions gained 5 points overall). Without labels from the
new galaxy, `adapt` makes them: it injects simulated objects of all four
classes into the user's own images with
`~astro_clustercls.simulation.inject` (so they sit on the real background,
noise and crowding, with the band set, PSFs and distance the user gives),
cuts their cutouts, holds back a fraction of them, fine-tunes the network on
the rest with `~astro_clustercls.training.train`, and reports the per-class
recall of the network before and after on the held-back objects.

Objects are injected in rounds, each into a window of the field (a copy of
that window only, so mosaics larger than memory work), at most one object per
``spacing`` x ``spacing`` pixels, so the injected objects do not crowd the
field more than it is. Everything random comes from ``seed``.
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from astropy.table import MaskedColumn, QTable

from .._constants import CLASS_NAMES, CLASSES
from ..data.cutouts import make_cutouts
from ..data.images import bands_of, normalize_band_name
from ..evaluation.metrics import per_class_accuracy
from ..models import get_model
from ..preprocessing import normalize
from ..simulation import inject
from ..simulation.psf import MoffatPSF
from ..utils._files import atomic_write
from ..utils._meta import get_meta
from ..utils._parameters import validate_positive_int
from ..utils._progress_bars import add_progress_bar
from .calibration import fit_temperature
from .dataset import DEFAULT_DROP_FLAGS, LabelledCutouts, stratified_split
from .loop import TrainResult, predict_logits, train

__all__ = ["adapt", "AdaptResult", "ADAPT_DEFAULTS", "format_report"]

#: defaults sized for a CPU (about 7 minutes on one core with the bundled ResNet18)
ADAPT_DEFAULTS = {"n_objects": 4000, "epochs": 3, "lr": 1e-4, "batch_size": 64,
                  "test_fraction": 0.25, "window": 512, "spacing": 50}

_DATA_FILE, _OBJECTS_FILE, _SETTINGS_FILE = "injected.npy", "objects.ecsv", \
    "settings.json"


@dataclass
class AdaptResult:
    """
    The outcome of `adapt`.

    Attributes
    ----------
    model : torch.nn.Module
        The fine-tuned network (eval mode), its ``clustercls_meta`` updated.
    report : `~astropy.table.QTable`
        One row per class: ``class``, ``name``, ``n_train``, ``n_test``,
        ``recall_before``, ``recall_after``, ``change`` (recall on the
        held-back injected objects, before and after); ``meta`` holds the
        overall and balanced accuracy before and after and the settings.
    objects : `~astropy.table.QTable`
        The injected objects: ``round``, ``x_centroid``, ``y_centroid``
        (0-based pixels of the field), ``cluster_class``, ``subtype``,
        ``split`` (``'train'`` or ``'test'``) and, for the held-back ones,
        ``class_before`` and ``class_after``.
    train_result : `~astro_clustercls.training.TrainResult`
        The fine-tuning run (history per epoch).
    weights_meta : dict
        The meta `save` writes with the weights.
    """

    model: torch.nn.Module
    report: QTable
    objects: QTable
    train_result: TrainResult
    weights_meta: dict = field(default_factory=dict)

    def save(self, path, *, meta=None):
        """
        Write the adapted weights (safetensors) with their meta; return the SHA-256.

        Classify with them through ``ClusterClassifier(model,
        weights_path=path)`` or ``astro-clustercls classify --weights-path``.
        """
        return self.train_result.save(path, meta={**self.weights_meta,
                                                  **dict(meta or {})})

    def summary(self):
        """The report as printable lines (per-class recall before and after)."""
        return format_report(self.report)


def format_report(report):
    """Lines of text for an `adapt` report table."""
    meta = report.meta.get("adapt", {})
    lines = [f"  {'class':>5s}  {'name':<34s} {'train':>6s} {'test':>5s} "
             f"{'before':>7s} {'after':>7s} {'change':>7s}"]
    for row in report:
        lines.append(f"  {int(row['class']):>5d}  {row['name']:<34s} "
                     f"{int(row['n_train']):>6d} {int(row['n_test']):>5d} "
                     f"{row['recall_before']:>7.2f} {row['recall_after']:>7.2f} "
                     f"{row['change']:>+7.2f}")
    if meta:
        lines.append(f"  {'all':>5s}  {'(overall accuracy)':<34s} "
                     f"{int(np.sum(report['n_train'])):>6d} "
                     f"{int(np.sum(report['n_test'])):>5d} "
                     f"{meta['accuracy_before']:>7.2f} {meta['accuracy_after']:>7.2f} "
                     f"{meta['accuracy_after'] - meta['accuracy_before']:>+7.2f}")
        lines.append(f"  {'':>5s}  {'(balanced: mean of the recalls)':<34s} "
                     f"{'':>6s} {'':>5s} {meta['balanced_before']:>7.2f} "
                     f"{meta['balanced_after']:>7.2f} "
                     f"{meta['balanced_after'] - meta['balanced_before']:>+7.2f}")
    return lines


def _psfs(psfs, bands):
    """``{image band: MoffatPSF}`` from PSFs or core FWHMs in arcsec (None: default)."""
    if psfs is None:
        return None
    if not isinstance(psfs, dict):
        raise TypeError(f"'psfs' must be a dict band -> MoffatPSF or FWHM in arcsec, "
                        f"got {type(psfs).__name__}")
    out = {}
    for band, psf in psfs.items():
        name = normalize_band_name(band)
        if name not in bands:
            raise ValueError(f"'psfs' names band {band!r}, which is not among the "
                             f"bands used {list(bands)}")
        if isinstance(psf, MoffatPSF):
            out[name] = psf
        else:
            try:
                out[name] = MoffatPSF(float(psf))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"'psfs'[{band!r}] must be a MoffatPSF or a core "
                                 f"FWHM in arcsec, got {psf!r} ({exc})") from None
    return out


def _image_bands(images, net_bands, bands):
    """The image band feeding each network band (``bands``: {network: image})."""
    mapping = {b: b for b in net_bands}
    for key, value in (bands or {}).items():
        net = normalize_band_name(key)
        if net not in mapping:
            raise ValueError(f"'bands' maps {key!r}, which is not a band of the "
                             f"network; its bands are {tuple(net_bands)}")
        mapping[net] = normalize_band_name(value)
    missing = [f"{net}" + (f" (as {img})" if img != net else "")
               for net, img in mapping.items() if img not in images.bands]
    if missing:
        raise ValueError(f"the images lack band(s) {', '.join(missing)} that the "
                         f"network needs (its bands: {tuple(net_bands)}; the images': "
                         f"{images.bands}). Substitute bands with "
                         "bands={network_band: image_band}")
    return [mapping[b] for b in net_bands]


def _window(images, size, rng, bands):
    """A random window ``(yslice, xslice)`` mostly on finite pixels of every band."""
    ny, nx = images.shape
    wy, wx = min(size, ny), min(size, nx)
    for _ in range(100):
        y0 = int(rng.integers(0, ny - wy + 1))
        x0 = int(rng.integers(0, nx - wx + 1))
        ys, xs = slice(y0, y0 + wy), slice(x0, x0 + wx)
        finite = np.ones((wy, wx), bool)
        for band in bands:
            finite &= np.isfinite(np.asarray(images[band].data[ys, xs]))
        if finite.mean() >= 0.5:
            return ys, xs
    raise ValueError("could not find a window of the images that is at least half "
                     "finite pixels in every band")


def _settings_key(settings):
    return json.dumps(settings, sort_keys=True, default=str)


def _inject_objects(images, used, net_size, recipe, *, n_objects, classes, distance,
                    psfs, conditions, params, window, spacing, seed, progress_bar):
    """Inject in rounds; return normalised cutouts (N, B, S, S) and the objects."""
    half = net_size // 2
    window = max(int(window), 2 * (half + 2) + 1)
    wy, wx = (min(window, s) for s in images.shape)
    per_round = max(1, int(round((wy - 2 * half) * (wx - 2 * half) / spacing**2)))
    n_rounds = math.ceil(n_objects / per_round)
    # the classes of all objects first (equal numbers, shuffled), then one
    # generator per round: round r is the same whatever n_objects
    first, *children = np.random.SeedSequence(seed).spawn(n_rounds + 1)
    sequence = np.random.default_rng(first).permutation(
        np.resize(np.asarray(classes, dtype=np.int64), n_objects))
    sub = images.select(used)
    data, rows = [], []
    for r in add_progress_bar(range(n_rounds), desc="inject", total=n_rounds,
                              progress_bar=progress_bar):
        rng = np.random.default_rng(children[r])
        k = min(per_round, n_objects - r * per_round)
        ys, xs = _window(sub, window, rng, used)
        start = r * per_round
        new, truth = inject(sub.window(ys, xs), n=k,
                            classes=sequence[start:start + k], seed=rng,
                            distance=distance, psfs=psfs, conditions=conditions,
                            params=params, border=half + 1,
                            min_separation=0.5 * spacing)
        xy = np.column_stack([np.asarray(truth["x_centroid"], float),
                              np.asarray(truth["y_centroid"], float)])
        stack = make_cutouts(new, xy, net_size, bands=used)
        keep = (np.asarray(stack.flags) & DEFAULT_DROP_FLAGS) == 0
        normed = np.asarray(normalize(stack.data[keep], recipe), dtype=np.float32)
        data.append(np.nan_to_num(normed, nan=0.0, posinf=0.0, neginf=0.0))
        part = QTable()
        part["round"] = np.full(int(keep.sum()), r, dtype=np.int64)
        part["x_centroid"] = xy[keep, 0] + xs.start
        part["y_centroid"] = xy[keep, 1] + ys.start
        part["cluster_class"] = np.asarray(truth["cluster_class"], np.int64)[keep]
        part["subtype"] = np.asarray(truth["subtype"]).astype(str)[keep]
        part["cutout_flags"] = np.asarray(stack.flags, np.int32)[keep]
        rows.append(part)
    objects = QTable()
    for name in rows[0].colnames:
        objects[name] = np.concatenate([np.asarray(p[name]) for p in rows])
    return np.concatenate(data), objects


def _save_array(path, array):
    with open(path, "wb") as fh:  # np.save(path) would append '.npy'
        np.save(fh, array)


def _predict(model, tensors, batch_size, device):
    """Logits of normalised cutouts (fp32, no augmentation)."""
    return predict_logits(model, tensors, batch_size=max(batch_size, 128),
                          device=device)


def adapt(images, model="resnet18", *, weights=None, weights_path=None, distance=10.0,
          psfs=None, bands=None, conditions=None, params=None, classes=CLASSES,
          n_objects=ADAPT_DEFAULTS["n_objects"], test_fraction=0.25,
          epochs=ADAPT_DEFAULTS["epochs"], lr=ADAPT_DEFAULTS["lr"],
          batch_size=ADAPT_DEFAULTS["batch_size"], window=ADAPT_DEFAULTS["window"],
          spacing=ADAPT_DEFAULTS["spacing"], seed=0, device=None, workdir=None,
          resume=False, progress_bar=None, on_stage=None, **train_kwargs):
    """
    Fine-tune a network to one's own field on simulated objects injected into it.

    Parameters
    ----------
    images : `~astro_clustercls.BandImages` or mapping band -> image
        The field, in electron/s (as drizzled HST images are; a unit-less
        image is taken as electron/s, with a warning), with the bands the
        network needs (or substitutes, see ``bands``).
    model : str, optional
        Network name (default ``'resnet18'``).
    weights, weights_path : optional
        The network to start from: bundled weights (default ``'DEFAULT'``)
        or a weights file (see `~astro_clustercls.models.get_model`).
    distance : float, optional
        Distance of the galaxy, Mpc (default 10): give your galaxy's.
    psfs : dict, optional
        PSF of each image band: a `~astro_clustercls.simulation.MoffatPSF`
        or a core FWHM in arcsec (default: the simulator's drizzled
        WFC3/UVIS PSFs).
    bands : dict, optional
        ``{network_band: image_band}`` substitutions (e.g. ``{'F438W':
        'F435W'}``); the objects are injected with the image band's PSF and
        zeropoint.
    conditions, params : optional
        The simulator's observing conditions (exposure times for the Poisson
        noise of the injected light) and population parameters (see
        `~astro_clustercls.simulation.inject`).
    classes : sequence of int, optional
        Classes to inject, in equal numbers (default 1..4).
    n_objects : int, optional
        Objects to inject in all (default 4000). Objects whose cutout cannot
        be used (e.g. centre on a chip gap) are left out.
    test_fraction : float, optional
        Fraction of each class held back to evaluate (default 0.25); never
        trained on.
    epochs, lr, batch_size : optional
        Fine-tuning: 3 epochs at learning rate 1e-4, batches of 64, all
        layers (default); no early stopping (the held-back objects are for
        the report, not for choosing an epoch).
    window, spacing : int, optional
        Each round injects into one ``window`` x ``window`` pixel window of
        the field (default 512), one object per ``spacing`` x ``spacing``
        pixels (default 50).
    seed : int, optional
        Seed of everything random: windows, objects, split, training
        (default 0). Two runs with the same seed inject the same objects and,
        with ``amp=False`` (a ``train`` option), give the same weights.
    device : str, optional
        Torch device (default ``astro_clustercls.conf.device``).
    workdir : path-like, optional
        Directory for the injected cutouts, the training checkpoint and the
        per-epoch log; with ``resume=True`` an interrupted run continues from
        there (the injection is not redone, training resumes at the last
        complete epoch).
    resume : bool, optional
        Continue the run in ``workdir`` (its settings must be the same).
    progress_bar : bool or None, optional
        Progress bars of the injection and of each epoch (None: auto, on a
        terminal).
    on_stage : callable, optional
        Called with a one-line description of each stage (e.g. ``print``).
    **train_kwargs
        Passed to `~astro_clustercls.training.train` (``amp``, ``optimizer``,
        ``weight_decay``, ...).

    Returns
    -------
    `AdaptResult`
        ``result.save('adapted.safetensors')`` writes the weights;
        ``result.report`` is the per-class recall before and after on the
        held-back objects.

    Raises
    ------
    ValueError
        Missing bands, bad settings, a ``workdir`` holding another run.
    KeyboardInterrupt
        Re-raised; with a ``workdir`` the run resumes with ``resume=True``.

    Notes
    -----
    The temperature of the adapted weights (calibration of the
    probabilities) is fitted on the held-back objects after fine-tuning; it
    changes no class, so the recall figures are unaffected by it.
    """
    t_start = time.perf_counter()
    images = bands_of(images)
    n_objects = validate_positive_int("n_objects", n_objects)
    epochs = validate_positive_int("epochs", epochs)
    batch_size = validate_positive_int("batch_size", batch_size)
    window = validate_positive_int("window", window)
    spacing = validate_positive_int("spacing", spacing)
    if not 0 < test_fraction < 1:
        raise ValueError(f"'test_fraction' must be in (0, 1), got {test_fraction!r}")
    if not (isinstance(distance, (int, float)) and distance > 0):
        raise ValueError(f"'distance' must be a positive number of Mpc, got "
                         f"{distance!r}")
    classes = [int(c) for c in np.atleast_1d(classes)]
    if resume and workdir is None:
        raise ValueError("'resume' needs a 'workdir'")
    stage = on_stage or (lambda message: None)

    if weights is None and weights_path is None:
        weights = "DEFAULT"
    stage(f"loading network {model} "
          f"({'weights file ' + str(weights_path) if weights_path else weights})")
    net = get_model(model, weights=weights, weights_path=weights_path)
    base = dict(net.clustercls_meta)
    net_bands = [normalize_band_name(b) for b in base["bands"]]
    size = int(base["cutout_size"])
    recipe = base["normalization"]
    used = _image_bands(images, net_bands, bands)
    psf_map = _psfs(psfs, used)

    settings = {"model": model, "weights_sha256": base.get("sha256"),
                "n_objects": n_objects, "classes": classes, "distance": float(distance),
                "psf_fwhm": ({b: p.fwhm for b, p in psf_map.items()}
                             if psf_map else None),
                "image_bands": used, "network_bands": net_bands,
                "image_shape": list(images.shape), "window": window,
                "spacing": spacing, "test_fraction": float(test_fraction),
                "seed": int(seed), "cutout_size": size, "normalization": recipe}
    files = None
    if workdir is not None:
        workdir = Path(workdir).expanduser()
        workdir.mkdir(parents=True, exist_ok=True)
        files = {k: workdir / v for k, v in (("data", _DATA_FILE),
                                            ("objects", _OBJECTS_FILE),
                                            ("settings", _SETTINGS_FILE))}
    cached = (resume and files is not None
              and all(p.exists() for p in files.values()))
    if cached:
        saved = json.loads(files["settings"].read_text(encoding="utf-8"))
        if _settings_key(saved) != _settings_key(settings):
            raise ValueError(f"'workdir' {workdir} holds a run with other settings; "
                             "use another workdir, or start afresh without resume")
        stage(f"resuming: {n_objects} injected objects read from {workdir}")
        data = np.load(files["data"], mmap_mode=None)
        objects = QTable.read(files["objects"])
    else:
        stage(f"injecting {n_objects} simulated objects of classes "
              f"{', '.join(map(str, classes))} at {distance:g} Mpc into the images "
              f"({', '.join(used)})")
        data, objects = _inject_objects(
            images, used, size, recipe, n_objects=n_objects, classes=classes,
            distance=float(distance), psfs=psf_map, conditions=conditions,
            params=params, window=window, spacing=spacing, seed=seed,
            progress_bar=progress_bar)
        if files is not None:
            atomic_write(files["data"], lambda tmp, array=data: _save_array(tmp, array),
                         overwrite=True)
            atomic_write(files["objects"], lambda tmp: objects.write(
                tmp, format="ascii.ecsv", overwrite=True), overwrite=True)
            atomic_write(files["settings"], lambda tmp: Path(tmp).write_text(
                json.dumps(settings, indent=1, sort_keys=True), encoding="utf-8"),
                overwrite=True)

    labels = np.asarray(objects["cluster_class"], dtype=np.int64)
    present = [c for c in classes if np.any(labels == c)]
    full = LabelledCutouts(data, labels, normalize="identity", classes=CLASSES,
                           augment=True, max_shift=1, seed=seed, bands=net_bands)
    del data
    train_idx, test_idx = stratified_split(labels, test_fraction, seed=seed)
    split = np.full(len(labels), "train", dtype="<U5")
    split[test_idx] = "test"
    objects["split"] = split
    train_set = full.subset(train_idx)
    test_x = full.tensors[torch.from_numpy(test_idx)]
    test_y = labels[test_idx]
    del full

    stage(f"classifying the {len(test_idx)} held-back objects with the starting "
          "network")
    before = CLASSES[np.argmax(_predict(net, test_x, batch_size, device), axis=1)]

    for param in net.parameters():
        param.requires_grad_(True)
    kwargs = dict(train_kwargs)
    if files is not None:
        kwargs.setdefault("checkpoint", workdir / "checkpoint.pt")
        kwargs.setdefault("log", workdir / "history.ecsv")
        kwargs.setdefault("resume", bool(resume))
    stage(f"fine-tuning on {len(train_idx)} objects: {epochs} epoch(s) at lr {lr:g}, "
          f"batches of {batch_size}")
    result = train(net, train_set, None, epochs=epochs, lr=lr, batch_size=batch_size,
                   early_stopping=None, seed=seed, device=device,
                   progress_bar=progress_bar, **kwargs)
    tuned = result.model

    stage(f"classifying the {len(test_idx)} held-back objects with the adapted "
          "network")
    logits = _predict(tuned, test_x, batch_size, device)
    after = CLASSES[np.argmax(logits, axis=1)]
    temperature = float(fit_temperature(logits, test_y))

    rec_before = per_class_accuracy(test_y, before, classes=CLASSES)
    rec_after = per_class_accuracy(test_y, after, classes=CLASSES)
    names = dict(zip(CLASSES.tolist(), CLASS_NAMES, strict=True))
    report = QTable()
    report["class"] = np.asarray(present, dtype=np.int64)
    report["name"] = [names[c] for c in present]
    index = [int(np.flatnonzero(CLASSES == c)[0]) for c in present]
    report["n_train"] = [int(np.count_nonzero(labels[train_idx] == c)) for c in present]
    report["n_test"] = [int(np.count_nonzero(test_y == c)) for c in present]
    report["recall_before"] = np.asarray(rec_before)[index]
    report["recall_after"] = np.asarray(rec_after)[index]
    report["change"] = report["recall_after"] - report["recall_before"]
    for name in ("recall_before", "recall_after", "change"):
        report[name].info.format = ".3f"
    summary = {
        "accuracy_before": float(np.mean(before == test_y)),
        "accuracy_after": float(np.mean(after == test_y)),
        "balanced_before": float(np.nanmean(report["recall_before"])),
        "balanced_after": float(np.nanmean(report["recall_after"])),
        "n_injected": int(n_objects), "n_used": int(len(labels)),
        "n_train": int(len(train_idx)), "n_test": int(len(test_idx)),
        "epochs": epochs, "lr": float(lr), "batch_size": batch_size,
        "temperature": temperature,
        "seconds": round(time.perf_counter() - t_start, 1),
        "base_weights": base.get("weights"), "base_sha256": base.get("sha256"),
        "settings": settings,
    }
    report.meta.update(get_meta(adapt=summary))

    cls_before = np.zeros(len(labels), np.int64)
    cls_after = np.zeros(len(labels), np.int64)
    cls_before[test_idx] = before
    cls_after[test_idx] = after
    held = split == "test"
    objects["class_before"] = MaskedColumn(cls_before, mask=~held)
    objects["class_after"] = MaskedColumn(cls_after, mask=~held)

    source = (f"file {Path(weights_path).name}" if weights_path
              else str(base.get("weights")))
    weights_meta = {
        "training_data": (f"{base.get('training_data', '')} Then adapted "
                          f"(astro_clustercls.training.adapt, seed {seed}) on "
                          f"{len(train_idx)} simulated objects of classes "
                          f"{classes} injected at {distance:g} Mpc into the user's "
                          f"{'/'.join(used)} images ({images.shape[1]}x"
                          f"{images.shape[0]} px)").strip(),
        "notes": (f"Adapted from {model} {source} by astro-clustercls adapt. "
                  f"Recall on {len(test_idx)} held-back injected objects, classes "
                  f"{', '.join(map(str, present))}: before "
                  + "/".join(f"{v:.2f}" for v in report["recall_before"])
                  + ", after " + "/".join(f"{v:.2f}" for v in report["recall_after"])
                  + ". Its accuracy on real objects of the field is unmeasured "
                    "unless you have labels."),
        "recipe": {**result.config, "adapt": settings},
        "metrics": {"adapt": {k: v for k, v in summary.items()
                              if k not in ("settings",)},
                    "adapt_recall_before": dict(zip(map(str, present),
                                                    map(float,
                                                        report["recall_before"]),
                                                    strict=True)),
                    "adapt_recall_after": dict(zip(map(str, present),
                                                   map(float, report["recall_after"]),
                                                   strict=True))},
        "temperature": temperature,
        "adapted_from": {"model": model, "weights": base.get("weights"),
                         "sha256": base.get("sha256")},
        "bands": net_bands, "cutout_size": size, "normalization": recipe,
    }
    return AdaptResult(model=tuned, report=report, objects=objects,
                       train_result=result, weights_meta=weights_meta)
