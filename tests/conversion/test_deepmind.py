"""DeepMind checkpoints convert faithfully: converted models reproduce the outputs of DeepMind's Haiku code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conversion.convert_deepmind import convert_checkpoint
from conversion.deepmind_tasks import TASKS
from conversion.haiku_checkpoint import CheckpointError, load_haiku_pickle
from tests.helpers import FIXTURES_DIR, assert_parity, requires_fixtures
from tests.helpers.haiku_pickles import official_structures, random_arrays, write_haiku_pickle

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


# Official full-size structures ------------------------------------------------------------------------------

STRUCTURES = official_structures(FIXTURES_DIR) if FIXTURES_DIR.is_dir() else {}


def task_for(filename: str):
    return next((task for task in TASKS.values() if task.filename == filename), None)


def write_random_checkpoint(path: Path, structure: dict) -> Path:
    """A checkpoint of random arrays with exactly the official names and shapes, in DeepMind's format."""
    wrapped = structure["structure"].startswith("dict(params")
    params, state = random_arrays(structure["params"]), random_arrays(structure.get("state", {}), seed=1)
    return write_haiku_pickle(path, params, state, wrapped=wrapped)


@requires_fixtures
@pytest.mark.parametrize("filename", sorted(STRUCTURES))
def test_official_structure_converts_with_the_official_configuration(filename, tmp_path):
    """Every registered task's official configuration accepts a checkpoint shaped exactly like DeepMind's file."""
    task = task_for(filename)
    if task is None:
        pytest.skip(f"no registered task converts {filename} yet")
    structure = STRUCTURES[filename]
    checkpoint = write_random_checkpoint(tmp_path / filename, structure)
    model = convert_checkpoint(TASKS[task.name], checkpoint, task.official_config)
    assert sum(p.numel() for p in model.parameters()) == structure["num_parameters"]
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


# Strictness -------------------------------------------------------------------------------------------------


def fixture_tree(task: str) -> tuple[dict, dict]:
    fixture = FIXTURES_DIR / IMAGENET_FIXTURES[task]
    return load_haiku_pickle(fixture / "checkpoint.pystate"), json.loads((fixture / "config.json").read_text())


@requires_fixtures
def test_shape_mismatch_names_the_first_mismatching_parameter():
    tree, deepmind_config = fixture_tree("imagenet-conv")
    tree["params"]["perceiver_encoder/~/self_attention_1/mlp/linear"]["w"] = np.zeros((32, 64), np.float32)
    tree["params"]["classification_decoder/~/basic_decoder/output"]["w"] = np.zeros((32, 11), np.float32)
    first_mismatch = r"`perceiver_encoder/~/self_attention_1/mlp/linear/w` has shape \(32, 64\)"
    with pytest.raises(CheckpointError, match=first_mismatch):
        convert_checkpoint(TASKS["imagenet-conv"], tree, deepmind_config)


@requires_fixtures
def test_checkpoint_of_another_model_is_refused():
    tree, _ = fixture_tree("imagenet-learned")
    _, fourier_config = fixture_tree("imagenet-fourier")
    with pytest.raises(CheckpointError, match=r"perceiver_encoder/~/cross_attention/layer_norm_1/scale"):
        convert_checkpoint(TASKS["imagenet-fourier"], tree, fourier_config)


@requires_fixtures
def test_leftover_array_is_an_error():
    tree, deepmind_config = fixture_tree("imagenet-fourier")
    tree["params"]["image_preprocessor/~/extra"] = {"w": np.zeros(3, np.float32)}
    with pytest.raises(CheckpointError, match=r"no place in the converted model.*image_preprocessor/~/extra/w"):
        convert_checkpoint(TASKS["imagenet-fourier"], tree, deepmind_config)


@requires_fixtures
def test_missing_array_is_an_error():
    tree, deepmind_config = fixture_tree("imagenet-learned")
    del tree["params"]["classification_decoder/~/basic_decoder/output"]["b"]
    with pytest.raises(CheckpointError, match=r"`classification_decoder/~/basic_decoder/output` has no parameter `b`"):
        convert_checkpoint(TASKS["imagenet-learned"], tree, deepmind_config)


@requires_fixtures
def test_batchnorm_state_is_required():
    tree, deepmind_config = fixture_tree("imagenet-conv")
    tree["state"] = {}
    ema = "image_preprocessor/~/conv2_d_downsample/~/batchnorm/~/mean_ema"
    with pytest.raises(CheckpointError, match=f"no state module `{ema}`"):
        convert_checkpoint(TASKS["imagenet-conv"], tree, deepmind_config)
