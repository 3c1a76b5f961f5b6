# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The package version (written by setuptools_scm at install time)."""

try:
    from .version import version
except ImportError:  # pragma: no cover - not installed, no setuptools_scm run
    version = "0.0.dev0"

__all__ = ["version"]
