"""DeepMind's optical-flow model converts faithfully: every intermediate of DeepMind's Haiku code is reproduced,
and the converted folder works with `pipeline("optical-flow")` as it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import pipeline

from conversion.convert_deepmind import build_config, convert_checkpoint
from conversion.deepmind_tasks import TASKS
from perceiver_hf import PerceiverIOFlowProcessor
from tests.helpers import FIXTURES_DIR, assert_parity, convert_fixture, requires_fixtures

FIXTURE = FIXTURES_DIR / "optical_flow"
TASK = TASKS["optical-flow"]


@requires_fixtures
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_fixture_reproduces_every_deepmind_output(attn_implementation):
    deepmind_config = json.loads((FIXTURE / "config.json").read_text())
    io = np.load(FIXTURE / "io.npz")
    model = convert_checkpoint(TASK, FIXTURE / "checkpoint.pystate", deepmind_config)
    model.config._attn_implementation = attn_implementation
    # The colab's preprocessing, from the uint8 frames: the processor gives DeepMind's patches.
    processor = PerceiverIOFlowProcessor(tile_size=deepmind_config["TRAIN_SIZE"], min_overlap=2)
    inputs = processor([list(pair) for pair in io["frames_uint8"]])["inputs"]
    assert_parity(inputs, torch.from_numpy(io["patches"]).permute(0, 1, 4, 2, 3))
    num_pixels = inputs.shape[-2] * inputs.shape[-1]
    with torch.no_grad():
        input_array, encoded = model.perceiver.encode(inputs)
        queries = model.decoder.queries(input_array, 0, num_pixels)
        logits = model(inputs=inputs).logits
        model.decoder.chunk_size = 5  # chunked decoding gives the same flow
        chunked = model(inputs=inputs).logits

    assert_parity(input_array.materialize(), torch.from_numpy(io["encoder_inputs"]))
    assert_parity(model.perceiver.encoder.latents.expand(2, -1, -1), torch.from_numpy(io["initial_latents"]))
    assert_parity(encoded.last_hidden_state, torch.from_numpy(io["encoder_output"]))
    assert_parity(queries, torch.from_numpy(io["decoder_query"]))
    assert_parity(logits, torch.from_numpy(io["decoder_output"]))
    assert_parity(logits, torch.from_numpy(io["model_output"]))
    assert_parity(chunked, torch.from_numpy(io["model_output"]))
    # What the colab's function returns: the flow in pixels.
    assert_parity(logits * model.flow_scale_factor, torch.from_numpy(io["flow"]))


def test_official_configuration_is_deepminds_architecture():
    config = build_config(TASK, TASK.official_config)
    assert (config.num_latents, config.d_latents, config.num_self_attends_per_block) == (2048, 512, 24)
    assert config.input_adapter["out_channels"] == 64
    assert config.input_adapter["position_encoding"]["max_resolution"] == [368, 496]
    assert config.query_decoder["query"] == {"type": "inputs", "num_channels": 322}
    assert config.output_adapter == {"type": "flow", "rescale_factor": 100.0, "flow_scale_factor": 20.0, "train_size": [368, 496]}
    assert config.hidden_act == "gelu_pytorch_tanh"


def test_unsupported_deepmind_variants_are_refused():
    from conversion.haiku_checkpoint import CheckpointError

    config = json.loads(json.dumps(TASK.official_config))
    config["input_preprocessor"]["spatial_downsample"] = 2
    with pytest.raises(CheckpointError, match="spatial_downsample"):
        build_config(TASK, config)


@requires_fixtures
def test_converted_folder_runs_in_the_pipeline(tmp_path):
    skimage = pytest.importorskip("skimage")
    output = tmp_path / "model"
    card = convert_fixture(TASK.name, FIXTURE, output)
    assert "optical-flow" in card.data.tags and 'pipeline("optical-flow"' in card.text
    assert "custom architecture" in card.text
    processor = PerceiverIOFlowProcessor.from_pretrained(output)
    assert processor.tile_size == [6, 8]
    assert f"overlapping by at least {processor.min_overlap} pixels" in card.text  # the card says what was written

    first, second = (frame[100:113, 200:219] for frame in skimage.data.stereo_motorcycle()[:2])
    result = pipeline("optical-flow", model=str(output))([first, second], progress=False)
    assert result["flow"].shape == (13, 19, 2)  # tiled by the fixture model's 6x8 training size
    assert np.isfinite(result["flow"]).all()
    assert result["flow_image"].size == (19, 13)
