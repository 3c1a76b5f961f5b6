# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Streaming sources through the images in chunks (package-internal).

Sources are taken in order of their ``y`` pixel, a chunk of a few thousand
at a time (~64 MB of cutouts), so memory is proportional to the chunk and not
to the number of sources or the image size; pages of large memory-mapped
images are handed back to the operating system after each chunk, and a
background thread (`Prefetcher`) cuts and prepares the next chunk while the
network runs on this one. Used by `~astro_clustercls.inference.classifier`.
"""

import mmap
import queue
import sys
import threading

import numpy as np

from ..data.cutouts import make_cutouts

__all__ = ["MAX_BATCH_SIZE", "CHUNK_BYTES", "CHUNK_MAX", "RELEASE_MIN_BYTES",
           "SPAN_BYTES", "PREFETCH",
           "chunk_size", "chunk_bounds", "mapped_buffers", "release_pages",
           "Prefetcher", "plan_chunks", "cutout_chunks"]

#: largest accepted ``batch_size``
MAX_BATCH_SIZE = 65536

# bytes of float32 cutouts held at once per chunk of objects (plus the
# normalised copy): memory stays proportional to this, not to the number of
# sources
CHUNK_BYTES = 64 * 2**20
CHUNK_MAX = 4096

# memory-mapped images whose mapped bytes exceed this have their pages handed
# back to the operating system after each chunk (smaller ones stay cached)
RELEASE_MIN_BYTES = 256 * 2**20
# ... and a chunk then spans at most this many bytes of image rows (all bands),
# which bounds the pages mapped at once: the kernel maps pages around each
# one read, so a chunk's cutouts map about the whole band of rows they cross
SPAN_BYTES = 192 * 2**20
# Linux madvise(2) advice: drop clean pages (read-only mappings), or reclaim
# them without ever losing data (writable and copy-on-write mappings, whose
# modified pages stay in memory); MADV_PAGEOUT exists since Linux 5.4
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 4)
_MADV_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21)

# cutout chunks prepared ahead of the forward pass by the background thread
PREFETCH = 1



def chunk_size(n_bands, size, batch_size):
    per_object = 2 * 4 * n_bands * size * size  # raw + normalised float32
    chunk = int(np.clip(CHUNK_BYTES // per_object, 64, CHUNK_MAX))
    return max(chunk, min(batch_size, MAX_BATCH_SIZE))


def chunk_bounds(ys, chunk, span=None):
    """
    Start and stop indices of chunks of the sorted ``ys`` (NaN last).

    A chunk holds at most ``chunk`` sources and, if ``span`` is given, only
    sources whose ``y`` lies within ``span`` of its first one. The loop runs
    once per chunk, not per source.
    """
    n = len(ys)
    if span is None:
        starts = np.arange(0, n, chunk)
        return list(zip(starts, np.minimum(starts + chunk, n), strict=True))
    finite = int(np.count_nonzero(np.isfinite(ys)))
    bounds, i = [], 0
    while i < n:
        j = min(i + chunk, n)
        if i < finite:
            j = min(j, int(np.searchsorted(ys[:finite], ys[i] + span, "left")),
                    finite)
            j = max(j, i + 1)
        bounds.append((i, j))
        i = j
    return bounds


def mapped_buffers(arrays):
    """The distinct `mmap.mmap` objects behind ``arrays`` (memory-mapped FITS)."""
    found = {}
    for array in arrays:
        base = array
        for _ in range(64):  # the chain of views down to the buffer
            if isinstance(base, mmap.mmap):
                found[id(base)] = base
                break
            base = getattr(base, "base", None)
            if base is None:
                break
    return list(found.values())


def release_pages(buffers):
    """
    Hand the resident pages of memory-mapped images back to the system.

    The pages a chunk of cutouts read stay mapped (and counted in the resident
    set) until released; sources are processed in order of ``y``, so a chunk's
    pages are not needed again. Read-only maps drop their pages (the file
    stays in the page cache); writable and copy-on-write maps (astropy's
    default) are paged out with ``MADV_PAGEOUT``, which never loses modified
    pages. A no-op off Linux or where ``madvise`` refuses.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    for buf in buffers:
        try:
            readonly = memoryview(buf).readonly
            buf.madvise(_MADV_DONTNEED if readonly else _MADV_PAGEOUT)
        except (OSError, ValueError, AttributeError, BufferError):  # closed, old kernel
            pass


