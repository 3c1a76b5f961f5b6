# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Package-level checks: version, configuration, README/CI consistency."""

import re
from pathlib import Path

import pytest

import astro_clustercls
from astro_clustercls import conf

ROOT = Path(astro_clustercls.__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def test_version():
    assert isinstance(astro_clustercls.__version__, str)
    assert re.match(r"^\d+\.\d+", astro_clustercls.__version__)


def test_conf_defaults_and_set_temp():
    assert conf.device == "auto"
    assert conf.batch_size == 256
    with conf.set_temp("batch_size", 7):
        assert conf.batch_size == 7
    assert conf.batch_size == 256


def test_public_api_exported():
    for name in astro_clustercls.__all__:
        assert hasattr(astro_clustercls, name), name


@pytest.mark.skipif(not README.exists() or not CI_RUN.exists(),
                    reason="source checkout only")
def test_readme_ci_block_has_install_and_test_commands():
    text = README.read_text()
    block = text.split("<!-- ci:begin -->")[1].split("<!-- ci:end -->")[0]
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) == 2
    install, test = commands
    assert "pip install" in install and "constraints.txt" in install
    assert "astro-clustercls demo" in install
    assert "pip install" in test and "pytest" in test and "test" in test
    # .ci/run reads these very lines, it does not keep a copy of them
    assert "ci:begin" in CI_RUN.read_text()
