# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astro-clustercls`` command line: one subcommand a module
(``classify``, ``demo``, ``simulate``, ``train``, ``evaluate``, ``adapt``,
``experiments``), dispatched by `astro_clustercls.cli.main.main`.
"""

from .main import SUBCOMMANDS, build_parser, main

__all__ = ["main", "SUBCOMMANDS", "build_parser"]
