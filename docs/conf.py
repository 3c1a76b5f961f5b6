# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Sphinx configuration for astro-clustercls (sphinx-astropy v2 defaults)."""

import os
from datetime import datetime, timezone
from importlib.metadata import version as _version

from sphinx_astropy.conf.v2 import *  # noqa: F403
from sphinx_astropy.conf.v2 import exclude_patterns, extensions, intersphinx_mapping

project = "astro-clustercls"
author = "The astro-clustercls developers"
copyright = f"2026-{datetime.now(timezone.utc).year}, {author}"
release = _version("astro-clustercls")
version = release.split("+")[0]

extensions = list(extensions) + ["matplotlib.sphinxext.plot_directive"]
exclude_patterns = list(exclude_patterns) + ["_build", "**/_build"]

# No network in our build environments: intersphinx is off when this is set.
if os.environ.get("ASTRO_CLUSTERCLS_NO_INTERSPHINX"):
    intersphinx_mapping.clear()
else:
    intersphinx_mapping.update({
        "torch": ("https://pytorch.org/docs/stable/", None),
        "photutils": ("https://photutils.readthedocs.io/en/stable/", None),
        "regions": ("https://astropy-regions.readthedocs.io/en/stable/", None),
        "ccdproc": ("https://ccdproc.readthedocs.io/en/stable/", None),
    })

html_title = f"{project} v{version}"
html_static_path = ["_static"]
html_theme_options = {
    "github_url": "https://github.com/astro-clustercls/astro-clustercls",
}
plot_formats = [("png", 100)]
plot_html_show_source_link = False
nitpicky = False
automodapi_toctreedirnm = "api"
