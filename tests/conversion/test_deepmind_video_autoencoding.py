"""DeepMind's video autoencoder converts faithfully: every intermediate of DeepMind's Haiku code is reproduced,
and the converted folder works with `pipeline("video-autoencoding")` as it is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

import perceiver_hf  # noqa: F401  (registers the pipeline task)
from conversion.convert_deepmind import build_config, convert_checkpoint
from conversion.deepmind_tasks import TASKS
from tests.helpers import FIXTURES_DIR, assert_parity, convert_fixture, requires_fixtures

FIXTURE = FIXTURES_DIR / "video_autoencoding"
TASK = TASKS["video-autoencoding"]


def fixture_inputs(io) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(io["images"]).permute(0, 1, 4, 2, 3),  # DeepMind's frames are channels-last
        "audio": torch.from_numpy(io["audio"]),
        "label": torch.from_numpy(io["label_input"]),
    }


@requires_fixtures
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_fixture_reproduces_every_deepmind_output(attn_implementation):
    deepmind_config = json.loads((FIXTURE / "config.json").read_text())
    io = np.load(FIXTURE / "io.npz")
    model = convert_checkpoint(TASK, FIXTURE / "checkpoint.pystate", deepmind_config)
    model.config._attn_implementation = attn_implementation
    inputs = fixture_inputs(io)
    # The extra call of the fixture: random, unsorted output indices.
    points = {"image": torch.from_numpy(io["subsample_image_idx"]).long(), "audio": torch.from_numpy(io["subsample_audio_idx"]).long()}
    with torch.no_grad():
        input_array, encoded = model.perceiver.encode(inputs)
        queries = model.decoder.queries(input_array, 0, int(io["decoder_query"].shape[1]), subsampled_points=points)
        decoded, _ = model.decoder(encoded.last_hidden_state, input_array, subsampled_points=points)
        outputs = model(inputs=inputs, subsampled_output_points=points).logits
        reconstruction = model.reconstruct(inputs, chunk_size=7)
        unfolded, _ = model.decode(encoded.last_hidden_state, input_array, chunk_size=7, folded=False)

    assert_parity(input_array.materialize(), torch.from_numpy(io["encoder_inputs"]))
    assert_parity(model.perceiver.encoder.latents.expand(2, -1, -1), torch.from_numpy(io["initial_latents"]))
    assert_parity(encoded.last_hidden_state, torch.from_numpy(io["encoder_output"]))
    assert_parity(queries, torch.from_numpy(io["decoder_query"]))
    assert_parity(decoded, torch.from_numpy(io["decoder_output"]))
    for name in ("image", "audio", "label"):
        assert_parity(outputs[name], torch.from_numpy(io[f"sub_output_{name}"]))
    # The colab's chunked autoencode_video loop, in one call; reconstruct() returns the inputs' layout.
    assert_parity(reconstruction["image"].permute(0, 1, 3, 4, 2), torch.from_numpy(io["reconstruction_image"]))
    assert_parity(reconstruction["audio"], torch.from_numpy(io["reconstruction_audio"]))
    assert_parity(reconstruction["label"], torch.from_numpy(io["reconstruction_label"]))
    assert_parity(unfolded["image"].reshape(io["reconstruction_image"].shape), torch.from_numpy(io["reconstruction_image"]))


def test_official_configuration_names_kinetics_classes():
    config = build_config(TASK, TASK.official_config)
    assert config.num_labels == 700
    assert (config.id2label[0], config.id2label[699]) == ("abseiling", "zumba")
    queries = config.query_decoder["query"]["modalities"]
    assert queries["image"]["index_dims"] == [16, 224, 224]
    assert queries["image"]["position_encoding"]["max_resolution"] == [16, 56, 56]
    assert queries["audio"]["index_dims"] == [1920]
    assert queries["audio"]["position_encoding"]["max_resolution"] == [30720]


@requires_fixtures
def test_converted_folder_runs_in_the_pipeline(tmp_path):
    skimage = pytest.importorskip("skimage")
    output = tmp_path / "model"
    card = convert_fixture(TASK.name, FIXTURE, output)
    assert "video" in card.data.tags and "pipeline(\"video-autoencoding\"" in card.text
    assert "the first channel, 12 samples\nper frame" in card.text  # the converted model's, not the official 1,920

    clip = Path(skimage.__file__).parent / "data" / "no_time_for_that_tiny.gif"
    result = pipeline("video-autoencoding", model=str(output))(str(clip), start_frame=10, progress=False)
    assert result["video"].shape == (2, 12, 12, 3)  # the fixture model: 2 frames of 12x12, 24 audio samples
    assert result["audio"].shape == (24,)
    assert len(result["labels"]) == 5
