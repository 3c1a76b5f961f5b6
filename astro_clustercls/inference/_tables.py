# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The output table of a classification (package-internal).

`output_table` copies the input (renaming, never replacing, input columns
that have an output column's name); `finish_table` records the renames in the
provenance and emits one `~astro_clustercls.utils.exceptions.CutoutWarning`
per call when rows have cutout flags; `warn_weights` emits a
`~astro_clustercls.utils.exceptions.WeightsWarning` for undertrained weights.
"""

import re
import warnings

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table

from ..data.flags import FLAGS
from ..utils.exceptions import CutoutWarning, InputColumnWarning, WeightsWarning

__all__ = ["OUTPUT_COLUMNS", "OOD_COLUMN", "CUTOUT_FLAGS", "INPUT_SUFFIX",
           "output_table", "rename_clashes", "finish_table", "warn_weights",
           "flag_counts", "cutout_message", "ood_column"]

#: the columns added to the input table, in order
OUTPUT_COLUMNS = ("cluster_class", "class_prob", "class_prob_max", "classify_flags")

#: the column added after them when the weights carry OOD statistics
OOD_COLUMN = "ood_score"

#: the flags that say a cutout could not be made in full (a CutoutWarning)
CUTOUT_FLAGS = ("PARTIAL_OFF_IMAGE", "OFF_IMAGE", "NONFINITE", "MASKED",
                "BAD_POSITION", "CENTER_BAD")

#: an input column named like an output column is kept as ``<name>_input``
INPUT_SUFFIX = "_input"


def _free_name(name, taken):
    """``name + '_input'`` (or ``_input2``, ``_input3``...) not in ``taken``."""
    candidate = f"{name}{INPUT_SUFFIX}"
    k = 2
    while candidate in taken:
        candidate = f"{name}{INPUT_SUFFIX}{k}"
        k += 1
    return candidate


def rename_clashes(table, columns, *, stacklevel=3):
    """
    Rename, in place, the columns of ``table`` named like one of ``columns``.

    Each ``name`` becomes ``name_input`` (``name_input2``... if taken), keeps
    its place and values; one `InputColumnWarning` says what was renamed to
    what. Returns the ``{old: new}`` mapping (empty if nothing clashed).
    """
    clash = [c for c in columns if c in table.colnames]
    renamed = {}
    for name in clash:
        new = _free_name(name, set(table.colnames) | set(columns))
        table.rename_column(name, new)
        renamed[name] = new
    if renamed:
        what = ", ".join(f"{old!r} -> {new!r}" for old, new in renamed.items())
        warnings.warn(f"the sources table already has column(s) named like the "
                      f"classification's output; kept under new names: {what}",
                      InputColumnWarning, stacklevel=stacklevel)
    return renamed


def output_table(sources, resolved, columns=OUTPUT_COLUMNS):
    """
    A new QTable holding the input rows and columns (or positions).

    Returns ``(table, renamed)``: input columns named like one of
    ``columns`` are kept under new names (see `rename_clashes`), never
    replaced; ``renamed`` maps old to new names.
    """
    if isinstance(sources, Table):
        table = QTable(sources, copy=True)
        return table, rename_clashes(table, columns, stacklevel=4)
    if isinstance(sources, SkyCoord):
        coords = sources if not sources.isscalar else sources.reshape((1,))
        return QTable({"sky_centroid": coords}), {}
    return QTable({"x_centroid": resolved.xy[:, 0],
                   "y_centroid": resolved.xy[:, 1]}), {}


def ood_column(scores, description=None):
    """The ``ood_score`` column: float64, masked (and NaN) where not scored."""
    scores = np.asarray(scores, dtype=np.float64)
    return MaskedColumn(
        scores, mask=np.isnan(scores), fill_value=np.nan, dtype=np.float64,
        description=description or (
            "how unlike the network's training data the object is; above 1: "
            "flagged OUT_OF_DISTRIBUTION (masked: not classified)"))


def flag_counts(flags, names=CUTOUT_FLAGS):
    """``{flag name: rows with it}`` for the flags of ``names`` set somewhere."""
    flags = np.asarray(flags)
    counts = {}
    for name in names:
        n = int(np.count_nonzero(flags & FLAGS[name].bit))
        if n:
            counts[name] = n
    return counts


def cutout_message(flags):
    """The text of the `CutoutWarning` for the ``classify_flags`` (None: no flag)."""
    flags = np.asarray(flags)
    counts = flag_counts(flags)
    if not counts:
        return None
    bits = 0
    for name in counts:
        bits |= FLAGS[name].bit
    n_rows = int(np.count_nonzero(flags & bits))
    n_none = int(np.count_nonzero(flags & FLAGS.NOT_CLASSIFIED.bit))
    detail = ", ".join(f"{n} {name}" for name, n in counts.items())
    unclassified = (f"; {n_none} of them could not be classified "
                    "(NOT_CLASSIFIED, cluster_class masked)" if n_none else "")
    return (f"{n_rows} of {len(flags)} rows have incomplete cutouts ({detail})"
            f"{unclassified}; every row is kept, see classify_flags "
            "(astro_clustercls.data.flags.FLAGS)")


def finish_table(table, renamed, *, stacklevel=3):
    """
    Record the input-column renames in the provenance; warn about cutout flags.

    One `CutoutWarning` per call, when some rows have a flag of
    `CUTOUT_FLAGS`, with the number of rows per flag and how many got no
    class (see `cutout_message`). Returns ``table``.
    """
    meta = table.meta.setdefault("astro_clustercls", {})
    if renamed:
        meta["renamed_columns"] = dict(renamed)
    message = cutout_message(table["classify_flags"])
    if message:
        warnings.warn(message, CutoutWarning, stacklevel=stacklevel)
    return table


_UNDERTRAINED = re.compile(r"\bunder-?trained\b", re.IGNORECASE)


def warn_weights(model, meta, *, stacklevel=3):
    """
    A `WeightsWarning` when the weights' meta marks them as undertrained.

    ``meta['undertrained']`` true, or notes that say "undertrained" (as the
    bundled VGG19-BN's do). Missing temperature calibration is not warned
    about: fine-tuned weights are often uncalibrated, and the probabilities
    are then those of the network (``meta['temperature']`` is 1).
    """
    notes = str(meta.get("notes") or "")
    if not (meta.get("undertrained") or _UNDERTRAINED.search(notes)):
        return
    first = re.split(r"(?<=\.)\s", notes.strip(), maxsplit=1)[0] if notes else ""
    name = meta.get("weights") or meta.get("member") or "(file)"
    detail = first if _UNDERTRAINED.search(first) else "marked undertrained in " \
        "their meta"
    warnings.warn(f"{model} weights {name}: {detail} (see their model card)",
                  WeightsWarning, stacklevel=stacklevel)
