"""DeepMind checkpoints convert faithfully: converted models reproduce the outputs of DeepMind's Haiku code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES_DIR, assert_parity, requires_fixtures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))

from convert_deepmind import convert_checkpoint  # noqa: E402
from deepmind_tasks import TASKS  # noqa: E402

IMAGENET_FIXTURES = {
    "imagenet-learned": "imagenet_learned_position_encoding",
    "imagenet-fourier": "imagenet_fourier_position_encoding",
    "imagenet-conv": "imagenet_conv_preprocessing",
}


@requires_fixtures
@pytest.mark.parametrize("task", sorted(IMAGENET_FIXTURES))
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_imagenet_fixtures_reproduce_deepmind_outputs(task, attn_implementation):
    fixture = FIXTURES_DIR / IMAGENET_FIXTURES[task]
    deepmind_config = json.loads((fixture / "config.json").read_text())
    io = np.load(fixture / "io.npz")
    model = convert_checkpoint(TASKS[task], fixture / "checkpoint.pystate", deepmind_config)
    model.config._attn_implementation = attn_implementation
    pixel_values = torch.from_numpy(io["images"]).permute(0, 3, 1, 2)  # DeepMind is NHWC
    with torch.no_grad():
        input_array, encoded = model.perceiver.encode(pixel_values)
        logits = model(pixel_values=pixel_values).logits
    assert_parity(input_array.materialize(), torch.from_numpy(io["encoder_inputs"]))
    assert_parity(encoded.last_hidden_state, torch.from_numpy(io["encoder_output"]))
    assert_parity(logits, torch.from_numpy(io["logits"]))
