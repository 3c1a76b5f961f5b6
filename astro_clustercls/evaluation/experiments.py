# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reproducible training of the bundled networks on the simulator.

The bundled ResNet18 and VGG19-BN are trained by this module, from a seed, on
simulated "training galaxies" (`~astro_clustercls.simulation.make_training_set`)
and evaluated on a held-out simulated galaxy at another distance, background,
depth and PSF (as NGC 1559 was left out of training in Wei et al. 2020)::

    astro-clustercls experiments bundled --arch resnet18 --seed 0 --register

Runs are checkpointed every epoch in ``--workdir`` and resume where they
stopped (``--resume``), log one ECSV row per epoch, and show a progress bar.
"""

import copy
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from astropy.table import QTable

from .._constants import CLASS_NAMES, CLASSES, DEFAULT_BANDS
from ..models import (
    build_network,
    get_model,
    get_model_weights,
    register_bundled_weights,
)
from ..preprocessing import normalize
from ..simulation import HELD_OUT_GALAXY, make_training_set
from ..simulation._version import resolve_version
from ..training import LabelledCutouts, fit_temperature, predict_logits, train
from ..utils._parameters import validate_choice
from ..utils._rst import grid_table
from .metrics import (
    HUMAN_CONSISTENCY,
    PAPER_RESULTS,
    expected_calibration_error,
    overall_accuracy,
    per_class_accuracy,
    per_class_precision,
)
from .renderers import _scores, _split_rngs, predict_probs, renderer_metrics

__all__ = ["BundledRecipe", "RECIPES", "BUNDLED_RECIPES", "EXPERIMENT_RECIPES",
           "simulated_splits",
           "predict_probs", "heldout_report", "train_bundled", "run_grid",
           "grid_to_rst", "compare_options", "options_to_rst",
           "band_dropout_experiment", "LABEL_SETS"]


@dataclass(frozen=True)
class BundledRecipe:
    """Everything that defines one bundled network's training run."""

    arch: str
    member: str = "SIM_V1"
    cutout_size: int = 31
    n_train: int = 40000
    n_val: int = 4000
    n_test: int = 8000
    label_set: str = "truth"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    class_balance: str = "weighted_loss"
    early_stopping: int = 3
    band_dropout: float = 0.05
    normalization: str = "asinh-v1"
    #: draw depth, background and PSF width anew every 256 training objects
    #: (`~astro_clustercls.simulation.VARY_CONDITIONS`)
    vary_conditions: bool = False
    #: bf16 autocast (on CPUs with native bf16 and on GPUs): ~1.5-1.8x faster
    #: training; bit-reproducible with one CPU thread at 51 px (measured), not
    #: with several threads (see `~astro_clustercls.training.train`). True
    #: forces it (emulated, ~15x slower, on CPUs without native bf16); 'auto'
    #: uses it only where it is native, so the weights depend on the CPU kind
    amp: bool | str = False
    #: torch CPU threads the recipe is reproducible with (None: torch's default)
    threads: int | None = None
    #: fused optimizer step (`~astro_clustercls.training.train`'s ``fused``):
    #: faster, but rounds differently from the unfused step the recipes so
    #: far were trained with
    fused_optimizer: bool = False
    #: what a user of the weights must know about this run (into the meta's notes)
    notes: str = ""
    #: simulator version of the training, validation and held-out sets
    simulator: str = "v1"
    #: transfer augmentation (`~astro_clustercls.training.augment.TransferAugmentation`
    #: parameters, or a preset name) applied to the training items; None: none
    transfer: dict | str | None = None
    #: bundled weights ``'MEMBER'`` of the same architecture to start from
    #: (fine-tuning them); None: random initialisation
    init: str | None = None
    #: what changed from the weights this recipe replaces (model card)
    changes: str = ""


