"""What the tests share: the reference fixtures, parameter perturbation, the parity tolerance, running the
conversion tools, and importing the example scripts."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
# CI clones the project next to `shared/`; tests find DeepMind's reference fixtures there.
FIXTURES_DIR = Path(os.environ.get("PERCEIVER_HF_FIXTURES", REPO.parent / "shared" / "fixtures" / "deepmind"))

requires_fixtures = pytest.mark.skipif(
    not FIXTURES_DIR.is_dir(),
    reason=f"DeepMind reference fixtures not found at {FIXTURES_DIR} (CI provides ../shared beside the clone; "
    "set PERCEIVER_HF_FIXTURES to their folder)",
)

PARITY_TOLERANCE = 1e-4


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


# A small latent core: two blocks (their weights shared) of two self-attention layers of four heads.
SMALL_CORE = {"num_latents": 8, "d_latents": 32, "num_blocks": 2, "num_self_attends_per_block": 2, "num_self_attention_heads": 4}
# A small byte-level text model (masked LM, sequence and token classification).
SMALL_TEXT = {
    "d_model": 16, "d_latents": 32, "num_latents": 8, "num_self_attends_per_block": 2, "num_self_attention_heads": 4,
    "num_cross_attention_heads": 4, "qk_channels": 16, "max_position_embeddings": 24,
}  # fmt: skip


def training_losses(trainer) -> list[float]:
    """The training loss of every logged step of a `Trainer` that has trained."""
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def save_transformers_model(head: type | str, folder: Path, noise: float = 0.1, **config) -> torch.nn.Module:
    """transformers' Perceiver `head` (the class, or its name in transformers) built from `PerceiverConfig(**config)`
    without attention dropout, its weights perturbed (`perturb_`), saved in `folder` and returned in eval mode."""
    import transformers

    head = getattr(transformers, head) if isinstance(head, str) else head
    model = head(transformers.PerceiverConfig(attention_probs_dropout_prob=0.0, **config))
    perturb_(model.eval(), scale=noise)
    model.save_pretrained(folder)
    return model


def convert_fixture(task: str, fixture: Path, output: Path):
    """DeepMind's reference `fixture` (its checkpoint and constructor arguments) converted by `convert_deepmind`'s
    command line into `output`; checks the Hub-ready folder's files and returns its model card."""
    from huggingface_hub import ModelCard

    from conversion.convert_deepmind import main

    arguments = ["--task", task, "--checkpoint", str(fixture / "checkpoint.pystate")]
    assert main([*arguments, "--deepmind-config", str(fixture / "config.json"), "--output", str(output)]) == 0
    files = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"}
    assert {path.name for path in output.iterdir()} == files
    return ModelCard.load(output / "README.md")


def run_module(module: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """`python -m module args` from the checkout's root, where the `conversion` tools run as modules."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, **kwargs)


EXAMPLES_DIR = REPO / "examples"


def load_example(name: str):
    """Import a script of `examples/` as a module, as `python examples/NAME.py` finds its sibling modules."""
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    return importlib.import_module(name)


def free_port() -> int:
    """A TCP port free on this machine now, for a multi-process test's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
