"""Shared test helpers: reference fixtures, parameter perturbation and the parity tolerance."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

# CI clones the project next to `shared/`; tests find DeepMind's reference fixtures there.
FIXTURES_DIR = Path(os.environ.get("PERCEIVER_HF_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "deepmind"))

requires_fixtures = pytest.mark.skipif(
    not FIXTURES_DIR.is_dir(),
    reason=f"DeepMind reference fixtures not found at {FIXTURES_DIR} (CI provides ../shared beside the clone; "
    "set PERCEIVER_HF_FIXTURES to their folder)",
)

PARITY_TOLERANCE = 1e-4

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    """Import a script of `examples/` as a module, as `python examples/NAME.py` would find its sibling modules."""
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    return importlib.import_module(name)


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    """Max abs difference relative to max(1, max |reference|), the project's parity measure."""
    actual, reference = torch.as_tensor(actual).double(), torch.as_tensor(reference).double()
    assert actual.shape == reference.shape, f"shape {tuple(actual.shape)} != reference {tuple(reference.shape)}"
    return ((actual - reference).abs().max() / max(1.0, reference.abs().max().item())).item()


def assert_parity(actual: torch.Tensor, reference: torch.Tensor, tolerance: float = PARITY_TOLERANCE) -> None:
    error = relative_error(actual, reference)
    assert error <= tolerance, f"relative error {error:.3g} exceeds {tolerance:g}"


@torch.no_grad()
def perturb_(model: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Add noise to every floating-point parameter and buffer, so that layer-norm scales and biases are not
    1 and 0 and zero-initialised weights are not zero: a converter that drops or swaps anything then fails."""
    generator = torch.Generator().manual_seed(seed)
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            if tensor.ndim == 1 and (tensor > 0).all():  # variances and norms stay positive
                tensor.mul_(1 + scale * noise.abs())
            else:
                tensor.add_(scale * noise)
    return model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
