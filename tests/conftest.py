"""Every test starts from the same random state. Shared helpers are in `tests.helpers`."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property-based tests: a few derandomized examples per run (the same on every machine, quick in CI);
# HYPOTHESIS_PROFILE=thorough draws many more, to hunt for new failures.
settings.register_profile(
    "default", max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile("thorough", settings.get_profile("default"), max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def single_thread():
    """Small models run fastest on one thread, and far faster than on two when other jobs share the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
