"""DeepMind's byte-level masked language model converts faithfully: the converted model reproduces the outputs of
DeepMind's Haiku code on the `language_perceiver_io_bytes` fixture, and the converter writes a complete folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, PerceiverTokenizer, pipeline

from conversion import convert_deepmind
from conversion.convert_deepmind import convert_checkpoint
from conversion.deepmind_tasks import TASKS
from conversion.haiku_checkpoint import HaikuParams
from perceiver_hf import PerceiverIOForMaskedLM
from tests.helpers import FIXTURES_DIR, assert_parity, requires_fixtures

FIXTURE = FIXTURES_DIR / "language_perceiver_io_bytes"


def load_fixture():
    deepmind_config = json.loads((FIXTURE / "config.json").read_text())
    io = np.load(FIXTURE / "io.npz")
    model = convert_checkpoint(TASKS["language"], FIXTURE / "checkpoint.pickle", deepmind_config)
    inputs = torch.from_numpy(io["inputs"]).long()
    input_mask = torch.from_numpy(io["input_mask"])
    return model, io, inputs, input_mask


@requires_fixtures
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_language_fixture_reproduces_deepmind_outputs(attn_implementation):
    model, io, inputs, input_mask = load_fixture()
    model.config._attn_implementation = attn_implementation
    with torch.no_grad():
        input_array, encoded = model.perceiver.encode(inputs, attention_mask=input_mask)
        decoded, _ = model.decoder(encoded.last_hidden_state, input_array, query_mask=input_mask)
        logits = model(input_ids=inputs, attention_mask=input_mask).logits
    assert_parity(input_array.materialize(), torch.from_numpy(io["encoder_inputs"]))
    assert_parity(encoded.last_hidden_state, torch.from_numpy(io["encoder_output"]))
    assert_parity(decoded, torch.from_numpy(io["decoder_output"]))
    # Padded positions included: DeepMind masks their decoder queries, and so does the converted config.
    assert_parity(logits, torch.from_numpy(io["logits"]))


@requires_fixtures
def test_unpadded_inputs_give_deepmind_logits_at_their_positions():
    model, io, inputs, input_mask = load_fixture()
    for row in range(inputs.shape[0]):
        length = int(input_mask[row].sum())
        with torch.no_grad():
            logits = model(input_ids=inputs[row : row + 1, :length]).logits
        assert logits.shape == (1, length, 262)
        assert_parity(logits[0], torch.from_numpy(io["logits"][row, :length]))


@requires_fixtures
def test_converter_writes_tokenizer_and_model_card(tmp_path, monkeypatch):
    output = tmp_path / "language-perceiver"
    status = convert_deepmind.main(
        [
            "--task", "language",
            "--checkpoint", str(FIXTURE / "checkpoint.pickle"),
            "--deepmind-config", str(FIXTURE / "config.json"),
            "--output", str(output),
        ]
    )  # fmt: skip
    assert status == 0
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "README.md"):
        assert (output / name).is_file(), name
    assert "pipeline_tag: fill-mask" in (output / "README.md").read_text()
    tokenizer = PerceiverTokenizer.from_pretrained(output)
    assert tokenizer.model_max_length == 24 and tokenizer.mask_token_id == 3

    io = np.load(FIXTURE / "io.npz")
    model = AutoModelForMaskedLM.from_pretrained(output).eval()
    assert isinstance(model, PerceiverIOForMaskedLM)
    inputs, input_mask = torch.from_numpy(io["inputs"]).long(), torch.from_numpy(io["input_mask"])
    with torch.no_grad():
        assert_parity(model(input_ids=inputs, attention_mask=input_mask).logits, torch.from_numpy(io["logits"]))

    # The folder serves the fill-mask pipeline: the colab's masked span, one prediction list per masked byte.
    fill = pipeline("fill-mask", model=str(output))
    predictions = fill("This is a" + "[MASK]" * 5 + " test.", top_k=2)
    assert len(predictions) == 5 and all(len(candidates) == 2 for candidates in predictions)

    # The card's usage examples fit this small model (24 positions) and run as written, to their last line.
    card = (output / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)
    assert len(snippets) == 2 and "(1, 20, 262)" in snippets[1]
    monkeypatch.chdir(tmp_path)  # the card names the folder by its name (`model_id`)
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), {})


def test_model_card_usage_fits_the_converted_positions():
    task = TASKS["language"]

    def with_positions(max_length: int):
        decoder = {**task.official_config["decoder_config"], "output_index_dims": max_length}
        return task.build_config({**task.official_config, "MAX_SEQ_LEN": max_length, "decoder_config": decoder})

    for max_length, sentence in ((2048, "This is an incomplete"), (24, "A word is missing."), (12, "Missing.")):
        config = with_positions(max_length)
        values = task.card_values(task.official_config, config)
        assert values["example_text"].startswith(sentence)
        assert values["example_num_tokens"] <= max_length
        encoding = PerceiverTokenizer()(values["example_text"])["input_ids"]
        span = values["example_mask_start"], values["example_mask_end"]
        assert len(encoding) == values["example_num_tokens"]
        assert PerceiverTokenizer().decode(encoding[span[0] : span[1]]) == values["example_masked"]
    assert task.card_values(task.official_config, with_positions(8)) == {"example_text": None}


def test_official_language_config_maps_every_official_array():
    """The official configuration converts DeepMind's full-size structure (shapes traced from DeepMind's code):
    every array of the official checkpoint lands on a parameter of the right shape, and none is left over."""
    structure_file = FIXTURES_DIR / "official_structure.json"
    if not structure_file.is_file():
        pytest.skip(f"DeepMind's official structure not found at {structure_file}")
    official = json.loads(structure_file.read_text())["models"]["language_perceiver_io_bytes"]
    task = TASKS["language"]
    config = task.build_config(task.official_config)
    # Zero-strided arrays of the official shapes: the mapping is checked without 800 MB of random weights.
    params = {
        module: {name: np.broadcast_to(np.float32(0), shape) for name, shape in arrays.items()}
        for module, arrays in official["params"].items()
    }
    haiku_params = HaikuParams(params)
    state_dict = task.convert(haiku_params, task.official_config, config)
    haiku_params.check_all_used()
    with torch.device("meta"):
        expected = PerceiverIOForMaskedLM(config).state_dict()
    assert sorted(state_dict) == sorted(expected)
    for name, tensor in state_dict.items():
        assert tuple(tensor.shape) == tuple(expected[name].shape), name
    assert sum(t.numel() for t in state_dict.values()) == official["num_parameters"] == 201_108_230