def _sim2_recipe(arch, *, galsim, v1, changes, **settings):
    """
    A ``SIM2_V1`` recipe: the architecture's ``SIM_V2`` fine-tuned on simulator
    v2 (51 px) with the transfer augmentation. ``galsim`` and ``v1``: its and
    ``SIM_V2``'s per-class recall ('a/b/c/d') on GalSim and on v1's held-out
    galaxy, for the notes.
    """
    notes = (f"Weak at class 2: on the GalSim renderer it recalls {galsim[0]} % of "
             f"classes 1-4 (SIM_V2: {galsim[1]} %), on simulator v1's held-out galaxy "
             f"{v1[0]} % (SIM_V2: {v1[1]} %); it calls few objects compact "
             "asymmetric clusters. Use weights='SIM_V2' where class-2 recall matters "
             "more than classes 1 and 3.")
    return BundledRecipe(arch, member="SIM2_V1", cutout_size=51, amp="auto", threads=1,
                         simulator="v2", transfer="transfer", init="SIM_V2",
                         notes=notes, changes=changes, **settings)


#: Every recipe that produced bundled weights, by (architecture, member), so
#: that each bundled file stays reproducible after newer recipes replace it.
RECIPES = {
    ("resnet18", "SIM_V1"): BundledRecipe("resnet18"),
    # 51-px cutouts (the reduced grid: +8-11 points over 25 px), observing
    # conditions varied per block, bf16 on one thread per network so that
    # both networks train side by side on 2 cores
    ("resnet18", "SIM_V2"): BundledRecipe(
        "resnet18", member="SIM_V2", cutout_size=51, n_train=60000, epochs=12,
        vary_conditions=True, amp=True, threads=1),
    # VGG19-BN costs ~5x ResNet18 per image on a CPU: fewer objects and epochs
    ("vgg19_bn", "SIM_V2"): BundledRecipe(
        "vgg19_bn", member="SIM_V2", cutout_size=51, n_train=24000, n_val=3000,
        epochs=8, lr=5e-4, vary_conditions=True, amp=True, threads=1,
        notes="Undertrained for lack of compute: 24000 objects and 8 epochs on "
              "one CPU core (66 min); its validation balanced accuracy was still "
              "rising at the last epoch (0.69 -> 0.72), and on the held-out galaxy "
              "it is 8 points below the bundled ResNet18. Prefer the ResNet18, or "
              "fine-tune this network, until a longer run replaces it."),
    # simulator v2 (domain randomisation, instrument PSFs, crowded fields) and
    # the transfer augmentation, fine-tuning SIM_V2 (trained on v1): one CPU
    # core without native bf16 trains ~80 images/s at 51 px, so a run from
    # scratch as long as SIM_V2's would take ~2.5 h
    ("resnet18", "SIM2_V1"): _sim2_recipe(
        "resnet18", n_train=32000, n_val=4000, epochs=4, lr=5e-4,
        galsim=("85/25/86/76", "62/41/43/91"), v1=("71/10/78/34", "57/47/80/56"),
        changes="Replaces SIM_V2 (trained on simulator v1 only) as the default "
                "ResNet18: fine-tuned from it on simulator v2 (star-by-star young "
                "populations, loose associations, crowded neighbourhoods, the "
                "observing set-up randomised per block of objects including the PSF "
                "family) with the transfer augmentation (blur, sub-pixel shift, "
                "per-band gain, correlated noise, background gradients). Judged on "
                "the GalSim renderer, which no training run ever saw."),
    # the same for VGG19-BN, sized to one CPU core in ~1.5 h (~10 images/s
    # at 51 px in fp32 without native bf16)
    ("vgg19_bn", "SIM2_V1"): _sim2_recipe(
        "vgg19_bn", n_train=16000, n_val=3000, epochs=3, lr=3e-4,
        galsim=("83/12/93/71", "56/26/38/91"), v1=("60/16/80/27", "45/60/61/46"),
        changes="Replaces SIM_V2 (trained on simulator v1 only, for too few epochs) "
                "as the default VGG19-BN: fine-tuned from it on simulator v2 with the "
                "transfer augmentation, as the ResNet18 SIM2_V1, until its validation "
                "balanced accuracy stopped rising (0.433, 0.466, 0.469 after epochs "
                "1-3; 77 min on one CPU core). Judged on the GalSim renderer, which "
                "no training run ever saw."),
}

#: The recipe of each architecture's default bundled network.
BUNDLED_RECIPES = {
    "resnet18": RECIPES["resnet18", "SIM2_V1"],
    "vgg19_bn": RECIPES["vgg19_bn", "SIM2_V1"],
}

