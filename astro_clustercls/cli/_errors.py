# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The command line's name and its one-line errors."""

__all__ = ["PROG", "CLIError"]

PROG = "astro-clustercls"


class CLIError(Exception):
    """An error to report in one line (exit status ``status``)."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status
