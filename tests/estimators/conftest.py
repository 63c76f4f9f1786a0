"""Fixtures of the estimator tests; the shared data and small models are in _helpers.py."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run the module's tests on one torch thread.

    Tiny networks run fastest on one thread, and do not fight other processes.
    Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