#: The settings the experiments train networks from scratch with (the grid,
#: band dropout, the cross-renderer table, the transfer ablation): each
#: architecture's last from-scratch bundled recipe, so that the tables stay
#: reproducible when a fine-tuned recipe becomes the default.
EXPERIMENT_RECIPES = {
    "resnet18": RECIPES["resnet18", "SIM_V2"],
    "vgg19_bn": RECIPES["vgg19_bn", "SIM_V2"],
}

#: the label sets of the paper's grid
LABEL_SETS = ("truth", "consensus", "single_expert")


def simulated_splits(*, size, seed, n_train, n_val, n_test, label_set="truth",
                     bands=DEFAULT_BANDS, vary_conditions=False, simulator="v1"):
    """
    Training, validation and held-out test sets from the simulator.

    Training and validation come from the training galaxies (distances 4-23
    Mpc); the test set is the held-out galaxy
    (`~astro_clustercls.simulation.HELD_OUT_GALAXY`). Each set has its own
    seed derived from ``seed``. Training/validation labels are the true
    classes (``label_set='truth'``) or what one expert / a three-expert
    consensus would say; test sets carry both (``labels`` as a consensus of
    experts would give, ``true_labels``). With ``vary_conditions`` the
    training and validation sets draw their observing conditions at random
    (the held-out galaxy keeps its own); ``simulator='v2'`` always varies
    them (its domain randomisation) and has its own held-out galaxy.

    Returns
    -------
    train, val, test : `~astro_clustercls.simulation.TrainingSet`
    """
    label_set = validate_choice("label_set", label_set, LABEL_SETS)
    noise = None if label_set == "truth" else label_set
    s_train, s_val, s_test = _split_rngs(seed)
    train = make_training_set(n_train, size, s_train, bands=bands, label_noise=noise,
                              vary_conditions=vary_conditions, simulator=simulator)
    val = make_training_set(n_val, size, s_val, bands=bands, label_noise=noise,
                            vary_conditions=vary_conditions, simulator=simulator)
    test = make_training_set(n_test, size, s_test, bands=bands, held_out=True,
                             label_noise="consensus", simulator=simulator)
    return train, val, test


def heldout_report(probs, test_set):
    """
    Per-class recall and precision on the held-out set, against the simulator's
    true classes and against the simulated consensus labels, with the paper's
    and the human-consistency figures beside them.

    Returns
    -------
    `~astropy.table.QTable`, dict
        The table, and a JSON-able dict of the headline metrics.
    """
    pred = CLASSES[np.argmax(probs, axis=1)]
    rec_true = per_class_accuracy(test_set.true_labels, pred)
    rec_cons = per_class_accuracy(test_set.labels, pred)
    prec_true = per_class_precision(test_set.true_labels, pred)
    table = QTable()
    table["class"] = CLASSES
    table["name"] = list(CLASS_NAMES)
    table["n"] = [int(np.sum(test_set.true_labels == c)) for c in CLASSES]
    table["recall_truth"] = np.round(np.asarray(rec_true, float), 3)
    table["precision_truth"] = np.round(np.asarray(prec_true, float), 3)
    table["recall_consensus_labels"] = np.round(np.asarray(rec_cons, float), 3)
    table["paper_wei2020"] = [_fmt_range(PAPER_RESULTS[c]) for c in CLASSES]
    table["human_consistency"] = [_fmt_range(HUMAN_CONSISTENCY[c]) for c in CLASSES]
    metrics = {
        "heldout_recall_truth": {int(c): float(r)
                                 for c, r in zip(CLASSES, rec_true, strict=True)},
        "heldout_precision_truth": {int(c): float(p)
                                    for c, p in zip(CLASSES, prec_true, strict=True)},
        "heldout_recall_consensus": {int(c): float(r)
                                     for c, r in zip(CLASSES, rec_cons, strict=True)},
        "heldout_accuracy_truth": float(overall_accuracy(test_set.true_labels, pred)),
        "heldout_accuracy_consensus": float(overall_accuracy(test_set.labels, pred)),
        "heldout_n": int(len(pred)),
    }
    return table, metrics


