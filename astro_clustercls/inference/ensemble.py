# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Ensembles of networks: `ClusterEnsemble` and `combine_votes`.

Like the PHANGS-HST cluster catalogs (Wei et al. 2020; Thilker et al. 2022),
an ensemble classifies every source with several networks and keeps the
*mode* of their classes plus the fraction of networks that agree with it. Each
member is a `~astro_clustercls.ClusterClassifier`, run on its own
cutouts (members may use different cutout sizes, bands orders, test-time
augmentation); their tables are then combined row by row.

The output is the input table, every row in input order, with the columns of
`ENSEMBLE_COLUMNS`:

===================  =========================================================
``cluster_class``    the mode of the members' classes (ties: the tied class of
                     highest mean probability); masked where no member gave a
                     class
``class_prob``       (N, 4) mean of the probabilities of the members that
                     classified the row (NaN where none did)
``class_prob_max``   the mean probability of ``cluster_class``
``class_agreement``  fraction of the members that classified the row whose
                     class is ``cluster_class`` (NaN where none did)
``class_n_members``  how many members classified the row
``member_class``     (N, M) each member's class, in member order (masked where
                     that member gave none)
``classify_flags``   OR of the members' flags; ``NOT_CLASSIFIED`` and
                     ``LOW_CONFIDENCE`` are set from the ensemble's own result
                     (``OUT_OF_DISTRIBUTION`` is set where any member sets it)
===================  =========================================================

When members carry out-of-distribution statistics (both bundled networks
do), `ENSEMBLE_OOD_COLUMNS` follow:

====================  ========================================================
``ood_score``         the largest of the members' OOD scores (masked where no
                      member scored the row); above 1 exactly where some
                      member flagged the row ``OUT_OF_DISTRIBUTION``
``member_ood_score``  (N, M) each member's score, in member order (NaN where
                      that member gave none: no statistics, or no class)
====================  ========================================================
"""

import numbers
import warnings
from collections import namedtuple
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from .._constants import CLASS_NAMES, CLASSES
from ..data.flags import FLAGS
from ..data.images import bands_of
from ..utils._meta import get_meta
from ..utils.exceptions import CutoutWarning
from ._tables import OOD_COLUMN, finish_table, ood_column, rename_clashes
from .classifier import OUTPUT_COLUMNS, ClusterClassifier

__all__ = ["ClusterEnsemble", "combine_votes", "ENSEMBLE_COLUMNS",
           "ENSEMBLE_OOD_COLUMNS", "Votes"]

#: the columns added to the input table by `ClusterEnsemble`, in order
ENSEMBLE_COLUMNS = ("cluster_class", "class_prob", "class_prob_max", "class_agreement",
                    "class_n_members", "member_class", "classify_flags")

#: the columns added after them when some member carries OOD statistics
ENSEMBLE_OOD_COLUMNS = (OOD_COLUMN, "member_ood_score")

#: options of the classifier that name one network's weights: given per member
_PER_MEMBER_ONLY = ("weights", "weights_path", "weights_sha256", "weights_meta")

# suffixes that make a string in a ``(name, weights)`` member a file path
_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")

# keys of a member's provenance that are the ensemble's, not the member's
_SHARED_META = ("date", "version", "positions", "n_sources", "categories",
                "class_names")

_TIE_BREAK = "highest mean probability among the tied classes, then lowest class"

Votes = namedtuple("Votes", ["cluster_class", "class_prob", "class_prob_max",
                             "class_agreement", "n_members"])
Votes.__doc__ = """\
The combined vote of an ensemble (returned by `combine_votes`).

Attributes
----------
cluster_class : `numpy.ma.MaskedArray` of int64, shape (N,)
    The mode of the members' classes; masked where no member classified the
    row.
class_prob : `numpy.ndarray` of float32, shape (N, K)
    Mean probabilities over the members that classified the row (NaN where
    none did).
class_prob_max : `numpy.ndarray` of float32, shape (N,)
    The mean probability of ``cluster_class`` (NaN where not classified).
class_agreement : `numpy.ndarray` of float32, shape (N,)
    Fraction of the voting members whose class is ``cluster_class`` (NaN
    where not classified).
n_members : `numpy.ndarray` of int64, shape (N,)
    Number of members that classified the row.
