# Licensed under a 3-clause BSD style license - see LICENSE.rst
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Networks on one thread: the test machines are small and shared."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
