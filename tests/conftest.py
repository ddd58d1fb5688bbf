"""Shared test configuration."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run torch on one thread: the test problems are tiny, so intra-op
    threads only add overhead, and on a busy 2-core machine OpenMP
    spin-waiting makes them orders of magnitude slower."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)
