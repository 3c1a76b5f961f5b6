# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Progress bars: tqdm when asked for (or, by default, on a terminal for long
work) and available; the bare iterable otherwise.

``progress_bar`` arguments take True, False or None. None means
``astro_clustercls.conf.progress_bar``, whose default, None, is *auto*: a bar
when standard error is a terminal and the work is long (at least
``min_total`` items when the caller gives one), nothing in pipes, files, CI
logs and notebooks' captured output.
"""

import sys

from .._config import conf
from ._optional_deps import HAS_TQDM

__all__ = ["add_progress_bar", "want_progress", "stderr_is_terminal",
           "AUTO_MIN_OBJECTS"]

#: with ``progress_bar=None`` (auto), classifying fewer objects shows no bar
AUTO_MIN_OBJECTS = 5000


def stderr_is_terminal():
    """Whether standard error is an interactive terminal."""
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def want_progress(progress_bar=None, *, total=None, min_total=None):
    """
    Resolve a ``progress_bar`` argument to True or False.

    Parameters
    ----------
    progress_bar : bool or None
        True or False are returned as they are; None takes
        ``conf.progress_bar``, and None there means auto: True when standard
        error is a terminal and ``total`` (when known) is at least
        ``min_total`` (when given).
    total, min_total : int, optional
        The amount of work, and the least amount worth a bar in auto mode.

    Examples
    --------
    >>> from astro_clustercls.utils._progress_bars import want_progress
    >>> want_progress(True), want_progress(False)
    (True, False)
    >>> want_progress(None, total=10, min_total=5000)  # short work: never a bar
    False
    """
    if progress_bar is None:
        progress_bar = conf.progress_bar
    if progress_bar is None or (isinstance(progress_bar, str)
                                and progress_bar.strip().lower() == "auto"):
        if total is not None and min_total is not None and total < min_total:
            return False
        return stderr_is_terminal()
    return bool(progress_bar)


def add_progress_bar(iterable=None, *, desc=None, total=None, progress_bar=True,
                     min_total=None):
    """
    Wrap ``iterable`` in a tqdm progress bar if one is wanted and tqdm installed.

    ``progress_bar`` is resolved with `want_progress` (None: auto). Without
    ``iterable``, returns a bar to ``update`` by hand (or None when no bar).

    Examples
    --------
    >>> from astro_clustercls.utils._progress_bars import add_progress_bar
    >>> list(add_progress_bar(range(3), progress_bar=False))
    [0, 1, 2]
    """
    if not want_progress(progress_bar, total=total, min_total=min_total):
        return iterable
    if not HAS_TQDM:
        return iterable
    from tqdm.auto import tqdm  # optional: imported on use

    return tqdm(iterable, desc=desc, total=total)
