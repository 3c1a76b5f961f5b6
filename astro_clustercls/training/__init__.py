# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Training and fine-tuning of the cluster classifiers.

`LabelledCutouts` (`astro_clustercls.training.dataset`) is a torch Dataset of
normalised multi-band cutouts with labels 1..4 and optional augmentation (the
8 rotations/flips, small shifts, band dropout, noise). `train`
(`astro_clustercls.training.loop`) runs the training loop (class balance,
early stopping on a validation set, atomic checkpoints that resume exactly, a
per-epoch ECSV log, seeds), `fine_tune` builds everything from a labelled
source table and images for users with their own catalogs,
`TransferAugmentation` (`astro_clustercls.training.augment`) perturbs raw
training cutouts as other fields and renderers differ, and
`fit_temperature` (`astro_clustercls.training.calibration`) calibrates the
probabilities, and `adapt` (`astro_clustercls.training.adaptation`)
fine-tunes a network to a user's own field on simulated objects injected into
its images.
"""

from ..runtime import torch_device as resolve_device
from .adaptation import ADAPT_DEFAULTS, AdaptResult, adapt
from .augment import TRANSFER_PRESETS, TransferAugmentation
from .calibration import fit_temperature
from .dataset import (
    DEFAULT_DROP_FLAGS,
    LabelledCutouts,
    class_weights,
    stratified_split,
)
from .loop import TrainResult, fine_tune, predict_logits, train

__all__ = [
    "LabelledCutouts",
    "TrainResult",
    "train",
    "fine_tune",
    "class_weights",
    "stratified_split",
    "resolve_device",
    "fit_temperature",
    "predict_logits",
    "DEFAULT_DROP_FLAGS",
    "adapt",
    "AdaptResult",
    "ADAPT_DEFAULTS",
    "TransferAugmentation",
    "TRANSFER_PRESETS",
]
