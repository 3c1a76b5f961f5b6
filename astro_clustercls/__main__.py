# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``python -m astro_clustercls``: the `astro-clustercls` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