class Prefetcher:
    """
    Iterate ``generator`` in a background thread, ``depth`` items ahead.

    numpy and torch release the GIL in their heavy loops, so the next chunk is
    cut and normalised while the network runs on this one. Exceptions
    (including KeyboardInterrupt) raised by the generator are re-raised in the
    consumer; closing stops the thread.
    """

    _DONE = object()

    def __init__(self, generator, depth=PREFETCH):
        self._gen = generator
        self._queue = queue.Queue(maxsize=max(int(depth), 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="astro_clustercls-prefetch")
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            for item in self._gen:
                if not self._put((True, item)):
                    return
            self._put((True, self._DONE))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((False, exc))
        finally:
            self._gen.close()

    def __iter__(self):
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._DONE:
                return
            yield item

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


def plan_chunks(images, xy, n_bands, size, batch_size):
    """
    The order of the sources, their chunks and the memory-mapped buffers to release.

    Parameters
    ----------
    images : `~astro_clustercls.BandImages`
        The images the cutouts are cut from.
    xy : ndarray (N, 2)
        Pixel positions (NaN where unknown).
    n_bands, size, batch_size : int
        The network's band count, the cutout size and the forward batch size
        (a chunk holds at least one batch).

    Returns
    -------
    order : ndarray (N,)
        Source indices in order of ``y`` (unknown positions last): a chunk
        reads a band of image rows, so memory-mapped pages are read once.
    bounds : list of (start, stop)
        The chunks, as slices of ``order``.
    buffers : list of `mmap.mmap`
        The maps whose pages are released after each chunk (empty unless
        they exceed `RELEASE_MIN_BYTES`; a chunk then spans at most
        `SPAN_BYTES` of image rows).
    """
    order = np.argsort(xy[:, 1], kind="stable")
    arrays = [images[b].data for b in images.bands]
    arrays += [src[1] for src in (images.bad_pixel_source(b) for b in images.bands)
               if src is not None]
    buffers = mapped_buffers(arrays)
    span = None
    if sum(len(buf) for buf in buffers if not buf.closed) < RELEASE_MIN_BYTES:
        buffers = []
    else:
        row_bytes = sum(a.shape[-1] * a.itemsize for a in arrays)
        span = max(SPAN_BYTES // max(row_bytes, 1), size)
    bounds = chunk_bounds(xy[order, 1], chunk_size(n_bands, size, batch_size), span)
    return order, bounds, buffers


def cutout_chunks(images, xy, size, order, bounds, buffers, prepare):
    """
    Yield the chunks of sources with their prepared cutouts, in ``order``.

    Each item is ``(idx, flags, rows, data)``: the source indices, their
    cutout flags, the positions in ``idx`` of the usable rows (on the image,
    some finite pixel) and ``prepare(raw)`` of those rows' cutouts (None when
    there are none). Pages of ``buffers`` are released after each cut.
    """
    for start, stop in bounds:
        idx = order[start:stop]
        stack = make_cutouts(images, xy[idx], size)
        if buffers:
            release_pages(buffers)
        valid = np.isfinite(stack.data).reshape(len(stack), -1).any(axis=1)
        rows = np.flatnonzero(stack.usable & valid)
        flags = stack.flags
        if rows.size == 0:
            yield idx, flags, rows, None
            continue
        raw = stack.data if rows.size == len(stack) else stack.data[rows]
        del stack
        yield idx, flags, rows, prepare(raw)