"""


def combine_votes(labels, probs, classes=CLASSES):
    """
    Combine the classes and probabilities of several networks by majority vote.

    Parameters
    ----------
    labels : array-like or `numpy.ma.MaskedArray`, shape (N, M)
        Class of each of N rows given by each of M members. Masked entries
        (a member that did not classify the row) do not vote.
    probs : array-like, shape (N, M, K)
        Each member's class probabilities, in the order of ``classes``. Entries
        of masked labels are ignored (they may be NaN); the others must be
        finite.
    classes : sequence of int, optional
        The K class values (default 1, 2, 3, 4).

    Returns
    -------
    `Votes`
        Named tuple ``(cluster_class, class_prob, class_prob_max,
        class_agreement, n_members)``.

    Raises
    ------
    ValueError
        If the shapes do not match, a label is not one of ``classes`` or a
        voting member's probabilities are not finite.

    Notes
    -----
    ``cluster_class`` is the class that most voting members gave. A tie is
    broken by the mean probability (over the voting members) of the tied
    classes, and a tie in that too (which needs exactly equal probabilities)
    by the lowest class. ``class_prob`` is the mean of the voting members'
    probabilities, so it stays normalised; ``class_prob_max`` is its value for
    ``cluster_class``, which is the highest mean probability except where the
    vote and the mean probabilities disagree (e.g. two members give class 1
    with probability 0.4, a third class 2 with 0.99).

    Examples
    --------
    Three networks, 2 rows: a 2-1 vote, then a 1-1 tie (the third member did
    not classify the second row) broken by the mean probability:

    >>> import numpy as np
    >>> from astro_clustercls.inference.ensemble import combine_votes
    >>> labels = np.ma.MaskedArray([[1, 1, 2], [3, 4, 1]],
    ...                            mask=[[0, 0, 0], [0, 0, 1]])
    >>> probs = np.array([[[.7, .1, .1, .1], [.4, .3, .2, .1], [.1, .8, .1, 0.]],
    ...                   [[.1, .1, .5, .3], [.1, .1, .2, .6], [np.nan] * 4]])
    >>> votes = combine_votes(labels, probs)
    >>> votes.cluster_class.tolist(), votes.n_members.tolist()
    ([1, 4], [3, 2])
    >>> [round(float(a), 3) for a in votes.class_agreement]
    [0.667, 0.5]
    >>> [round(float(p), 3) for p in votes.class_prob[1]]
    [0.1, 0.1, 0.35, 0.45]
    """
    classes = np.asarray(classes)
    if classes.ndim != 1 or classes.size == 0 or classes.dtype.kind not in "iu":
        raise ValueError(f"'classes' must be a 1-D sequence of int, got {classes!r}")
    if np.unique(classes).size != classes.size:
        raise ValueError(f"'classes' must not repeat a class, got {classes.tolist()}")
    labels = np.ma.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"'labels' must have shape (N, M), got {labels.shape}")
    n, m = labels.shape
    k = classes.size
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, m, k):
        raise ValueError(f"'probs' must have shape (N, M, K) = {(n, m, k)}, got "
                         f"{probs.shape}")
    valid = ~np.ma.getmaskarray(labels)
    if labels.dtype.kind not in "iu":
        raw = np.ma.getdata(labels)[valid]
        if labels.dtype.kind != "f" or not np.all(raw == np.round(raw)):
            raise ValueError("'labels' must be integer classes")
    values = np.ma.getdata(labels).astype(np.int64, copy=False)
    onehot = (values[..., None] == classes) & valid[..., None]  # (N, M, K)
    unknown = valid & ~onehot.any(axis=2)
    if np.any(unknown):
        bad = sorted(set(values[unknown].tolist()))
        raise ValueError(f"'labels' holds {bad}, which are not among 'classes' "
                         f"{classes.tolist()}")
    if not np.all(np.isfinite(probs[valid])):
        raise ValueError("'probs' must be finite wherever the member gave a label")

    votes = onehot.sum(axis=1)  # (N, K)
    n_members = valid.sum(axis=1).astype(np.int64)
    ok = n_members > 0
    psum = np.where(valid[..., None], probs, 0.0).sum(axis=1)
    mean = np.full((n, k), np.nan)
    mean[ok] = psum[ok] / n_members[ok, None]
    top = votes.max(axis=1) if k else np.zeros(n, int)
    tied = votes == top[:, None]
    score = np.where(tied & ok[:, None], mean, -np.inf)
    best = np.argmax(score, axis=1)  # first of equal scores: the lowest class
    rows = np.arange(n)
    prob_best = np.where(ok, mean[rows, best], np.nan)
    agreement = np.full(n, np.nan)
    agreement[ok] = top[ok] / n_members[ok]
    cluster = np.ma.MaskedArray(np.where(ok, classes[best], 0).astype(np.int64),
                                mask=~ok)
    return Votes(cluster, mean.astype(np.float32), prob_best.astype(np.float32),
                 agreement.astype(np.float32), n_members)


def _validate_fraction(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"'{name}' must be a number in [0, 1], got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"'{name}' must be in [0, 1], got {value!r}")
    return float(value)


def _is_file_spec(weights):
    if isinstance(weights, Path):
        return True
    if not isinstance(weights, str):
        return False
    text = weights.strip()
    return (text.lower().endswith(_FILE_SUFFIXES) or "/" in text or "\\" in text
            or Path(text).expanduser().is_file())


def _build_member(spec, index, options):
    """A ClusterClassifier from one entry of ``members``."""
    name = f"members[{index}]"
    if isinstance(spec, ClusterClassifier):
        return spec
    if isinstance(spec, str):
        return ClusterClassifier(spec, **options)
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        if len(spec) != 2 or not isinstance(spec[0], str):
            raise TypeError(f"{name!r} must be a model name, a (name, weights) pair or "
                            f"a ClusterClassifier, got {spec!r}")
        model, weights = spec
        if isinstance(weights, Mapping):
            extra = dict(weights)
        elif _is_file_spec(weights):
            extra = {"weights_path": weights}
        else:
            extra = {"weights": weights}
        return ClusterClassifier(model, **{**options, **extra})
    raise TypeError(f"{name!r} must be a model name, a (name, weights) pair or a "
                    f"ClusterClassifier, got {type(spec).__name__}")


def _member_key(clf):
    """What makes two members the same network: model and weights hash."""
    sha = clf.weights_sha256
    if sha is not None:
        return (clf.model, sha)
    return (clf.model, clf.weights, clf.weights_path)


class ClusterEnsemble:
    """
    Classify star-cluster candidates with several networks and take the mode.

    Each member, a `~astro_clustercls.ClusterClassifier`, classifies
    every source on its own cutouts; the ensemble keeps the most common class
    (`combine_votes`), the fraction of members that agree with it and the
    mean of their probabilities, as in the PHANGS-HST cluster catalogs.

    Parameters
    ----------
    members : sequence, optional
        Two or more members, each a model name (``'resnet18'``: its bundled
        DEFAULT weights), a ``(name, weights)`` pair or a ready
        `~astro_clustercls.ClusterClassifier` (mixing allowed). In a
        pair, ``weights`` is a weights file (a `~pathlib.Path`, or a string
        ending in ``.safetensors``/``.pt``/``.pth`` or naming an existing
        file), a bundled member name (``'SIM_V1'``) or enum member, or a dict
        of options for that member's classifier (e.g. ``{'weights_path': p,
        'tta': True}``). Default: ``('resnet18', 'vgg19_bn')`` (needs bundled
        weights for both). The same network twice (same model and weights
        SHA-256) is refused.
    device : str or `torch.device`, optional
        Device of the members built here (see
        `~astro_clustercls.ClusterClassifier`).
    batch_size : int, optional
        Cutouts per forward pass of the members built here. Results do not
        depend on it.
    progress_bar : bool or None, optional
        Show each member's progress bar (default None: auto, see
        `~astro_clustercls.ClusterClassifier`).
    confidence_threshold : float, optional
        Rows whose ``class_prob_max`` (the ensemble's mean probability of its
        class) is below it are flagged ``LOW_CONFIDENCE``. Default: none.
    min_agreement : float, optional
        Rows whose ``class_agreement`` is below it are flagged
        ``LOW_CONFIDENCE`` too. Default: none.
    **classifier_options
        Other options of `~astro_clustercls.ClusterClassifier`
        (``tta``, ``precision``, ``bands``, ``missing_bands``,
        ``channels_last``, ...), given to every member built here; ready
        instances keep their own. Weights options (``weights``,
        ``weights_path``, ``weights_sha256``, ``weights_meta``) belong to one
        network: give them per member.

    Attributes
    ----------
    members : tuple of `~astro_clustercls.ClusterClassifier`
        The members, in order (the columns of ``member_class``).
    bands : tuple of str
        The bands of the networks (the first member's order).
    cutout_sizes : tuple of int
        Each member's cutout size.

    Raises
    ------
    TypeError, ValueError
        For invalid options (the message names the parameter): fewer than two
        members, a member that is not a name, pair or classifier, members
        with different bands or classes, the same network twice.
    OSError
        If a weights file is missing or fails its hash check.

    Notes
    -----
    Every member classifies every source, so an ensemble of M networks takes
    M times as long as one. Each row's result depends only on that row, so it
    does not depend on ``batch_size`` or on the other sources. A row that
    only some members could classify (e.g. near the image edge, where members
    with larger cutouts still see pixels) is classified by those:
    ``class_n_members`` says by how many, and ``classify_flags`` (the OR of
    the members' flags) keeps what the others reported (e.g.
    ``OFF_IMAGE``). ``NOT_CLASSIFIED`` is set only where no member classified
    the row, and ``LOW_CONFIDENCE`` only by the ensemble's own
    ``confidence_threshold`` and ``min_agreement`` (the members' own bits are
    not carried).

    The members' probabilities are calibrated (temperature scaling) when their
    weights carry a temperature; their mean is then calibrated too only
    approximately: check it on labelled data.

    Examples
    --------
    Two freshly initialised networks (so the classes mean nothing) saved as
    checkpoints, on random 5-band images:

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> import torch
    >>> from astro_clustercls import BandImages
    >>> from astro_clustercls.inference.ensemble import ClusterEnsemble
    >>> from astro_clustercls.models import build_network, save_weights
    >>> bands = ('F275W', 'F336W', 'F438W', 'F555W', 'F814W')
    >>> tmpdir = tempfile.TemporaryDirectory()
    >>> files = []
    >>> for seed in (0, 1):
    ...     _ = torch.manual_seed(seed)
    ...     path = pathlib.Path(tmpdir.name) / f'net{seed}.safetensors'
    ...     meta = {'architecture': 'resnet18', 'bands': list(bands),
    ...             'cutout_size': 15, 'normalization': 'asinh-v1'}
    ...     _ = save_weights(build_network('resnet18'), path, meta)
    ...     files.append(path)
    >>> ensemble = ClusterEnsemble([('resnet18', files[0]), ('resnet18', files[1])],
    ...                            device='cpu')
    >>> rng = np.random.default_rng(0)
    >>> images = BandImages({b: rng.normal(0, 1, (64, 64)) for b in bands})
    >>> result = ensemble([(20.0, 30.0), (40.0, 12.0), (500.0, 10.0)], images)
    ... # doctest: +SHOW_WARNINGS +ELLIPSIS
    CutoutWarning: 1 of 3 rows have incomplete cutouts (1 OFF_IMAGE); 1 of them ...
    >>> result.colnames[2:]  # doctest: +NORMALIZE_WHITESPACE
    ['cluster_class', 'class_prob', 'class_prob_max', 'class_agreement',
     'class_n_members', 'member_class', 'classify_flags']
    >>> result['member_class'].shape, result['class_n_members'].tolist()
    ((3, 2), [2, 2, 0])
    >>> result['cluster_class'].mask.tolist()  # the third source is off the image
    [False, False, True]
    >>> tmpdir.cleanup()
    """

    def __init__(self, members=("resnet18", "vgg19_bn"), *, device=None,
                 batch_size=None, progress_bar=None, confidence_threshold=None,
                 min_agreement=None, **classifier_options):
        if isinstance(members, (str, bytes, ClusterClassifier)) or not isinstance(
                members, Sequence):
            raise TypeError("'members' must be a sequence (list or tuple) of two or "
                            "more model names, (name, weights) pairs or "
                            f"ClusterClassifier instances, got {members!r}")
        if len(members) < 2:
            raise ValueError("'members' must hold at least 2 networks for an "
                             f"ensemble, got {len(members)}; use ClusterClassifier "
                             "for one")
        wrong = [k for k in _PER_MEMBER_ONLY if k in classifier_options]
        if wrong:
            raise TypeError(f"{wrong} name one network's weights: give them per "
                            "member, e.g. members=[('resnet18', 'a.safetensors'), "
                            "('vgg19_bn', {'weights_path': 'b.safetensors'})]")
        self.confidence_threshold = _validate_fraction("confidence_threshold",
                                                       confidence_threshold)
        self.min_agreement = _validate_fraction("min_agreement", min_agreement)
        options = dict(classifier_options, device=device, batch_size=batch_size,
                       progress_bar=progress_bar)
        built = tuple(_build_member(spec, i, options) for i, spec in enumerate(members))

        first = built[0]
        for i, clf in enumerate(built[1:], start=1):
            if set(clf.bands) != set(first.bands):
                raise ValueError(f"'members' must take the same bands: members[0] "
                                 f"({first.model}) takes {list(first.bands)}, "
                                 f"members[{i}] ({clf.model}) {list(clf.bands)}")
            if not np.array_equal(clf._categories(), first._categories()):
                raise ValueError(f"'members' must predict the same classes: "
                                 f"members[0] gives {list(first._categories())}, "
                                 f"members[{i}] {list(clf._categories())}")
        seen = {}
        for i, clf in enumerate(built):
            key = _member_key(clf)
            if key in seen:
                raise ValueError(f"'members' holds the same network twice: "
                                 f"members[{seen[key]}] and members[{i}] are both "
                                 f"{clf.model} with weights sha256 "
                                 f"{str(clf.weights_sha256)[:12]}; an ensemble needs "
                                 "different networks")
            seen[key] = i
        self.members = built
        self.bands = tuple(first.bands)
        self.classes = np.asarray(first._categories())
        self.cutout_sizes = tuple(int(clf.cutout_size) for clf in built)

    @property
    def model(self):
        """The member model names joined by ``'+'`` (e.g. ``'resnet18+vgg19_bn'``)."""
        return "+".join(clf.model for clf in self.members)

    @property
    def cutout_size(self):
        """The largest cutout size of the members (e.g. for a cutout gallery)."""
        return max(self.cutout_sizes)

    @property
    def output_columns(self):
        """The columns this ensemble adds, in order."""
        ood = any(OOD_COLUMN in clf.output_columns for clf in self.members)
        return ENSEMBLE_COLUMNS + (ENSEMBLE_OOD_COLUMNS if ood else ())

    def __len__(self):
        return len(self.members)

    def __repr__(self):
        inner = ", ".join(f"{clf.model}:{str(clf.weights_sha256)[:8]}"
                          f"@{clf.cutout_size}px" for clf in self.members)
        return (f"<ClusterEnsemble mode of {len(self.members)} networks [{inner}] "
                f"bands={list(self.bands)}>")

    def classify(self, sources, images, *, xcol=None, ycol=None, skycol=None,
                 origin=0):
        """
        Classify the sources with every member and combine their classes.

        Parameters
        ----------
        sources, images, xcol, ycol, skycol, origin
            As for `~astro_clustercls.inference.classifier.ClusterClassifier.classify`.

        Returns
        -------
        `~astropy.table.QTable`
            The input rows in input order with the columns of
            `ENSEMBLE_COLUMNS` added, and in ``meta['astro_clustercls']`` the
            provenance: ``ensemble`` (``'mode'``), ``tie_break``, ``model``
            (the member names joined by ``'+'``), ``members`` (each member's
            provenance: model, weights and their sha256, bands, cutout size,
            normalisation, device, precision, number of rows it classified,
            ...), ``bands``, ``categories``, ``positions``,
            ``confidence_threshold``, ``min_agreement``, ``n_sources`` and
            ``n_classified``. Input columns named like one of
            `ENSEMBLE_COLUMNS` are kept, renamed ``<name>_input`` (listed in
            ``renamed_columns``), as by the classifier.

        Raises
        ------
        TypeError, ValueError
            For invalid sources, positions, images or missing bands.
        """
        images = bands_of(images)
        renamed = {}
        out_columns = self.output_columns
        if isinstance(sources, Table):
            if any(c in sources.colnames for c in out_columns):
                # kept under new names (one warning), never replaced
                sources = sources.copy(copy_data=False)
                renamed = rename_clashes(sources, out_columns)
        with warnings.catch_warnings():
            # one CutoutWarning for the ensemble (below), not one per member
            warnings.simplefilter("ignore", CutoutWarning)
            tables = [clf.classify(sources, images, xcol=xcol, ycol=ycol,
                                   skycol=skycol, origin=origin)
                      for clf in self.members]
        n = len(tables[0])
        if any(len(t) != n for t in tables):  # pragma: no cover - same positions
            raise RuntimeError("the members returned tables of different lengths")
        columns = [np.ma.asarray(t["cluster_class"]) for t in tables]
        labels = np.ma.MaskedArray(
            np.stack([np.ma.getdata(c).astype(np.int64) for c in columns], axis=1),
            mask=np.stack([np.ma.getmaskarray(c) for c in columns], axis=1))
        probs = np.stack([np.asarray(t["class_prob"], dtype=np.float32)
                          .reshape(n, self.classes.size) for t in tables], axis=1)
        votes = combine_votes(labels, probs, self.classes)

        flags = np.zeros(n, dtype=np.int32)
        for t in tables:
            flags |= np.asarray(t["classify_flags"], dtype=np.int32)
        own = FLAGS.LOW_CONFIDENCE.bit | FLAGS.NOT_CLASSIFIED.bit
        flags &= ~np.int32(own)
        done = votes.n_members > 0
        low = np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.confidence_threshold is not None:
                low |= done & (votes.class_prob_max < self.confidence_threshold)
            if self.min_agreement is not None:
                low |= done & (votes.class_agreement < self.min_agreement)
        flags |= np.where(low, FLAGS.LOW_CONFIDENCE.bit, 0).astype(np.int32)
        flags |= np.where(done, 0, FLAGS.NOT_CLASSIFIED.bit).astype(np.int32)

        member_scores = np.stack([
            np.ma.filled(np.ma.asarray(t[OOD_COLUMN], dtype=np.float64), np.nan)
            if OOD_COLUMN in t.colnames else np.full(n, np.nan)
            for t in tables], axis=1)
        table = tables[0]
        table.remove_columns([c for c in (*OUTPUT_COLUMNS, OOD_COLUMN)
                              if c in table.colnames])
        member_meta = [t.meta["astro_clustercls"] for t in tables]
        first_meta = member_meta[0]
        names = [clf.model for clf in self.members]
        table["cluster_class"] = MaskedColumn(
            votes.cluster_class.data, mask=votes.cluster_class.mask, fill_value=0,
            dtype=np.int64,
            description="mode of the members' classes 1..4 (Wei et al. 2020): "
                        + "; ".join(f"{c} {name}"
                                    for c, name in zip(CLASSES, CLASS_NAMES,
                                                       strict=True)))
        table["class_prob"] = Column(
            votes.class_prob, description="mean probability of each class 1..4 over "
                                          "the members that classified the row (NaN: "
                                          "not classified)")
        table["class_prob_max"] = Column(
            votes.class_prob_max, description="mean probability of cluster_class "
                                              "(NaN: not classified)")
        table["class_agreement"] = Column(
            votes.class_agreement, description="fraction of the classifying members "
                                               "that give cluster_class (NaN: not "
                                               "classified)")
        table["class_n_members"] = Column(
            votes.n_members, description="number of members that classified the row")
        table["member_class"] = MaskedColumn(
            labels.data, mask=labels.mask, fill_value=0, dtype=np.int64,
            description="class given by each member, in order: " + ", ".join(
                f"{i} {m['model']} ({m.get('weights')})"
                for i, m in enumerate(member_meta)))
        table["member_class"].meta["members"] = names
        table["classify_flags"] = Column(
            flags, description="quality bit mask (OR of the members'), see "
                               "astro_clustercls.data.flags.FLAGS")
        if ENSEMBLE_OOD_COLUMNS[0] in out_columns:
            scored = ~np.isnan(member_scores)
            best = np.where(scored.any(axis=1), np.nanmax(
                np.where(scored, member_scores, -np.inf), axis=1), np.nan)
            table[OOD_COLUMN] = ood_column(best, description=(
                "largest of the members' OOD scores; above 1: flagged "
                "OUT_OF_DISTRIBUTION (masked: no member scored the row)"))
            table["member_ood_score"] = Column(
                member_scores, description="OOD score given by each member, in "
                "order (NaN: none): " + ", ".join(
                    f"{i} {m['model']} ({m.get('weights')})"
                    for i, m in enumerate(member_meta)))
            table["member_ood_score"].meta["members"] = names

        members = [{k: v for k, v in m.items() if k not in _SHARED_META}
                   for m in member_meta]
        table.meta["astro_clustercls"] = get_meta(
            ensemble="mode",
            tie_break=_TIE_BREAK,
            model=self.model,
            n_members=len(self.members),
            members=members,
            bands=list(self.bands),
            cutout_size=self.cutout_size,
            categories=[int(c) for c in self.classes],
            class_names=list(CLASS_NAMES),
            positions=first_meta.get("positions"),
            confidence_threshold=self.confidence_threshold,
            min_agreement=self.min_agreement,
            n_sources=int(n),
            n_classified=int(np.count_nonzero(done)),
        )
        return finish_table(table, renamed)

    __call__ = classify