def _fmt_range(value):
    lo, hi = (value if np.ndim(value) else (value, value))
    lo, hi = float(lo), float(hi)
    if lo <= 1 and hi <= 1:
        lo, hi = 100 * lo, 100 * hi
    return f"{lo:.0f}" if lo == hi else f"{lo:.0f}-{hi:.0f}"


def _heldout_galaxy(version):
    """How the held-out galaxy of a simulator version is observed (model card)."""
    galaxy = {"simulator": version, **HELD_OUT_GALAXY}
    if not version.startswith("1"):  # v2 observes it through the instrument PSF
        galaxy.update(psf="instrument models, pixfrac 0.8", noise_corr=0.3)
    return galaxy


def _training_data(recipe, seed, version):
    """The weights' meta ``training_data``: what the network was trained on."""
    if version.startswith("1"):
        what = ("simulated cutouts of training galaxies at 4-23 Mpc"
                + (", depth, background and PSF width varied per block of objects"
                   if recipe.vary_conditions else ""))
    else:
        what = ("simulated cutouts of crowded fields at 3-25 Mpc, the observing "
                "set-up randomised per block of objects (PSF family and width, noise "
                "correlation, zeropoints, ACS bands, depth, artefacts)")
    return (f"astro_clustercls.simulation v{version}: {recipe.n_train} {what}"
            + (f", transfer augmentation {recipe.transfer!r}" if recipe.transfer
               else "")
            + f" (seed {seed}); validation {recipe.n_val}; no real HST image, no "
            "human label, no ImageNet initialisation")


