# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Test configuration shared by every test and doctest of the package."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """
    One torch thread for the whole test session: CI machines are small and
    shared, several threads fighting for 2 cores are many times slower, and no
    result may depend on the thread count.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
