"""Every test starts from the same random state. Shared helpers are in `tests.helpers`."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