def train_bundled(arch, *, seed=0, workdir="runs/bundled", resume=True,
                  register=False, device=None, progress_bar=True, recipe=None,
                  threads=None):
    """
    Train one bundled network from its recipe and a seed; optionally register it.

    Parameters
    ----------
    arch : {'resnet18', 'vgg19_bn'}
    seed : int
        Seed of the data and of the training.
    workdir : path-like
        Where the checkpoint, the per-epoch ECSV log and the report go.
    resume : bool
        Continue from the checkpoint in ``workdir`` if there is one.
    register : bool
        Write the fp16 safetensors into the package's bundled weights and
        update the manifest (see `~astro_clustercls.models.register_bundled_weights`).
    recipe : `BundledRecipe`, optional
        Overrides ``BUNDLED_RECIPES[arch]``.

    Returns
    -------
    result : `~astro_clustercls.training.TrainResult`
    report : `~astropy.table.QTable`
    """
    arch = validate_choice("arch", arch, tuple(BUNDLED_RECIPES))
    recipe = recipe or BUNDLED_RECIPES[arch]
    threads = threads or recipe.threads
    if threads:
        torch.set_num_threads(int(threads))
    workdir = Path(workdir) / f"{arch}-{recipe.member.lower()}-seed{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_ts, val_ts, test_ts = simulated_splits(
        size=recipe.cutout_size, seed=seed, n_train=recipe.n_train,
        n_val=recipe.n_val, n_test=recipe.n_test, label_set=recipe.label_set,
        vary_conditions=recipe.vary_conditions, simulator=recipe.simulator)
    t_data = time.time() - t0
    print(f"[{arch}] simulated {len(train_ts)}+{len(val_ts)}+{len(test_ts)} cutouts "
          f"of {recipe.cutout_size} px in {t_data:.0f} s", flush=True)
    norm = recipe.normalization
    train_set = LabelledCutouts(train_ts.data, train_ts.labels, normalize=norm,
                                augment=True, band_dropout=recipe.band_dropout,
                                transfer=recipe.transfer, seed=seed,
                                bands=train_ts.bands)
    val_set = LabelledCutouts(val_ts.data, val_ts.labels, normalize=norm,
                              bands=val_ts.bands)
    checkpoint = workdir / "checkpoint.pt"
    torch.manual_seed(seed)
    model = build_network(arch, n_bands=len(train_ts.bands), num_classes=len(CLASSES))
    if recipe.init:
        model.load_state_dict(get_model_weights(arch)[recipe.init].get_state_dict())
    result = train(model, train_set, val_set, epochs=recipe.epochs,
                   batch_size=recipe.batch_size, lr=recipe.lr,
                   weight_decay=recipe.weight_decay, optimizer=recipe.optimizer,
                   schedule=recipe.schedule, class_balance=recipe.class_balance,
                   early_stopping=recipe.early_stopping, seed=seed, device=device,
                   checkpoint=checkpoint,
                   resume=resume and checkpoint.exists(),
                   log=workdir / "history.ecsv", progress_bar=progress_bar,
                   amp=recipe.amp, fused=recipe.fused_optimizer)
    probs, test_logits = predict_probs(result.model, test_ts.data, normalization=norm,
                                       return_logits=True)
    report, metrics = heldout_report(probs, test_ts)
    report.write(workdir / "heldout.ecsv", overwrite=True)
    print(report, flush=True)
    val_probs, val_logits = predict_probs(result.model, val_ts.data,
                                          normalization=norm, return_logits=True)
    val_pred = CLASSES[np.argmax(val_probs, axis=1)]
    metrics["val_recall"] = {int(c): float(r) for c, r in zip(
        CLASSES, per_class_accuracy(val_ts.labels, val_pred), strict=True)}
    # calibration: the temperature that fits the validation set (the
    # classifier applies it), and what it does to the calibration error
    temperature = fit_temperature(val_logits, val_ts.labels)
    metrics["temperature"] = round(temperature, 4)
    for name, logits, labels in (("val", val_logits, val_ts.labels),
                                 ("heldout", test_logits, test_ts.true_labels)):
        for suffix, t in (("", 1.0), ("_calibrated", temperature)):
            p = torch.softmax(torch.from_numpy(logits) / t, dim=1).numpy()
            metrics[f"{name}_ece{suffix}"] = round(
                float(expected_calibration_error(p, labels)), 4)
    # the other renderers: how the network transfers (model card)
    run_meta = {"cutout_size": recipe.cutout_size, "bands": list(train_ts.bands),
                "normalization": norm, "temperature": temperature}
    metrics["renderers"] = renderer_metrics(result.model, meta=run_meta,
                                            n_test=min(recipe.n_test, 2000), seed=seed)
    metrics["best_epoch"] = int(result.best_epoch)
    # from the epoch log, so that a resumed run reports the whole training
    metrics["train_seconds"] = round(float(np.sum(result.history["seconds"])), 1)
    config = asdict(recipe) | {"seed": seed}
    (workdir / "metrics.json").write_text(json.dumps({"metrics": metrics,
                                                      "recipe": config}, indent=2))
    if register:
        version = resolve_version(recipe.simulator)
        meta = {
            "architecture": arch,
            "bands": list(train_ts.bands),
            "cutout_size": recipe.cutout_size,
            "normalization": norm,
            "categories": list(CLASS_NAMES),
            "label_set": recipe.label_set,
            "training_data": _training_data(recipe, seed, version),
            "simulator_version": version,
            "temperature": metrics["temperature"],
            "metrics": metrics | {"heldout_galaxy": _heldout_galaxy(version)},
            "recipe": config,
            "changes": recipe.changes,
            "notes": (
                (recipe.notes + " " if recipe.notes else "")
                + (f"Fine-tuned from the bundled {arch} {recipe.init} weights"
                   if recipe.init else "Trained from scratch")
                + " on simulated PHANGS-HST-like cutouts only. "
                "Intended as a starting point to fine-tune on real labelled catalogs "
                "(astro_clustercls.training.fine_tune); its accuracy on real HST "
                "images is unmeasured. Reproduce with: astro-clustercls "
                f"experiments bundled --arch {arch} "
                f"--member {recipe.member} --seed {seed}"),
        }
        member = register_bundled_weights(result.model, arch, recipe.member, meta,
                                          overwrite=True)
        print(f"[{arch}] registered {member!r}", flush=True)
    return result, report


