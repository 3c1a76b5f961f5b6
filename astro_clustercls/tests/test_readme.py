# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The README's examples run as printed.

The README's "Usage" section has a Python example (the ```python block after
the ``<!-- usage-python -->`` marker) and a shell example (the ```console
block after ``<!-- usage-shell -->``). Both run here, unchanged, in one
temporary directory holding the five FITS files they name, written from a
simulated field (100 objects, 256x256 px) under those names: first the Python
example (which also writes the ``sources.ecsv`` the shell example reads), then
the shell example, through a real shell with the installed
``astro-clustercls`` command. They use the bundled ResNet18 weights.
"""

import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from astropy.table import QTable

import astro_clustercls
from astro_clustercls.simulation import simulate_field
from astro_clustercls.utils.exceptions import CutoutWarning

README = Path(astro_clustercls.__file__).parents[1] / "README.md"


def _block(text, marker, language):
    """The fenced ``language`` block right after ``<!-- marker -->``."""
    found = re.search(rf"^<!-- {re.escape(marker)} -->\n```{language}\n(.*?)^```",
                      text, re.M | re.S)
    assert found, f"README.md has no ```{language} block after <!-- {marker} -->"
    return found.group(1)


def usage_code(text):
    """The README's Python usage example."""
    return _block(text, "usage-python", "python")


def shell_commands(text):
    """The commands of the README's shell example, continuation lines joined."""
    commands, current = [], None
    for line in _block(text, "usage-shell", "console").splitlines():
        if line.startswith("$ "):
            current = line[2:]
        elif current is not None:
            current += "\n" + line
        else:
            continue
        if not current.rstrip().endswith("\\"):
            commands.append(current)
            current = None
    assert current is None, "the shell example ends with a continuation line"
    return commands


def _fits_names(text):
    return sorted(set(re.findall(r"\b([\w.]+\.fits)\b", text)))


def test_usage_blocks_are_found():
    text = README.read_text(encoding="utf-8")
    code = usage_code(text)
    assert "ClusterClassifier" in code and "BandImages.from_files" in code
    assert len([line for line in code.strip().splitlines() if line.strip()]) <= 12
    commands = shell_commands(text)
    assert len(commands) == 1 and commands[0].startswith("astro-clustercls classify")


def test_usage_examples_agree():
    """Both examples read the same five files; the Python one writes sources.ecsv."""
    text = README.read_text(encoding="utf-8")
    code, shell = usage_code(text), "\n".join(shell_commands(text))
    files = _fits_names(code)
    assert len(files) == 5
    assert _fits_names(shell) == files
    args = shlex.split(shell.replace("\\\n", " "))
    sources = args[args.index("--sources") + 1]
    assert re.search(rf"""\.write\(["']{re.escape(sources)}["']""", code)
    # detection as astronomers do it: background subtracted, 5 sigma
    assert re.search(r"detect_sources\(.*nsigma=5\b", code)


def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    text = README.read_text(encoding="utf-8")
    code = usage_code(text)
    images, truth = simulate_field(seed=2, n_objects=100, shape=(256, 256))
    written = images.write(tmp_path, pattern="{band}_drc.fits")
    assert sorted(p.name for p in written.values()) == _fits_names(code)
    monkeypatch.chdir(tmp_path)

    # the Python example, as printed (flagged rows near the chip gap warn)
    namespace = {"__name__": "__readme__"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, str(README), "exec"), namespace)
    assert all(issubclass(w.category, CutoutWarning) for w in caught), \
        [str(w.message) for w in caught]

    result, sources = namespace["result"], namespace["sources"]
    # photutils on the background-subtracted image at 5 sigma: about the number
    # of objects put there, not hundreds of noise peaks
    assert 25 <= len(sources) <= 110, len(sources)
    assert len(result) == len(sources)
    assert np.all(np.asarray(result["x_centroid"]) == np.asarray(sources["x_centroid"]))
    printed = capsys.readouterr().out
    assert "cluster_class" in printed and "classify_flags" in printed
    back = QTable.read(tmp_path / "clusters.ecsv")
    assert back.colnames == result.colnames
    assert np.array_equal(np.ma.filled(back["cluster_class"], 0),
                          np.ma.filled(result["cluster_class"], 0))
    assert back.meta["astro_clustercls"]["model"] == "resnet18"
    assert len(QTable.read(tmp_path / "sources.ecsv")) == len(sources)

    # the shell example, as printed, in a shell, with the installed command
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    for command in shell_commands(text):
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    classes = QTable.read(tmp_path / "classes.ecsv")
    assert len(classes) == len(sources)
    np.testing.assert_array_equal(np.ma.filled(classes["cluster_class"], 0),
                                  np.ma.filled(result["cluster_class"], 0))
    regions = (tmp_path / "classes.reg").read_text().splitlines()
    assert regions[1] in ("icrs", "fk5")  # the images have a WCS: sky regions
    assert len([r for r in regions if r.startswith("circle(")]) == len(sources)
