"""Shared fixtures: real data from ../shared/data (or $STELLARLATENT_DATA)."""

import os

import pytest

from stellarlatent.datasets._paths import find_data_dir


def _require_data(subdir):
    path = find_data_dir(subdir)
    if path is None:
        message = (
            f"real data folder '{subdir}' not found: set STELLARLATENT_DATA or place "
            "the shared data at ../shared/data"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def miles_dir():
    """The MILES library folder; fails under CI=true when it is missing."""
    return _require_data("miles")


@pytest.fixture(scope="session")
def real_dir():
    """``../shared/data/real``, the real archive files; fails under CI=true when missing."""
    return _require_data("real")


def pytest_configure(config):
    import torch

    # The tests train tiny networks: one thread avoids oversubscribing small CI
    # machines, where thread synchronisation costs more than the work itself.
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
