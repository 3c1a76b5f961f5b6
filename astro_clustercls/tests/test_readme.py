# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The README's Python usage example runs as written.

The code block of the README's "Usage" section is executed, unchanged, in a
temporary directory holding the five FITS files it names
(``f275w_drc.fits`` ... ``f814w_drc.fits``), written from a simulated field.
It uses the bundled ResNet18 weights.
"""

import re
from pathlib import Path

import numpy as np
from astropy.table import QTable

import astro_clustercls

README = Path(astro_clustercls.__file__).parents[1] / "README.md"

def usage_code(text):
    """The first ```python block of the README's '## Usage' section."""
    section = re.search(r"^## Usage\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## Usage' section"
    block = re.search(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the README's Usage section has no ```python block"
    return block.group(1)


def test_usage_block_is_found():
    code = usage_code(README.read_text(encoding="utf-8"))
    assert "ClusterClassifier" in code and "BandImages.from_files" in code
    assert len(code.strip().splitlines()) <= 12  # "a ten-line usage example"


def test_readme_usage_runs(tmp_path, monkeypatch, capsys):
    from astro_clustercls.simulation import simulate_field

    code = usage_code(README.read_text(encoding="utf-8"))
    files = re.findall(r'"([\w.]+\.fits)"', code)
    assert len(files) == 5, files
    images, truth = simulate_field(seed=2, n_objects=40, shape=(160, 160))
    for band, ccd in images.items():
        name = f"{band.lower()}_drc.fits"
        assert name in files
        ccd.write(tmp_path / name)
    monkeypatch.chdir(tmp_path)

    namespace = {"__name__": "__readme__"}
    exec(compile(code, str(README), "exec"), namespace)

    result = namespace["result"]
    sources = namespace["sources"]
    assert len(sources) > 10
    assert len(result) == len(sources)
    assert np.all(np.asarray(result["x_centroid"]) == np.asarray(sources["x_centroid"]))
    printed = capsys.readouterr().out
    assert "cluster_class" in printed and "classify_flags" in printed
    back = QTable.read(tmp_path / "clusters.ecsv")
    assert back.colnames == result.colnames
    assert np.array_equal(np.ma.filled(back["cluster_class"], 0),
                          np.ma.filled(result["cluster_class"], 0))
    assert back.meta["astro_clustercls"]["model"] == "resnet18"
