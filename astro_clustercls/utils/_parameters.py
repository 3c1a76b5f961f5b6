# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Validation helpers: each takes the parameter's name so errors can name it."""

import difflib
import numbers

import numpy as np

__all__ = [
    "as_pair",
    "validate_odd_size",
    "validate_positive_int",
    "validate_choice",
    "label_array",
    "validate_table_columns",
]


def as_pair(name, value, *, lower_bound=None, upper_bound=None, check_odd=False):
    """
    Return ``value`` as a ``(ny, nx)`` pair of ints.

    Parameters
    ----------
    name : str
        Parameter name, used in error messages.
    value : int or sequence of 2 int
        A scalar is used for both axes.
    lower_bound, upper_bound : tuple of 2 int, optional
        Inclusive bounds.
    check_odd : bool, optional
        Require both values to be odd.

    Returns
    -------
    pair : tuple of 2 int
        The values in ``(ny, nx)`` order.

    Raises
    ------
    TypeError
        If ``value`` is not an integer or pair of integers.
    ValueError
        If a value is out of bounds or even when ``check_odd`` is set.

    Examples
    --------
    >>> from astro_clustercls.utils._parameters import as_pair
    >>> as_pair('size', 31)
    (31, 31)
    >>> as_pair('size', (31, 33), check_odd=True)
    (31, 33)
    """
    arr = np.atleast_1d(value)
    if arr.ndim != 1 or arr.size not in (1, 2):
        raise ValueError(f"{name!r} must be a scalar or a pair of values, "
                         f"got {value!r}")

    def _is_int(v):
        return isinstance(v, numbers.Integral) or (
            isinstance(v, (float, np.floating)) and float(v).is_integer())

    if not all(_is_int(v) for v in arr.tolist()):
        raise TypeError(f"{name!r} must contain integers, got {value!r}")
    if isinstance(value, bool):
        raise TypeError(f"{name!r} must be an integer, got a bool")
    arr = np.broadcast_to(arr.astype(int), (2,))
    pair = (int(arr[0]), int(arr[1]))
    if lower_bound is not None and (pair[0] < lower_bound[0]
                                    or pair[1] < lower_bound[1]):
        raise ValueError(f"{name!r} must be >= {lower_bound}, got {value!r}")
    if upper_bound is not None and (pair[0] > upper_bound[0]
                                    or pair[1] > upper_bound[1]):
        raise ValueError(f"{name!r} must be <= {upper_bound}, got {value!r}")
    if check_odd and (pair[0] % 2 == 0 or pair[1] % 2 == 0):
        raise ValueError(f"{name!r} must be odd so the object sits on the central "
                         f"pixel, got {value!r}")
    return pair


def validate_positive_int(name, value, *, allow_none=False, maximum=None):
    """
    Return ``value`` as a positive int, or raise naming ``name``.

    Examples
    --------
    >>> from astro_clustercls.utils._parameters import validate_positive_int
    >>> validate_positive_int('batch_size', 64)
    64
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name!r} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name!r} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name!r} must be <= {maximum}, got {value!r}")
    return int(value)


def validate_odd_size(name, value, *, minimum=3):
    """Return ``value`` as an odd int >= ``minimum`` (a square cutout side)."""
    size = validate_positive_int(name, value)
    if size < minimum or size % 2 == 0:
        raise ValueError(f"{name!r} must be an odd integer >= {minimum} so the object "
                         f"sits on the central pixel, got {value!r}")
    return size


def validate_choice(name, value, choices):
    """
    Return ``value`` if it is one of ``choices``, else raise a ValueError naming them.

    Close matches are suggested.

    Examples
    --------
    >>> from astro_clustercls.utils._parameters import validate_choice
    >>> validate_choice('mode', 'partial', ('partial', 'trim', 'strict'))
    'partial'
    """
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"{name!r} must be one of {tuple(choices)}, got {value!r}.{hint}")


def validate_table_columns(name, table, columns):
    """Raise a ValueError naming ``name`` if ``table`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise ValueError(f"{name!r} has no column(s) {missing}; available columns: "
                         f"{table.colnames}")


def label_array(name, values):
    """Return (int64 values, valid mask) of a 1-D label array; masked/NaN -> invalid."""
    if hasattr(values, "mask") and not isinstance(values, np.ma.MaskedArray):
        values = np.ma.MaskedArray(np.asarray(values), mask=np.ma.getmaskarray(values))
    arr = np.ma.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name!r} must be one-dimensional, got shape {arr.shape}")
    mask = np.ma.getmaskarray(arr).copy()
    data = np.asarray(arr.data)
    if data.dtype.kind == "f":
        mask |= ~np.isfinite(data)
        data = np.where(mask, 0, data)
        if np.any(data != np.round(data)):
            raise ValueError(f"{name!r} holds non-integer labels")
    elif data.dtype.kind not in "iub":
        raise TypeError(f"{name!r} must hold integer class labels, got dtype "
                        f"{data.dtype}")
    return data.astype(np.int64), ~mask