def run_grid(*, archs=("resnet18",), label_sets=LABEL_SETS, sizes=(25, 51), seed=0,
             n_train=12000, n_val=2000, n_test=4000, epochs=4, workdir="runs/grid",
             progress_bar=False, threads=None, base=None):
    """
    The paper's experiments as a grid: architecture x label set x cutout size.

    Each cell trains a network with the bundled recipe of its architecture,
    changed only in ``label_set``, ``cutout_size`` and the sizes given here,
    from the same seed (so the cells share their simulated objects where the
    sizes allow), and is evaluated on the same held-out galaxy. Nothing is
    registered.

    Returns
    -------
    `~astropy.table.QTable`
        One row per cell: ``arch``, ``label_set``, ``cutout_size``,
        ``recall_1`` .. ``recall_4`` and ``accuracy`` against the true classes,
        ``accuracy_consensus`` against simulated consensus labels,
        ``train_seconds``.
    """
    rows = []
    for arch in archs:
        for label_set in label_sets:
            for size in sizes:
                recipe = replace(base or EXPERIMENT_RECIPES[arch], label_set=label_set,
                                 cutout_size=int(size), n_train=n_train, n_val=n_val,
                                 n_test=n_test, epochs=epochs,
                                 member=f"GRID_{label_set.upper()}_{size}")
                result, _ = train_bundled(arch, seed=seed, workdir=workdir,
                                          resume=True, progress_bar=progress_bar,
                                          recipe=recipe, threads=threads)
                run = Path(workdir) / f"{arch}-{recipe.member.lower()}-seed{seed}"
                m = json.loads((run / "metrics.json").read_text())["metrics"]
                rec = m["heldout_recall_truth"]
                rows.append([arch, label_set, int(size)]
                            + [float(rec[str(c)]) for c in CLASSES]
                            + [m["heldout_accuracy_truth"],
                               m["heldout_accuracy_consensus"], m["train_seconds"]])
    names = ["arch", "label_set", "cutout_size"] + [f"recall_{c}" for c in CLASSES] \
        + ["accuracy", "accuracy_consensus", "train_seconds"]
    table = QTable(rows=rows, names=names) if rows else QTable(names=names)
    table.meta.update(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test,
                      epochs=epochs)
    return table


def grid_to_rst(table):
    """The grid as a reST grid table, the paper's and the human figures beside it."""
    header = ("network", "labels", "cutout", "class 1", "class 2", "class 3",
              "class 4", "overall")
    rows = [(str(r["arch"]), str(r["label_set"]), f"{int(r['cutout_size'])} px",
             *(f"{100 * float(r[f'recall_{c}']):.0f} %" for c in CLASSES),
             f"{100 * float(r['accuracy']):.0f} %") for r in table]
    rows.append(("Wei+2020, NGC 1559", "", "",
                 *(_fmt_range(PAPER_RESULTS[c]) + " %" for c in CLASSES), ""))
    rows.append(("human consistency", "", "",
                 *(_fmt_range(HUMAN_CONSISTENCY[c]) + " %" for c in CLASSES), ""))
    return grid_table(header, rows) + "\n"


def _adapt(net, meta, data, labels, *, epochs, lr, seed, device):
    """Fine-tune a copy of ``net`` on simulated objects of the target field."""
    recipe = meta.get("recipe", {})
    model = copy.deepcopy(net)
    for param in model.parameters():
        param.requires_grad_(True)
    train_set = LabelledCutouts(data, labels, normalize=meta["normalization"],
                                augment=True, seed=seed)
    return train(model, train_set, None, epochs=epochs, lr=lr,
                 batch_size=recipe.get("batch_size", 128), early_stopping=None,
                 seed=seed, device=device, amp=bool(recipe.get("amp", False))).model


