# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
`LabelledCutouts`: a torch Dataset of normalised labelled cutouts, with the
augmentations of training, and the helpers that split and weight labels.

Every random choice of epoch ``e`` (augmentation, dropout) comes from
generators seeded with ``(seed, e)`` and the object index, so a dataset gives
the same items whatever the number of loader workers.
"""

import warnings

import numpy as np
import torch

from .._constants import CLASSES
from ..data.cutouts import make_cutouts
from ..data.flags import FLAGS
from ..preprocessing import dihedral
from ..preprocessing import normalize as _normalize
from ..utils._parameters import label_array, validate_positive_int
from ..utils.exceptions import ClusterClsWarning
from .augment import resolve_transfer

__all__ = ["LabelledCutouts", "class_weights", "stratified_split", "DEFAULT_DROP_FLAGS"]

#: Flags that make a cutout unusable for training (see `LabelledCutouts.from_table`).
DEFAULT_DROP_FLAGS = int(FLAGS.OFF_IMAGE | FLAGS.BAD_POSITION | FLAGS.CENTER_BAD)


def _seed_for(seed, *keys):
    """A 63-bit seed derived from ``seed`` and integer keys (stable across runs)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]])
    return int(ss.generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def class_weights(labels, *, classes=CLASSES):
    """
    Balanced class weights ``w_k = N / (K n_k)`` (0 for classes absent).

    With these weights every class contributes equally to a weighted
    cross-entropy loss, whatever its frequency.

    Parameters
    ----------
    labels : array-like of int
        Class labels (values of ``classes``).
    classes : sequence of int, optional
        Default 1..4.

    Returns
    -------
    ndarray of float64, shape (K,)

    Examples
    --------
    >>> from astro_clustercls.training import class_weights
    >>> class_weights([1, 1, 1, 2], classes=(1, 2, 3)).tolist()
    [0.6666666666666666, 2.0, 0.0]
    """
    labels = np.asarray(labels).ravel()
    classes = np.asarray(classes).ravel()
    counts = np.array([np.count_nonzero(labels == c) for c in classes], dtype=float)
    present = counts > 0
    weights = np.zeros(classes.size)
    weights[present] = labels.size / (present.sum() * counts[present])
    return weights


def stratified_split(labels, val_fraction=0.2, *, seed=0):
    """
    Split indices into train and validation, keeping each class's fraction.

    Each class contributes ``round(val_fraction * n_k)`` objects to validation
    (at least 1 when it has 2 or more objects).

    Returns
    -------
    train_idx, val_idx : ndarray of int64
        Sorted indices.

    Examples
    --------
    >>> from astro_clustercls.training import stratified_split
    >>> tr, va = stratified_split([1] * 10 + [2] * 5, 0.2, seed=1)
    >>> len(tr), len(va)
    (12, 3)
    """
    labels = np.asarray(labels).ravel()
    if not 0 < val_fraction < 1:
        raise ValueError(f"'val_fraction' must be in (0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_val = int(round(val_fraction * idx.size))
        if idx.size >= 2:
            n_val = min(max(n_val, 1), idx.size - 1)
        else:
            n_val = 0
        val.append(rng.permutation(idx)[:n_val])
    val = np.sort(np.concatenate(val)).astype(np.int64) if val else np.zeros(0, int)
    train_idx = np.setdiff1d(np.arange(labels.size), val).astype(np.int64)
    return train_idx, val


def _shift(x, dx, dy):
    """Shift the last two axes by integer (dx, dy) pixels, filling with 0."""
    if dx == 0 and dy == 0:
        return x
    out = torch.zeros_like(x)
    s = x.shape[-1]
    ys, yd = (slice(0, s - dy), slice(dy, s)) if dy >= 0 else (slice(-dy, s),
                                                                slice(0, s + dy))
    xs, xd = (slice(0, s - dx), slice(dx, s)) if dx >= 0 else (slice(-dx, s),
                                                                slice(0, s + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def _resolve_normalize(normalize):
    if callable(normalize):
        return normalize, getattr(normalize, "__name__", repr(normalize))
    if normalize == "identity":
        return (lambda data: data), "identity"
    if normalize is None or isinstance(normalize, str):
        if normalize is None:
            return _normalize, "preprocessing.normalize (default recipe)"
        recipe = normalize
        return (lambda data: _normalize(data, recipe=recipe)), recipe
    raise TypeError(f"'normalize' must be None, a recipe name or a callable, got "
                    f"{normalize!r}")


# ------------------------------------------------------------------------ dataset
class LabelledCutouts(torch.utils.data.Dataset):
    """
    A torch Dataset of normalised multi-band cutouts with class labels.

    The cutouts are normalised once, at construction, and kept as a float32
    tensor; items are ``(x, target)`` with ``x`` of shape (B, S, S) and
    ``target`` the class index (``label - classes[0]``-style: position of the
    label in ``classes``, 0..K-1).

    Parameters
    ----------
    data : ndarray (N, B, S, S) or `~astro_clustercls.CutoutStack`
        The cutouts (raw pixel values; see ``normalize``).
    labels : array-like of int, shape (N,)
        Class labels, values of ``classes`` (no masked entries: use
        `from_table` to drop unlabelled rows).
    normalize : callable, str or None, optional
        ``f(data) -> array`` of the same shape applied once to all cutouts;
        a recipe name of `astro_clustercls.preprocessing.normalize`; None
        (default) for that function's default recipe; ``'identity'`` to use
        the data as they are. Non-finite values left by it are set to 0.
    classes : sequence of int, optional
        The class labels, in the order of the network outputs (default 1..4).
    augment : bool, optional
        Apply random augmentation in `__getitem__`: one of the 8
        rotations/flips, an integer shift of up to ``max_shift`` pixels per
        axis (filled with 0), band dropout and noise.
    max_shift : int, optional
        Largest shift in pixels (default 1).
    band_dropout : float, optional
        Probability that one band (chosen at random) of an item is set to 0,
        the value of a missing band, so the network learns to work without
        one (default 0).
    noise : float, optional
        Standard deviation of Gaussian noise added in normalised units
        (default 0).
    transfer : `~astro_clustercls.training.TransferAugmentation`, str or None, optional
        With ``augment``, perturb each item's raw pixels before it is
        normalised as another field or renderer would differ (blur, sub-pixel
        shift, per-band gain, extra correlated noise, background gradient);
        ``'transfer'`` for the defaults. The raw cutouts are kept (twice the
        memory) and each item is normalised when it is drawn. Default None.
    seed : int, optional
        Seed of the augmentation: item ``i`` in epoch ``e`` gets generator
        ``(seed, e, i)``, so augmentation is reproducible whatever the order,
        batch or worker (`train` sets the epoch with `set_epoch`).
    bands : sequence of str, optional
        Band names (taken from a CutoutStack when not given).

    Attributes
    ----------
    tensors : torch.Tensor, (N, B, S, S) float32
        The normalised cutouts.
    labels : ndarray of int64
        Class labels.
    targets : torch.Tensor of int64
        Class indices (0..K-1).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.training import LabelledCutouts
    >>> data = np.random.default_rng(0).normal(size=(4, 2, 5, 5))
    >>> ds = LabelledCutouts(data, [1, 2, 3, 4], normalize='identity')
    >>> x, y = ds[1]
    >>> tuple(x.shape), int(y)
    ((2, 5, 5), 1)
    """

    def __init__(self, data, labels, *, normalize=None, classes=CLASSES, augment=False,
                 max_shift=1, band_dropout=0.0, noise=0.0, transfer=None, seed=0,
                 bands=None):
        stack = None
        if hasattr(data, "data") and hasattr(data, "flags") and hasattr(data, "bands"):
            stack, data = data, data.data
            bands = stack.bands if bands is None else bands
        data = np.asarray(data)
        if data.ndim != 4:
            raise ValueError(f"'data' must have shape (N, B, S, S), got {data.shape}")
        if data.shape[-1] != data.shape[-2]:
            raise ValueError(f"'data' cutouts must be square, got {data.shape[-2:]}")
        self.classes = np.asarray(classes, dtype=np.int64).ravel()
        labels = np.ma.asarray(labels)
        if labels.shape != (data.shape[0],):
            raise ValueError(f"'labels' must have shape ({data.shape[0]},), got "
                             f"{labels.shape}")
        if np.any(np.ma.getmaskarray(labels)):
            raise ValueError("'labels' holds masked entries; drop them first (see "
                             "LabelledCutouts.from_table)")
        labels = np.asarray(labels.data)
        if labels.size and (labels.dtype.kind == "f"
                            and not np.all(labels == np.round(labels))):
            raise ValueError("'labels' must be integer class labels")
        labels = labels.astype(np.int64)
        bad = ~np.isin(labels, self.classes)
        if np.any(bad):
            odd = np.unique(labels[bad]).tolist()
            raise ValueError(f"'labels' holds {odd}, not in classes "
                             f"{self.classes.tolist()}")
        func, self.normalization = _resolve_normalize(normalize)
        self._normalize = func
        self.transfer = resolve_transfer(transfer)
        # the raw cutouts, perturbed per item by the transfer augmentation
        self._raw = (np.ascontiguousarray(data, dtype=np.float32)
                     if self.transfer is not None else None)
        normed = np.asarray(func(data), dtype=np.float32)
        if normed.shape != data.shape:
            raise ValueError(f"'normalize' changed the shape {data.shape} -> "
                             f"{normed.shape}")
        normed = np.nan_to_num(normed, nan=0.0, posinf=0.0, neginf=0.0)
        self.tensors = torch.from_numpy(np.ascontiguousarray(normed))
        self.labels = labels
        lookup = {int(c): i for i, c in enumerate(self.classes)}
        self.targets = torch.as_tensor([lookup[int(v)] for v in labels],
                                       dtype=torch.int64)
        self.augment = bool(augment)
        self.max_shift = validate_positive_int("max_shift", max_shift) \
            if max_shift else 0
        if not 0 <= band_dropout <= 1:
            raise ValueError(f"'band_dropout' must be in [0, 1], got {band_dropout!r}")
        self.band_dropout = float(band_dropout)
        if noise < 0:
            raise ValueError(f"'noise' must be >= 0, got {noise!r}")
        self.noise = float(noise)
        self.seed = int(seed)
        self.epoch = 0
        self.bands = tuple(bands) if bands is not None else None
        self.stack = stack
        self.indices = np.arange(len(labels))  # rows of the source table / stack
        self._raw_rows = np.arange(len(labels))  # rows of ``_raw``

    # -- torch Dataset protocol
    def __len__(self):
        return self.tensors.shape[0]

    def __getitem__(self, index):
        x = self.tensors[index]
        if self.augment:
            x = self._augment(x, int(index))
        return x, self.targets[index]

    def __repr__(self):
        counts = {int(c): int(np.count_nonzero(self.labels == c)) for c in self.classes}
        return (f"<LabelledCutouts n={len(self)} shape={tuple(self.tensors.shape[1:])} "
                f"classes={counts} augment={self.augment}>")

    @property
    def cutout_size(self):
        """Side of the cutouts in pixels."""
        return int(self.tensors.shape[-1])

    @property
    def n_bands(self):
        """Number of bands (channels)."""
        return int(self.tensors.shape[1])

    def set_epoch(self, epoch):
        """Set the epoch that seeds the augmentation (called by `train`)."""
        self.epoch = int(epoch)

    def _augment(self, x, index):
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, index])
        if self.transfer is not None:
            raw = self.transfer(self._raw[self._raw_rows[index]],
                                np.random.default_rng([self.seed & 0xFFFFFFFF,
                                                       self.epoch, index, 1]))
            x = np.nan_to_num(np.asarray(self._normalize(raw[None]), np.float32)[0],
                              nan=0.0, posinf=0.0, neginf=0.0)
            x = torch.from_numpy(x)
        k = int(rng.integers(8))
        x = dihedral(x, k)
        if self.max_shift:
            dx, dy = (int(v) for v in rng.integers(-self.max_shift, self.max_shift + 1,
                                                    size=2))
            x = _shift(x, dx, dy)
        if self.band_dropout and rng.random() < self.band_dropout:
            x = x.clone()
            x[int(rng.integers(x.shape[0]))] = 0.0
        if self.noise:
            x = x + torch.from_numpy(rng.normal(0.0, self.noise, size=tuple(x.shape))
                                     .astype(np.float32))
        return x.contiguous()

    def class_counts(self):
        """Number of objects per class, in the order of ``classes``."""
        return np.array([np.count_nonzero(self.labels == c) for c in self.classes])

    def subset(self, indices, *, augment=None):
        """
        A dataset over some rows, sharing the normalised tensors (no copy).

        Parameters
        ----------
        indices : array-like of int
            Rows to keep.
        augment : bool, optional
            Override ``augment`` (e.g. False for a validation subset).
        """
        indices = np.asarray(indices, dtype=np.int64)
        new = LabelledCutouts.__new__(LabelledCutouts)
        new.__dict__.update(self.__dict__)
        new.tensors = self.tensors[torch.from_numpy(indices)]
        new.labels = self.labels[indices]
        new.targets = self.targets[torch.from_numpy(indices)]
        new.indices = self.indices[indices]
        new._raw_rows = self._raw_rows[indices]
        new.stack = None  # the rows of the parent's stack are ``indices``
        if augment is not None:
            new.augment = bool(augment)
        return new

    @classmethod
    def from_table(cls, sources, images, *, size, label_col="cluster_class",
                   classes=CLASSES, bands=None, normalize=None,
                   drop_flags=DEFAULT_DROP_FLAGS, xcol=None, ycol=None, skycol=None,
                   origin=0, progress_bar=False, **kwargs):
        """
        Cut and label the objects of a source table.

        Rows whose label is masked (not inspected) or not one of ``classes``,
        and rows whose cutout has any of ``drop_flags`` (default: off the
        image, bad position, bad central pixels) are dropped, with a
        `~astro_clustercls.utils.exceptions.ClusterClsWarning` giving the
        counts. ``dataset.indices`` maps the dataset rows back to table rows.

        Parameters
        ----------
        sources : `~astropy.table.Table`
            Positions (see `~astro_clustercls.make_cutouts`) and labels.
        images : `~astro_clustercls.BandImages`
            The images.
        size : int
            Cutout side in pixels.
        label_col : str, optional
            Label column (default ``'cluster_class'``).
        classes, normalize, **kwargs
            As for `LabelledCutouts` (``augment``, ``max_shift``, ...).
        bands : sequence of str, optional
            Bands to cut, in order (default: all bands of ``images``).
        drop_flags : int, optional
            Bit mask of `~astro_clustercls.data.flags.FLAGS` that drops a row.
        xcol, ycol, skycol, origin, progress_bar
            Passed to `~astro_clustercls.make_cutouts`.

        Returns
        -------
        `LabelledCutouts`
        """
        if label_col not in sources.colnames:
            raise ValueError(f"'label_col'={label_col!r} is not a column of "
                             f"'sources'; columns: {sources.colnames}")
        classes = np.asarray(classes, dtype=np.int64).ravel()
        labels, ok = label_array(label_col, sources[label_col])
        unlabelled = ~ok | ~np.isin(labels, classes)
        stack = make_cutouts(images, sources, size, xcol=xcol, ycol=ycol,
                             skycol=skycol, origin=origin, bands=bands,
                             progress_bar=progress_bar)
        unusable = (stack.flags & int(drop_flags)) != 0
        keep = ~unlabelled & ~unusable
        n_unl = int(np.count_nonzero(unlabelled))
        n_unu = int(np.count_nonzero(unusable & ~unlabelled))
        if n_unl or n_unu:
            warnings.warn(f"LabelledCutouts.from_table: dropped {n_unl} unlabelled "
                          f"rows and {n_unu} labelled rows with unusable cutouts "
                          f"(flags {FLAGS.decode(int(drop_flags))}); "
                          f"{int(keep.sum())} of "
                          f"{len(sources)} rows kept", ClusterClsWarning)
        if not np.any(keep):
            raise ValueError("no labelled row with a usable cutout in 'sources'")
        rows = np.flatnonzero(keep)
        dataset = cls(stack[rows], labels[rows], normalize=normalize, classes=classes,
                      **kwargs)
        dataset.indices = rows
        return dataset
