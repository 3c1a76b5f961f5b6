# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
pytest set-up of the documentation's doctests (``pytest --doctest-rst docs``).

Every page runs in its own temporary directory (the tutorials write FITS files,
tables and figures into the current directory), with matplotlib's Agg backend.
The tutorials use the bundled networks, which ship with the package.
"""

import pytest


@pytest.fixture(autouse=True)
def _docs_page(tmp_path, monkeypatch):
    """Run every documentation page in a fresh directory, with Agg."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