def compare_options(models=("resnet18", "vgg19_bn"), *, seed=None, n_val=4000,
                    n_test=8000, drop_band="F275W", n_adapt=0, adapt_epochs=3,
                    adapt_lr=1e-4, batch_size=256, device="cpu"):
    """
    What test-time augmentation, an ensemble, temperature scaling and a missing
    band do to bundled networks on the held-out simulated galaxy.

    The held-out and validation sets are those of the networks' recipe (same
    seed and cutout size, so none of these objects was trained on). For each
    network: as is, with its validation temperature (calibration only: the
    labels do not change), with test-time augmentation over the 8
    rotations/flips, and with ``drop_band`` missing (its normalised plane set
    to zero, as `~astro_clustercls.ClusterClassifier` does with
    ``missing_bands='zero'``); then the ensemble of all networks (mean of the
    calibrated probabilities; for two networks this is the mode of their
    labels with ties broken by the mean probability), with and without
    test-time augmentation.

    Parameters
    ----------
    models : sequence of str
        Bundled networks (their ``DEFAULT`` weights), all of one cutout size.
    seed : int, optional
        Seed of the held-out set (default: the first network's recipe seed).
    n_val, n_test : int, optional
        Sizes of the validation set (for the temperatures) and of the held-out
        set (default 4000 and 8000, as the recipes).
    drop_band : str, optional
        The band taken away in the missing-band rows.
    n_adapt : int, optional
        If > 0, also fine-tune each network (``adapt_epochs`` epochs at
        learning rate ``adapt_lr``, all layers, the recipe's batch size and
        precision) on this many *new* objects simulated with the held-out
        galaxy's distance, depth, background and PSF -- what
        `~astro_clustercls.simulation.inject` gives in a user's own images --
        and evaluate it (with its own validation temperature). No held-out
        object is used.

    Returns
    -------
    `~astropy.table.QTable`
        One row per option: ``option``, ``recall_1`` .. ``recall_4``,
        ``accuracy``, ``balanced_accuracy`` and ``ece`` (expected calibration
        error, 10 bins), all against the true classes.
    """
    nets = [get_model(m, weights="DEFAULT") for m in models]
    metas = [net.clustercls_meta for net in nets]
    sizes = {int(m["cutout_size"]) for m in metas}
    if len(sizes) != 1:
        raise ValueError(f"'models' must share one cutout size, got {sorted(sizes)}")
    size = sizes.pop()
    recipe = metas[0].get("recipe", {})
    seed = int(recipe.get("seed", 0) if seed is None else seed)
    bands = tuple(metas[0]["bands"])
    _, r_val, r_test = _split_rngs(seed)
    # a fourth, independent generator for the field-adaptation objects
    r_adapt = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    val = make_training_set(n_val, size, r_val, bands=bands,
                            vary_conditions=bool(recipe.get("vary_conditions", False)))
    test = make_training_set(n_test, size, r_test, bands=bands, held_out=True,
                             label_noise="consensus")
    true = np.asarray(test.true_labels)
    drop = bands.index(validate_choice("drop_band", drop_band, bands))

    normalized = {}  # (set, recipe, missing band) -> normalised cutouts, made once

    def inputs(data, recipe, missing):
        key = (id(data), recipe, missing)
        if key not in normalized:
            x = normalize(data, recipe=recipe)
            if missing is not None:
                x[:, missing] = 0
            normalized[key] = x
        return normalized[key]

    def run(net, meta, data, *, tta=False, temperature=1.0, missing=None):
        x = inputs(data, meta["normalization"], missing)
        # as the classifier runs: bf16 where native, channels_last
        # with TTA, log of the probabilities averaged at the temperature (the
        # classifier's convention, runtime.tta_probabilities)
        logits = predict_logits(net, x, batch_size=batch_size, device=device, tta=tta,
                                temperature=temperature, amp="auto", channels_last=True)
        scale = 1.0 if tta else temperature
        return torch.softmax(torch.from_numpy(logits) / scale, dim=1).numpy(), logits

    rows, calibrated, calibrated_tta, adapt = [], [], [], None
    for name, net, meta in zip(models, nets, metas, strict=True):
        _, val_logits = run(net, meta, val.data)
        t = fit_temperature(val_logits, val.labels)
        probs, logits = run(net, meta, test.data)
        rows.append(_scores(name, probs, true))
        cal = torch.softmax(torch.from_numpy(logits) / t, dim=1).numpy()
        rows.append(_scores(f"{name} + temperature (T={t:.2f})", cal, true))
        calibrated.append(cal)
        tta_probs, _ = run(net, meta, test.data, tta=True, temperature=t)
        rows.append(_scores(f"{name} + temperature + TTA", tta_probs, true))
        calibrated_tta.append(tta_probs)
        miss, _ = run(net, meta, test.data, temperature=t, missing=drop)
        rows.append(_scores(f"{name} + temperature, no {bands[drop]}", miss, true))
        if n_adapt:
            if adapt is None:
                adapt = make_training_set(n_adapt, size, r_adapt, bands=bands,
                                          held_out=True)
            tuned = _adapt(net, meta, adapt.data, adapt.labels, epochs=adapt_epochs,
                           lr=adapt_lr, seed=seed, device=device)
            _, val_logits = run(tuned, meta, val.data)
            probs, _ = run(tuned, meta, test.data,
                           temperature=fit_temperature(val_logits, val.labels))
            rows.append(_scores(f"{name} fine-tuned on {n_adapt} objects simulated "
                                "in the held-out field", probs, true))
    if len(nets) > 1:
        label = " + ".join(models)
        rows.append(_scores(f"ensemble {label}", np.mean(calibrated, axis=0), true))
        rows.append(_scores(f"ensemble {label} + TTA", np.mean(calibrated_tta, axis=0),
                            true))
    names = ["option", *(f"recall_{c}" for c in CLASSES), "accuracy",
             "balanced_accuracy", "ece"]
    table = QTable(rows=rows, names=names)
    table.meta.update(seed=seed, n_val=n_val, n_test=n_test, cutout_size=size,
                      n_adapt=n_adapt, adapt_epochs=adapt_epochs, adapt_lr=adapt_lr,
                      weights={m: meta["sha256"] for m, meta in zip(models, metas,
                                                                    strict=True)})
    return table


