# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""General utilities: warnings, validation helpers, optional dependencies."""

from .exceptions import *  # noqa: F401, F403
from .exceptions import __all__ as _exc_all

__all__ = list(_exc_all)
