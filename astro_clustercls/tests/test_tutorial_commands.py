# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The shell commands of the "first hour" tutorial run as printed.

Every ``.. code-block:: bash`` of ``docs/tutorials/first_hour.rst`` runs, in
order, in one bash shell in a temporary directory, with the installed
``astro-clustercls`` command; the blocks that install packages or open DS9
are left out (they need a network or a display).
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from astropy.table import QTable

import astro_clustercls

PAGE = Path(astro_clustercls.__file__).parents[1] / "docs" / "tutorials" / \
    "first_hour.rst"

pytestmark = pytest.mark.skipif(not PAGE.is_file(),
                                reason="the documentation is not installed")

_SKIP = ("pip install", "ds9 ")


def bash_blocks(text):
    """The contents of the page's ``.. code-block:: bash`` directives, dedented."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: bash\n\n((?:(?:    .*)?\n)+)", text,
                             re.M):
        blocks.append(textwrap.dedent(match.group(1)).strip("\n") + "\n")
    return blocks


def test_blocks_found():
    blocks = bash_blocks(PAGE.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if not any(s in b for s in _SKIP)]
    assert len(blocks) >= 6 and len(runnable) >= 4
    assert any(b.startswith("astro-clustercls classify") for b in runnable)
    assert any("--regions classes.reg" in b and "--gallery gallery.png" in b
               for b in runnable)


def test_first_hour_commands_run(tmp_path):
    blocks = bash_blocks(PAGE.read_text(encoding="utf-8"))
    script = "set -e\n" + "\n".join(b for b in blocks
                                     if not any(s in b for s in _SKIP))
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    field = tmp_path / "my_field"
    sources = QTable.read(field / "sources.ecsv")
    result = QTable.read(field / "classes.ecsv")
    assert len(result) == len(sources) > 20
    assert (field / "gallery.png").stat().st_size > 10000
    regions = (field / "classes.reg").read_text().splitlines()
    assert regions[1] in ("icrs", "fk5")
    assert "clean and confident" in done.stdout
    assert f"classifying {len(sources)} sources..." in done.stderr  # stage lines
