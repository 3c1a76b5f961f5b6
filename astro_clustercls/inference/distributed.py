# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Survey scale: classify many fields, and mosaics larger than memory, on Dask.

`classify_fields` classifies a list of fields (one source table and one set of
band images each) as one task per field, or one task per tile of each field;
`classify_mosaic` classifies one large field tile by tile. Both run on a
``dask.distributed`` cluster when given a `~distributed.Client`, and in this
process, one task after the other and through the same code, when not: Dask
is an optional dependency (the ``[dask]`` extra) and is imported only when a
client is given.

The results are exactly those of `~astro_clustercls.ClusterClassifier`
run in one process on each field: same rows in the same order, same columns,
same classes and probabilities, same flags; ``meta['astro_clustercls']`` also
says which field (index, name, files) and where it ran.

Design choices:

* **Workers read their own data.** Give images as ``{band: path}`` and sources
  as a table file: only the paths travel; each worker memory-maps its FITS
  files and reads only the pixels its cutouts need. In-memory
  `~astro_clustercls.BandImages` work too (scattered to the cluster once; for
  tiles, only each tile's window is sent).
* **One network per worker process.** The classifier of a given model, weights
  and options is built once per process and cached, not once per task.
* **Threads.** A worker runs one classification at a time and gives torch its
  ``nthreads`` intra-op threads, so Dask's threads and torch's threads never
  oversubscribe the cores.
* **Failures stay local.** A field that fails (missing file, bad table,
  ...) comes back as a `FieldError` at its place in the list; the other
  fields are returned, and a warning lists the failures.
  ``raise_errors=True`` raises the first failure instead.
* **A worker that dies is not a failure.** Dask runs its tasks again on the
  other workers (a task that kills more than
  ``distributed.scheduler.allowed-failures`` workers fails with
  ``KilledWorker``); in-memory images scattered to it are scattered again.
  The results are the same as without the loss.
"""

import inspect
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from astropy.table import QTable, vstack

from ..data.images import BandImages, bands_of
from ..data.positions import resolve_positions
from ..models import read_weights_meta
from ..utils._parameters import as_pair, validate_choice, validate_positive_int
from ..utils._progress_bars import add_progress_bar
from ..utils.exceptions import ClusterClsWarning, CutoutWarning
from ._cache import cached_network, file_key, model_names
from ._tables import OOD_COLUMN, OUTPUT_COLUMNS, cutout_message, output_table
from .classifier import ClusterClassifier
from .ensemble import ClusterEnsemble

__all__ = ["classify_fields", "classify_mosaic", "FieldError", "plan_tiles", "Tile"]

#: options of ``ClusterClassifier.classify`` that may also be given per field
_CALL_OPTIONS = ("xcol", "ycol", "skycol", "origin")

# per-process state (on each Dask worker, and in the client process for
# in-process runs): classifiers built, tasks run, and one lock so that one
# classification at a time uses torch's threads
_LOCK = threading.Lock()
_CLASSIFIERS = {}
_BUILDS = Counter()
_TASKS = Counter()
_THREADS = {"last": None}   # torch threads of the last classification


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclass
class FieldError:
    """
    What went wrong with one field of `classify_fields`.

    It takes the failed field's place in the returned list, so the other
    fields' tables are kept. It is falsy, so ``[r for r in results if r]``
    keeps only the tables.

    Attributes
    ----------
    index : int
        Position of the field in ``fields``.
    name : str or None
        The field's name.
    exc_type : str
        Name of the exception's class, e.g. ``'OSError'``.
    message : str
        The exception's message.
    traceback : str
        The formatted traceback (from the worker, on a cluster).
    exception : BaseException or None
        The exception itself (None if it could not be sent back).
    tile : tuple of 4 int or None
        ``(y0, y1, x0, x1)`` core of the tile that failed, for tiled fields.
    """

    index: int
    name: str = None
    exc_type: str = ""
    message: str = ""
    traceback: str = field(default="", repr=False)
    exception: BaseException = field(default=None, repr=False, compare=False)
    tile: tuple = None

    def __bool__(self):
        return False

    @property
    def where(self):
        """``'field 3 (name)'``, plus the tile when there is one."""
        where = f"field {self.index}" + (f" ({self.name})" if self.name else "")
        if self.tile is not None:
            where += f", tile {self.tile}"
        return where

    def __str__(self):
        return f"{self.where}: {self.exc_type}: {self.message}"

    def reraise(self):
        """Raise the original exception (or a RuntimeError with the message)."""
        if self.exception is not None:
            raise self.exception
        raise RuntimeError(str(self))


@dataclass(frozen=True)
class Tile:
    """
    One tile of a mosaic: a core that owns sources and a window that is read.

    Ranges are 0-based, end-exclusive pixel indices, ``(start, stop)`` along
    y and x. The window is the core grown by the overlap on each side and
    clipped to the image.
    """

    index: int
    core_y: tuple
    core_x: tuple
    window_y: tuple
    window_x: tuple

    @property
    def core(self):
        """``(y0, y1, x0, x1)`` of the core."""
        return (*self.core_y, *self.core_x)

    @property
    def window(self):
        """``(y0, y1, x0, x1)`` of the window."""
        return (*self.window_y, *self.window_x)

    @property
    def slices(self):
        """``(slice_y, slice_x)`` of the window, to index an image."""
        return slice(*self.window_y), slice(*self.window_x)


def plan_tiles(shape, tile_size, overlap):
    """
    Cut an image into tiles whose windows overlap by ``overlap`` pixels.

    Parameters
    ----------
    shape : tuple of 2 int
        ``(ny, nx)`` of the image.
    tile_size : int or tuple of 2 int
        ``(ny, nx)`` of the tile cores (a scalar is used for both). The last
        tile along each axis may be smaller.
    overlap : int
        Pixels added on each side of a core to make its window (clipped to
        the image).

    Returns
    -------
    list of `Tile`
        Row by row (y outer, x inner).

    Examples
    --------
    >>> from astro_clustercls.inference.distributed import plan_tiles
    >>> tiles = plan_tiles((100, 250), 128, 7)
    >>> len(tiles)
    2
    >>> tiles[1].core, tiles[1].window
    ((0, 100, 128, 250), (0, 100, 121, 250))
    """
    ny, nx = as_pair("shape", shape, lower_bound=(1, 1))
    ty, tx = as_pair("tile_size", tile_size, lower_bound=(1, 1))
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) \
            or overlap < 0:
        raise ValueError(f"'overlap' must be an integer >= 0, got {overlap!r}")
    overlap = int(overlap)
    tiles = []
    for y0 in range(0, ny, ty):
        y1 = min(y0 + ty, ny)
        for x0 in range(0, nx, tx):
            x1 = min(x0 + tx, nx)
            tiles.append(Tile(len(tiles), (y0, y1), (x0, x1),
                              (max(y0 - overlap, 0), min(y1 + overlap, ny)),
                              (max(x0 - overlap, 0), min(x1 + overlap, nx))))
    return tiles


def _assign_tiles(corners, shape, tile_size, size):
    """
    Tile index of each source: the tile whose core holds its cutout's centre.

    ``corners`` are the cutouts' first pixels, ``ceil(position - size / 2)``
    (as `~astro_clustercls.make_cutouts` computes them); the centre pixel is
    that plus ``size // 2``. Sources off the image go to the nearest tile;
    bad (NaN) positions to tile 0.
    """
    ny, nx = shape
    ty, tx = tile_size
    nty, ntx = -(-ny // ty), -(-nx // tx)
    centre = np.nan_to_num(corners + size // 2, nan=0.0, posinf=0.0, neginf=0.0)
    ix = np.clip(np.floor(centre[:, 0] / tx), 0, ntx - 1).astype(np.int64)
    iy = np.clip(np.floor(centre[:, 1] / ty), 0, nty - 1).astype(np.int64)
    return iy * ntx + ix


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def _is_path(value):
    return isinstance(value, (str, PathLike))


def _is_path_images(images):
    """True if ``images`` names files (mapping band -> path, or list of paths)."""
    if isinstance(images, Mapping) and not _is_band_images(images):
        return len(images) > 0 and all(_is_path(v) for v in images.values())
    if isinstance(images, (list, tuple)):
        return len(images) > 0 and all(_is_path(v) for v in images)
    return False


def _is_band_images(images):
    return isinstance(images, BandImages)


def _load_images(images):
    """BandImages from paths (memory-mapped) or from in-memory images."""
    if _is_path_images(images):
        if isinstance(images, Mapping):
            return BandImages.from_files({b: str(p) for b, p in images.items()},
                                         memmap=True)
        return BandImages.from_files([str(p) for p in images], memmap=True)
    return bands_of(images)


def _load_sources(sources):
    """A table file is read (format guessed by astropy); anything else passes."""
    if _is_path(sources):
        path = Path(sources)
        if not path.is_file():
            raise FileNotFoundError(f"sources table file not found: {sources}")
        return QTable.read(path)
    return sources


def _describe_images(images):
    if _is_path_images(images):
        if isinstance(images, Mapping):
            return {str(b): str(p) for b, p in images.items()}
        return [str(p) for p in images]
    return None


@dataclass
class _Field:
    index: int
    name: str
    sources: object
    images: object
    call: dict


def _parse_fields(fields, call_defaults):
    """Normalise ``fields`` into a list of `_Field`."""
    if isinstance(fields, Mapping):
        items = [(name, value) for name, value in fields.items()]
    elif isinstance(fields, (list, tuple)):
        items = [(None, value) for value in fields]
    else:
        raise TypeError("'fields' must be a list of (sources, images) pairs or a "
                        "mapping name -> (sources, images), got "
                        f"{type(fields).__name__}")
    parsed = []
    for i, (name, value) in enumerate(items):
        call = dict(call_defaults)
        if isinstance(value, Mapping) and "images" in value and "sources" in value:
            extra = set(value) - {"sources", "images", "name", *_CALL_OPTIONS}
            if extra:
                raise TypeError(f"fields[{i}] has unknown key(s) {sorted(extra)}; "
                                "allowed: 'sources', 'images', 'name', "
                                f"{', '.join(repr(k) for k in _CALL_OPTIONS)}")
            sources, images = value["sources"], value["images"]
            name = value.get("name", name)
            call.update({k: value[k] for k in _CALL_OPTIONS if k in value})
        elif isinstance(value, (list, tuple)) and len(value) in (2, 3):
            sources, images = value[0], value[1]
            if len(value) == 3:
                name = value[2]
        else:
            raise TypeError(f"fields[{i}] must be a (sources, images) pair, a "
                            "(sources, images, name) triple or a dict with keys "
                            f"'sources' and 'images', got {type(value).__name__}")
        if name is None and _is_path(sources):
            name = Path(sources).stem
        parsed.append(_Field(i, None if name is None else str(name), sources, images,
                             call))
    return parsed


# ---------------------------------------------------------------------------
# the classifier on each worker
# ---------------------------------------------------------------------------
def _freeze(value):
    """A hashable version of an option value (dicts and lists become tuples)."""
    if isinstance(value, Mapping):
        return ("__mapping__",) + tuple(sorted((str(k), _freeze(v))
                                               for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    return value


def _thaw(value):
    if isinstance(value, tuple) and value[:1] == ("__mapping__",):
        return {k: _thaw(v) for k, v in value[1:]}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class _Spec:
    """Everything that defines a classifier; the key of the per-process cache."""

    model: object  # a name, or a tuple of names for an ensemble
    weights: object
    weights_path: str
    file_key: tuple
    options: tuple  # sorted (name, frozen value) pairs for ClusterClassifier

    def kwargs(self):
        return {k: _thaw(v) for k, v in self.options}


def _get_classifier(spec):
    """The classifier of ``spec``, built once per process."""
    clf = _CLASSIFIERS.get(spec)
    if clf is None:
        if isinstance(spec.model, tuple):
            clf = ClusterEnsemble(spec.model, **spec.kwargs())
        else:
            clf = ClusterClassifier(spec.model, weights=spec.weights,
                                    weights_path=spec.weights_path, **spec.kwargs())
        _CLASSIFIERS[spec] = clf
        _BUILDS[spec] += 1
    return clf


def _current_worker():
    """The Dask worker running this code, or None (never imports distributed)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker()
    except (ValueError, ImportError):
        return None


def _worker_nthreads(worker):
    state = getattr(worker, "state", None)
    nthreads = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return int(nthreads) if nthreads else None


def _worker_state():
    """
    This process's counters: classifiers built per spec, tasks run, networks
    loaded and the torch threads of the last classification (for tests and
    monitoring, e.g. ``client.run``; torch's setting is per thread, hence
    recorded by the task).
    """
    return {"classifier_builds": {repr(k): v for k, v in _BUILDS.items()},
            "tasks": sum(_TASKS.values()),
            "network_loads": cached_network.cache_info().misses,
            "torch_threads": _THREADS["last"]}


def _run_classifier(spec, sources, images, call, threads):
    """
    Classify under the process lock with the right torch thread count.

    Returns ``(table, warnings, where)``: the warnings raised in the
    classification, as ``(category, message)`` pairs, are sent back to the
    client to be shown there.
    """
    worker = _current_worker()
    with _LOCK:
        previous = torch.get_num_threads()
        if threads is None and worker is not None:
            threads = _worker_nthreads(worker)
        if threads is not None and threads != previous:
            torch.set_num_threads(int(threads))
        _THREADS["last"] = torch.get_num_threads()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                clf = _get_classifier(spec)
                table = clf(sources, images, **call)
        finally:
            if worker is None and threads is not None:
                torch.set_num_threads(previous)
        _TASKS[spec] += 1
    seen = []
    for w in caught:
        item = (w.category, str(w.message))
        if item not in seen:
            seen.append(item)
    where = getattr(worker, "address", None) if worker is not None else "local"
    return table, seen, where


def _field_task(spec, sources, images, call, threads):
    """One whole field: read its files here, classify, return the table."""
    sources = _load_sources(sources)
    images = _load_images(images)
    return _run_classifier(spec, sources, images, call, threads)


def _window_images(images, tile):
    """A `BandImages` over the window of ``tile`` (views: nothing is read)."""
    return images.window(*tile.slices)


def _tile_task(spec, images, tile, xy, call, threads):
    """
    One tile: cutouts from the tile's window of the (memory-mapped) images.

    ``images`` are the full images (paths or BandImages), or
    ``('__window__', window)`` with the window already cut; ``xy`` are the
    sources' positions in the window's pixels.
    """
    if isinstance(images, tuple) and images[:1] == ("__window__",):
        window = images[1]
    else:
        window = _window_images(_load_images(images), tile)
    table, caught, where = _run_classifier(spec, xy, window, call, threads)
    return table[[c for c in (*OUTPUT_COLUMNS, OOD_COLUMN) if c in table.colnames]], \
        caught, where


# ---------------------------------------------------------------------------
# running tasks: in this process or on Dask
# ---------------------------------------------------------------------------
#: times a task cancelled because its scattered data was lost (its worker
#: died), or failed fetching it over a closed connection, is submitted again,
#: with the data scattered again
_RESUBMITS = 5

#: seconds to wait before the n-th resubmission after a closed connection
#: (``_BACKOFF * 2**n``): time for the scheduler to drop the dead worker, so
#: that the data is not scattered to it again
_BACKOFF = 0.25


def _back_off(attempt):
    """Wait before the ``attempt``-th (0-based) retry after a closed connection."""
    time.sleep(_BACKOFF * 2 ** attempt)

@dataclass
class _Failure:
    exception: BaseException
    traceback: str


class _LocalRunner:
    """Runs tasks in this process, one after the other, when results are asked."""

    def __init__(self):
        self.tasks = []

    def put(self, images):
        return images

    def submit(self, fn, *args):
        self.tasks.append((fn, args))
        return len(self.tasks) - 1

    def results(self, progress_bar, stop_on_error):
        for key in add_progress_bar(range(len(self.tasks)), desc="classify fields",
                                    total=len(self.tasks), progress_bar=progress_bar):
            fn, args = self.tasks[key]
            try:
                value = fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported per field
                value = _Failure(exc, traceback.format_exc())
            yield key, value
            if stop_on_error and isinstance(value, _Failure):
                return

    def cancel(self):
        pass


class _DaskRunner:
    """
    Submits tasks to a ``distributed.Client``; gathers them as they finish.

    A worker that dies is Dask's to handle: its tasks run again on the other
    workers (up to ``distributed.scheduler.allowed-failures`` deaths per
    task). In-memory data scattered to it, though, dies with it and Dask
    cannot make it again: the tasks that need it are cancelled. Those are
    submitted again here, with the data scattered again (`_RESUBMITS` times
    at most per task).
    """

    def __init__(self, client):
        self.client = client
        self.futures = []
        self.calls = []      # (fn, args) of each task, to submit it again
        self.data = {}       # key of scattered data -> the data itself
        self.replaced = {}   # key of lost scattered data -> its new future

    def put(self, images):
        # in-memory images go to the cluster once, not once per task
        if _is_path_images(images):
            return images
        from distributed.comm import CommClosedError

        for attempt in range(_RESUBMITS + 1):
            try:
                future = self.client.scatter([images], hash=False)[0]
                break
            except CommClosedError:  # sent to a worker that was dying: again
                if attempt == _RESUBMITS:
                    raise
                _back_off(attempt)
        self.data[future.key] = images
        return future

    def submit(self, fn, *args):
        self.calls.append((fn, args))
        self.futures.append(self.client.submit(fn, *args, pure=False))
        return len(self.futures) - 1

    def _scattered(self, args):
        """The scattered data among ``args`` (also inside tuples)."""
        for arg in args:
            if isinstance(arg, tuple):
                yield from self._scattered(arg)
            elif getattr(arg, "key", None) in self.data:
                yield arg

    def _rescatter(self, value, force=False):
        """
        ``value``, or its data scattered again if it was lost (``force``: also
        when the scheduler does not know it yet, after a connection error).
        """
        if isinstance(value, tuple):
            return tuple(self._rescatter(v, force) for v in value)
        if getattr(value, "key", None) not in self.data:
            return value
        while value.key in self.replaced:   # already sent again for another task
            value = self.replaced[value.key]
        if force or value.status != "finished":  # lost with the worker holding it
            self.replaced[value.key] = value = self.put(self.data[value.key])
        return value

    def _resubmit(self, i, force=False):
        """Submit task ``i`` again, its lost data scattered again (None: no data)."""
        fn, args = self.calls[i]
        if next(self._scattered(args), None) is None:
            return None
        args = self._rescatter(args, force)
        self.calls[i] = (fn, args)
        self.futures[i] = self.client.submit(fn, *args, pure=False)
        return self.futures[i]

    def results(self, progress_bar, stop_on_error):
        from distributed import as_completed
        from distributed.comm import CommClosedError

        index = {f.key: i for i, f in enumerate(self.futures)}
        resubmitted = Counter()
        done = as_completed(self.futures)
        for future in add_progress_bar(done, desc="classify fields",
                                       total=len(self.futures),
                                       progress_bar=progress_bar):
            i = index[future.key]
            try:
                value = future.result()
            except (CancelledError, CommClosedError) as exc:  # its data was lost?
                # cancelled: the scheduler lost the data with its worker; a
                # closed connection: the task could not fetch it from a worker
                # that was dying (the scheduler may not know yet)
                again = None
                if resubmitted[i] < _RESUBMITS:
                    closed = isinstance(exc, CommClosedError)
                    if closed:
                        _back_off(resubmitted[i])
                    again = self._resubmit(i, force=closed)
                if again is not None:
                    resubmitted[i] += 1
                    index[again.key] = i
                    done.add(again)
                    continue
                value = _Failure(exc, f"{type(exc).__name__}: {exc}\n")
            except Exception as exc:  # noqa: BLE001 - reported per field
                tb = future.traceback()
                text = "".join(traceback.format_tb(tb)) if tb is not None else ""
                value = _Failure(exc, text + f"{type(exc).__name__}: {exc}\n")
            yield i, value
            if stop_on_error and isinstance(value, _Failure):
                return

    def cancel(self):
        self.client.cancel(self.futures)


# ---------------------------------------------------------------------------
# the public functions
# ---------------------------------------------------------------------------
def _split_options(kwargs):
    """Split ``**classifier_kwargs`` into ClusterClassifier and call options."""
    init = [p for p in inspect.signature(ClusterClassifier.__init__).parameters
            if p not in ("self", "model")]
    init_opts, call_opts = {}, {}
    for key, value in kwargs.items():
        if key in _CALL_OPTIONS:
            call_opts[key] = value
        elif key in init:
            init_opts[key] = value
        else:
            raise TypeError(f"unknown option {key!r}: classifier options are "
                            f"{sorted(set(init) | set(_CALL_OPTIONS))}")
    return init_opts, call_opts


def _make_spec(model, weights, weights_path, options):
    if isinstance(model, (list, tuple)):
        # an ensemble of bundled networks (ClusterEnsemble): names only
        if weights is not None or weights_path is not None:
            raise ValueError("an ensemble ('model' a list of names) uses each "
                             "network's bundled DEFAULT weights: 'weights' and "
                             "'weights_path' must be None")
        if len(model) < 2 or not all(isinstance(m, str) for m in model):
            raise TypeError(f"'model' must be a model name or a list of two or more "
                            f"names, got {model!r}")
        model = tuple(validate_choice("model", m.strip().lower(), model_names())
                      for m in model)
    elif not isinstance(model, str):
        raise TypeError(f"'model' must be a model name (str) or a list of names, "
                        f"got {type(model).__name__}")
    else:
        model = validate_choice("model", model.strip().lower(), model_names())
    if weights is not None and weights_path is not None:
        raise ValueError("give either 'weights' (bundled) or 'weights_path' (a "
                         "file), not both")
    if weights_path is not None:
        if not _is_path(weights_path):
            raise TypeError("'weights_path' must be a path (str or pathlib.Path), "
                            f"got {type(weights_path).__name__}")
        weights_path = str(Path(weights_path).expanduser().resolve())
    frozen = tuple(sorted((k, _freeze(v)) for k, v in options.items()
                          if v is not None))
    spec = _Spec(model, weights, weights_path,
                 file_key(weights_path), frozen)
    hash(spec)  # options must be hashable (they key the per-worker cache)
    return spec


def _cutout_size(spec):
    """The cutout side the classifier of ``spec`` uses (for the tile overlap)."""
    options = spec.kwargs()
    if options.get("cutout_size") is not None:
        return int(options["cutout_size"])
    try:
        if spec.weights_path is not None:
            return int(read_weights_meta(spec.weights_path)["cutout_size"])
    except Exception:  # noqa: BLE001 - fall back on building the classifier
        pass
    return _get_classifier(spec).cutout_size


def _tile_overlap(size, tile_overlap):
    """The overlap to use, checked against the cutout size."""
    if tile_overlap is None:
        return size // 2
    if tile_overlap < size // 2:
        raise ValueError(f"'tile_overlap' must be at least half the cutout size "
                         f"({size // 2} for {size}-pixel cutouts) so that no cutout "
                         f"is cut at a tile edge, got {tile_overlap}")
    return tile_overlap


def _prepare_tiles(fld, spec, runner, tile_size, size, overlap, threads):
    """
    Plan the tiles of one field and submit one task per tile with sources.

    Reads the sources and the images' headers (memory-mapped: no pixels) here.
    Returns what `_assemble` needs.
    """
    sources = _load_sources(fld.sources)
    images = _load_images(fld.images)
    call = fld.call
    resolved = resolve_positions(sources, wcs=images.wcs,
                                 **{k: call[k] for k in _CALL_OPTIONS if k in call})
    tiles = plan_tiles(images.shape, tile_size, overlap)
    # positions are sent to the tiles as ``corner + size / 2`` in the window's
    # pixels: make_cutouts finds the same corner from them with exact float
    # arithmetic (an integer plus a half), whereas shifting the positions
    # themselves may round differently next to half-pixel boundaries
    with np.errstate(invalid="ignore"):
        corners = np.ceil(resolved.xy - size / 2.0)
    owner = _assign_tiles(corners, images.shape, tile_size, size)
    used = [t for t in tiles if np.any(owner == t.index)] or tiles[:1]
    remote = None if _is_path_images(fld.images) else "window"
    keys = []
    for tile in used:
        rows = np.flatnonzero(owner == tile.index)
        if remote == "window":
            target = ("__window__", runner.put(_window_images(images, tile)))
        else:
            target = fld.images
        offset = np.array([tile.window_x[0], tile.window_y[0]], dtype=float)
        xy = (corners[rows] - offset) + size / 2.0
        key = runner.submit(_tile_task, spec, target, tile, xy, {"origin": 0},
                            threads)
        keys.append((key, tile, rows))
    return {"sources": sources, "resolved": resolved, "keys": keys,
            "tiles": len(tiles), "tile_size": tile_size, "overlap": overlap}


def _assemble(plan, parts):
    """One table in input order from the tiles' columns, as one run would give."""
    resolved = plan["resolved"]
    n = len(resolved.xy)
    tables = [t for _, t in parts]
    table, renamed = output_table(plan["sources"], resolved,
                                  tuple(tables[0].colnames))
    order = np.concatenate([rows for rows, _ in parts]) if parts else np.zeros(0, int)
    with warnings.catch_warnings():
        # the tiles' meta (dates) may differ: the first tile's is kept
        warnings.simplefilter("ignore")
        stacked = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 \
            else tables[0]
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    stacked = stacked[inverse] if n else stacked[:0]
    for col in tables[0].colnames:
        table[col] = stacked[col]
    meta = dict(tables[0].meta["astro_clustercls"])
    meta["positions"] = resolved.source
    meta["n_sources"] = int(n)
    meta["n_classified"] = int(np.count_nonzero(~np.ma.getmaskarray(
        table["cluster_class"])))
    if renamed:
        meta["renamed_columns"] = renamed
    table.meta["astro_clustercls"] = meta
    return table


def _validate_common(batch_size, tile_size, tile_overlap, threads_per_worker, client):
    batch_size = validate_positive_int("batch_size", batch_size, allow_none=True)
    if tile_size is not None:
        tile_size = as_pair("tile_size", tile_size, lower_bound=(1, 1))
    elif tile_overlap is not None:
        raise ValueError("'tile_overlap' is only used with 'tile_size'")
    if tile_overlap is not None:
        if isinstance(tile_overlap, bool) or not isinstance(tile_overlap,
                                                            (int, np.integer)):
            raise TypeError(f"'tile_overlap' must be an integer, got {tile_overlap!r}")
        tile_overlap = int(tile_overlap)
    threads_per_worker = validate_positive_int("threads_per_worker",
                                               threads_per_worker, allow_none=True)
    if client is not None and not callable(getattr(client, "submit", None)):
        raise TypeError("'client' must be a dask.distributed Client (or None to run "
                        f"in this process), got {type(client).__name__}")
    return batch_size, tile_size, tile_overlap, threads_per_worker


def classify_fields(fields, *, model="resnet18", weights=None, weights_path=None,
                    client=None, batch_size=None, cutout_size=None, tile_size=None,
                    tile_overlap=None, threads_per_worker=None, progress_bar=False,
                    raise_errors=False, **classifier_kwargs):
    """
    Classify the sources of many fields, on a Dask cluster or in this process.

    Each field is one task (or, with ``tile_size``, one task per tile); each
    result is the table `~astro_clustercls.ClusterClassifier` gives
    for that field in one process, row for row and bit for bit.

    Parameters
    ----------
    fields : list or mapping
        The fields, each a ``(sources, images)`` pair, a ``(sources, images,
        name)`` triple, or a dict with keys ``'sources'``, ``'images'`` and
        optionally ``'name'``, ``'xcol'``, ``'ycol'``, ``'skycol'``,
        ``'origin'`` (position columns of that field). A mapping ``{name:
        (sources, images)}`` names the fields. ``sources``: a table (anything
        `~astro_clustercls.ClusterClassifier` accepts) or the path of
        a table file (read with ``QTable.read``, e.g. ECSV). ``images``: a
        `~astro_clustercls.BandImages`, or ``{band: FITS path}`` (or a list of
        paths, keyed by their FILTER keyword): with paths each worker opens
        the files itself, memory-mapped, and only the paths are sent.
    model : str or list of str, optional
        Network name (default ``'resnet18'``), or several names for an
        ensemble of their bundled DEFAULT weights
        (`~astro_clustercls.inference.ensemble.ClusterEnsemble`, built once per worker).
    weights : str or weights enum member, optional
        Bundled weights (see `~astro_clustercls.ClusterClassifier`).
    weights_path : path-like, optional
        A weights file; it must be readable at the same path on every worker
        (a shared file system), like the FITS files.
    client : `distributed.Client`, optional
        Run on this Dask cluster. Default: run in this process, one task after
        the other (Dask is then not needed).
    batch_size, cutout_size : int, optional
        As in `~astro_clustercls.ClusterClassifier`.
    tile_size : int or tuple of 2 int, optional
        Classify each field in tiles of ``(ny, nx)`` pixels, one task per
        tile with sources (see `classify_mosaic`). Default: one task per
        field.
    tile_overlap : int, optional
        Pixels each tile window extends beyond its core; at least (and by
        default) half the cutout size, so no cutout is cut at a tile edge.
    threads_per_worker : int, optional
        Torch intra-op threads for each classification. Default: on a Dask
        worker, the worker's ``nthreads``; in this process, torch's current
        setting. A worker runs one classification at a time.
    progress_bar : bool, optional
        Show a tqdm progress bar over the tasks.
    raise_errors : bool, optional
        Raise the first error instead of returning a `FieldError` for the
        field (default False). Remaining tasks are cancelled.
    **classifier_kwargs
        Other options of `~astro_clustercls.ClusterClassifier`
        (``device``, ``bands``, ``missing_bands``, ``tta``,
        ``confidence_threshold``) and of its ``classify`` method (``xcol``,
        ``ycol``, ``skycol``, ``origin``: defaults for every field).

    Returns
    -------
    list
        One entry per field, in the order of ``fields``: a
        `~astropy.table.QTable` as returned by
        `~astro_clustercls.ClusterClassifier`, whose
        ``meta['astro_clustercls']`` also holds ``field_index``,
        ``field_name``, ``field_sources`` / ``field_images`` (the paths, when
        given as paths), ``executed_on`` (``'local'`` or the worker addresses)
        and, when tiled, ``tiles``; or a `FieldError` for a field that failed.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (checked before any task runs).
    Exception
        With ``raise_errors=True``, the first field's error (with a note
        naming the field).

    Warns
    -----
    ClusterClsWarning
        When some fields failed (listing them). Warnings raised while
        classifying a field (e.g. a `~astro_clustercls.utils.exceptions.
        BandWarning`) are shown in this process, once per field, prefixed by
        the field.

    Notes
    -----
    Failures are returned rather than raised by default because one bad file
    in a survey of hundreds of fields should not throw away hours of work on
    the others. A `FieldError` is falsy, so ``[t for t in results if t]``
    keeps the tables.

    Examples
    --------
    Two fields, classified in this process (pass ``client=`` for a cluster):

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from astro_clustercls import BandImages
    >>> from astro_clustercls.inference.distributed import classify_fields, FieldError
    >>> from astro_clustercls.models import build_network, save_weights
    >>> bands = ('F275W', 'F336W', 'F438W', 'F555W', 'F814W')
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> meta = {'arch': 'resnet18', 'bands': list(bands), 'cutout_size': 15,
    ...         'normalization': 'asinh-v1'}
    >>> _ = save_weights(build_network('resnet18'), tmp / 'w.safetensors', meta)
    >>> rng = np.random.default_rng(1)
    >>> images = BandImages({b: rng.normal(0, 1, (64, 64)) for b in bands})
    >>> fields = {'ngc0001': ([(20.0, 30.0), (40.0, 12.0)], images),
    ...           'ngc0002': ([(5.0, 5.0)], {b: tmp / 'missing.fits' for b in bands})}
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter('ignore')   # "1 of 2 fields failed"
    ...     results = classify_fields(fields, weights_path=tmp / 'w.safetensors',
    ...                               device='cpu')
    >>> len(results[0]), results[0].meta['astro_clustercls']['field_name']
    (2, 'ngc0001')
    >>> isinstance(results[1], FieldError), results[1].exc_type
    (True, 'FileNotFoundError')
    """
    batch_size, tile_size, tile_overlap, threads = _validate_common(
        batch_size, tile_size, tile_overlap, threads_per_worker, client)
    init_opts, call_opts = _split_options(classifier_kwargs)
    init_opts.update(batch_size=batch_size, cutout_size=cutout_size)
    init_opts.setdefault("progress_bar", False)
    spec = _make_spec(model, weights, weights_path, init_opts)
    parsed = _parse_fields(fields, call_opts)
    if tile_size is not None:   # checked once, before any task
        size = _cutout_size(spec)
        overlap = _tile_overlap(size, tile_overlap)

    runner = _DaskRunner(client) if client is not None else _LocalRunner()
    results = [None] * len(parsed)
    plans = {}          # field index -> tile plan
    owners = {}         # task key -> (field index, tile or None, rows)

    def fail(fld, exc, tb, tile=None):
        error = FieldError(fld.index, fld.name, type(exc).__name__, str(exc), tb, exc,
                           None if tile is None else tile.core)
        if raise_errors:
            runner.cancel()
            exc.add_note(f"(in {error.where})")
            raise exc
        return error

    for fld in parsed:
        try:
            if tile_size is None:
                # paths travel as they are; in-memory images are sent once
                images = fld.images if _is_path_images(fld.images) \
                    else runner.put(fld.images)
                key = runner.submit(_field_task, spec, fld.sources, images, fld.call,
                                    threads)
                owners[key] = (fld.index, None, None)
                continue
            plan = _prepare_tiles(fld, spec, runner, tile_size, size, overlap,
                                  threads)
        except Exception as exc:  # noqa: BLE001 - reported per field
            results[fld.index] = fail(fld, exc, traceback.format_exc())
            continue
        plan["parts"] = []
        plans[fld.index] = plan
        for key, tile, rows in plan["keys"]:
            owners[key] = (fld.index, tile, rows)

    caught = {}       # field index -> [(category, message)]
    where = {}        # field index -> [worker address]
    for key, value in runner.results(progress_bar, raise_errors):
        if key not in owners:            # a task of a field that failed to plan
            continue
        index, tile, rows = owners[key]
        fld = parsed[index]
        if results[index] is not None:   # the field already failed
            continue
        if isinstance(value, _Failure):
            results[index] = fail(fld, value.exception, value.traceback, tile)
            continue
        table, seen, address = value
        for item in seen:
            if item not in caught.setdefault(index, []):
                caught[index].append(item)
        if address not in where.setdefault(index, []):
            where[index].append(address)
        if tile is None:
            results[index] = table
        else:
            plans[index]["parts"].append((rows, table))

    for index, plan in plans.items():
        if results[index] is None:
            fld = parsed[index]
            try:
                results[index] = _assemble(plan, sorted(
                    plan["parts"], key=lambda part: part[0][0] if len(part[0]) else -1))
            except Exception as exc:  # noqa: BLE001 - reported per field
                results[index] = fail(fld, exc, traceback.format_exc())

    failed = []
    for fld in parsed:
        result = results[fld.index]
        label = f"field {fld.index}" + (f" ({fld.name})" if fld.name else "")
        for category, message in caught.get(fld.index, []):
            if fld.index in plans and issubclass(category, CutoutWarning):
                continue  # tiles: one warning for the whole field, below
            warnings.warn(f"{label}: {message}", category)
        if fld.index in plans and not isinstance(result, FieldError):
            message = cutout_message(result["classify_flags"])
            if message:
                warnings.warn(f"{label}: {message}", CutoutWarning)
        if isinstance(result, FieldError):
            failed.append(result)
            continue
        meta = result.meta.setdefault("astro_clustercls", {})
        meta["field_index"] = fld.index
        meta["field_name"] = fld.name
        if _is_path(fld.sources):
            meta["field_sources"] = str(fld.sources)
        if _describe_images(fld.images) is not None:
            meta["field_images"] = _describe_images(fld.images)
        meta["executed_on"] = sorted(where.get(fld.index, []))
        if fld.index in plans:
            plan = plans[fld.index]
            meta["tiles"] = {"tile_size": list(plan["tile_size"]),
                             "overlap": plan["overlap"], "n_tiles": plan["tiles"],
                             "n_tasks": len(plan["keys"])}
    if failed:
        warnings.warn(f"{len(failed)} of {len(parsed)} fields failed: "
                      + "; ".join(str(f) for f in failed), ClusterClsWarning)
    return results


def classify_mosaic(sources, images, *, tile_size=4096, tile_overlap=None, client=None,
                    model="resnet18", weights=None, weights_path=None, batch_size=None,
                    cutout_size=None, threads_per_worker=None, progress_bar=False,
                    **classifier_kwargs):
    """
    Classify the sources of one large image tile by tile.

    The image is cut into tiles of ``tile_size`` pixels; each source belongs
    to the one tile whose core holds the centre pixel of its cutout, and each
    tile reads a window grown by ``tile_overlap`` (at least half the cutout
    size) on each side, so every cutout is whole in its tile's window. Tiles
    with sources are classified as separate tasks (on ``client``, or in this
    process) and the result is reassembled into one table in input order:
    the same table `~astro_clustercls.ClusterClassifier` gives for
    the whole image, including flags of sources near the image edges.

    With images given as ``{band: FITS path}``, each task memory-maps the
    files and reads only its window (only where cutouts fall), so the mosaic
    never has to fit in memory.

    Parameters
    ----------
    sources : table, path, array-like (N, 2) or SkyCoord
        The sources, as for `~astro_clustercls.ClusterClassifier`
        (or the path of a table file). Positions are resolved once, with the
        full image's WCS.
    images : `~astro_clustercls.BandImages`, mapping band -> path, or list of paths
        The mosaic.
    tile_size : int or tuple of 2 int, optional
        Tile cores in pixels, ``(ny, nx)`` (default 4096).
    tile_overlap, client, model, weights, weights_path : optional
        See `classify_fields`.
    batch_size, cutout_size, threads_per_worker, progress_bar : optional
        See `classify_fields`.
    **classifier_kwargs
        See `classify_fields`.

    Returns
    -------
    `~astropy.table.QTable`
        As `~astro_clustercls.ClusterClassifier` returns, with
        ``meta['astro_clustercls']['tiles']`` describing the tiling.

    Raises
    ------
    Exception
        Any error of any tile (a single field: nothing to keep).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from astro_clustercls import BandImages
    >>> from astro_clustercls.inference.classifier import ClusterClassifier
    >>> from astro_clustercls.inference.distributed import classify_mosaic
    >>> from astro_clustercls.models import build_network, save_weights
    >>> bands = ('F275W', 'F336W', 'F438W', 'F555W', 'F814W')
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'w.safetensors'
    >>> meta = {'arch': 'resnet18', 'bands': list(bands), 'cutout_size': 15,
    ...         'normalization': 'asinh-v1'}
    >>> _ = save_weights(build_network('resnet18'), path, meta)
    >>> rng = np.random.default_rng(2)
    >>> images = BandImages({b: rng.normal(0, 1, (96, 96)) for b in bands})
    >>> xy = rng.uniform(0, 96, (40, 2))
    >>> tiled = classify_mosaic(xy, images, tile_size=48, weights_path=path,
    ...                         device='cpu')  # doctest: +IGNORE_WARNINGS
    >>> tiled.meta['astro_clustercls']['tiles']['n_tiles']
    4
    >>> whole = ClusterClassifier(weights_path=path, device='cpu')(xy, images)
    ... # doctest: +IGNORE_WARNINGS
    >>> np.array_equal(tiled['class_prob'], whole['class_prob'])
    True
    """
    result = classify_fields([(sources, images)], model=model, weights=weights,
                             weights_path=weights_path, client=client,
                             batch_size=batch_size, cutout_size=cutout_size,
                             tile_size=tile_size, tile_overlap=tile_overlap,
                             threads_per_worker=threads_per_worker,
                             progress_bar=progress_bar, raise_errors=True,
                             **classifier_kwargs)[0]
    meta = result.meta["astro_clustercls"]
    for key in ("field_index", "field_name"):
        meta.pop(key, None)
    return result
