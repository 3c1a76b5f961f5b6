# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Test configuration shared by every test and doctest of the package."""

import pytest
import torch

from astro_clustercls.models import _api, build_network, register_bundled_weights
from astro_clustercls.tests.helper import random_weights_meta


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """
    One torch thread for the whole test session: CI machines are small and
    shared, several threads fighting for 2 cores are many times slower, and no
    result may depend on the thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_registry(tmp_path, monkeypatch):
    """An empty bundled-weights directory standing in for the package's."""
    data = tmp_path / "bundled"
    data.mkdir()
    (data / "manifest.json").write_text('{"format": 1, "weights": []}')
    monkeypatch.setattr(_api, "DATA_DIR", data)
    return data


@pytest.fixture
def register_random(empty_registry):
    """
    Register untrained bundled weights in `empty_registry`:
    ``register_random(arch, member='TEST', seed=0, n_bands=None, **meta)``.
    """
    def register(arch, member="TEST", *, seed=0, n_bands=None, **meta):
        meta = random_weights_meta(**meta)
        torch.manual_seed(seed)
        net = build_network(arch, n_bands=n_bands or len(meta["bands"])).eval()
        return register_bundled_weights(net, arch, member, meta)

    return register
