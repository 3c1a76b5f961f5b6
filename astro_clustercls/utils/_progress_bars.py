# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A tqdm progress bar when asked for and available, the bare iterable otherwise."""

__all__ = ["add_progress_bar"]


def add_progress_bar(iterable=None, *, desc=None, total=None, progress_bar=True):
    """
    Wrap ``iterable`` in a tqdm progress bar if ``progress_bar`` and tqdm is installed.

    Examples
    --------
    >>> from astro_clustercls.utils._progress_bars import add_progress_bar
    >>> list(add_progress_bar(range(3), progress_bar=False))
    [0, 1, 2]
    """
    if not progress_bar:
        return iterable
    from ._optional_deps import HAS_TQDM

    if not HAS_TQDM:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total)