def band_dropout_experiment(dropouts=(0.0, 0.05, 0.3), *, arch="resnet18", size=25,
                            seed=0, n_train=12000, n_val=2000, n_test=4000, epochs=4,
                            drop_band="F275W", workdir="runs/dropout",
                            progress_bar=False, threads=None):
    """
    What band dropout in training buys when a band is missing at test time.

    Trains one network per ``dropouts`` value (the bundled recipe of ``arch``
    with that ``band_dropout``, at the given size and length, one seed) and
    evaluates each on the held-out galaxy with all bands and with
    ``drop_band`` missing (its normalised plane zero, as the classifier's
    ``missing_bands='zero'``).

    Returns
    -------
    `~astropy.table.QTable`
        One row per network: ``band_dropout``, ``accuracy`` and
        ``balanced_accuracy`` with all bands and ``*_missing`` without
        ``drop_band``, against the true classes.
    """
    base = EXPERIMENT_RECIPES[arch]
    bands = tuple(DEFAULT_BANDS)
    drop = bands.index(validate_choice("drop_band", drop_band, bands))
    test = make_training_set(n_test, size, _split_rngs(seed)[2], bands=bands,
                             held_out=True, label_noise="consensus")
    true = np.asarray(test.true_labels)
    # every network sees the same normalised set, with and without drop_band
    full = normalize(test.data, recipe=base.normalization)
    missing = full.copy()
    missing[:, drop] = 0
    rows = []
    for p in dropouts:
        recipe = replace(base, band_dropout=float(p), cutout_size=int(size),
                         n_train=n_train, n_val=n_val, n_test=n_test, epochs=epochs,
                         member=f"DROPOUT_{round(100 * p):03d}")
        result, _ = train_bundled(arch, seed=seed, workdir=workdir, recipe=recipe,
                                  progress_bar=progress_bar, threads=threads)
        scores = []
        for x in (full, missing):
            logits = predict_logits(result.model, x, amp="auto", channels_last=True)
            probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
            _, *rec, acc, bal, _ = _scores("", probs, true)
            scores += [acc, bal]
        rows.append([float(p), *scores])
    return QTable(rows=rows, names=["band_dropout", "accuracy", "balanced_accuracy",
                                    "accuracy_missing", "balanced_accuracy_missing"],
                  meta={"drop_band": drop_band, "arch": arch, "cutout_size": size,
                        "seed": seed, "n_train": n_train, "epochs": epochs})


def options_to_rst(table):
    """`compare_options`'s table as a reST grid table."""
    header = ("option", "class 1", "class 2", "class 3", "class 4", "overall",
              "balanced", "ECE")
    rows = [(str(r["option"]),
             *(f"{100 * float(r[f'recall_{c}']):.0f} %" for c in CLASSES),
             f"{100 * float(r['accuracy']):.1f} %",
             f"{100 * float(r['balanced_accuracy']):.1f} %",
             f"{float(r['ece']):.3f}") for r in table]
    return grid_table(header, rows) + "\n"
