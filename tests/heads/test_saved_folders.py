"""Folders saved before the architecture step (checked in under `tests/fixtures/previous_layout`, written by that
code with `make_folders.py`) load into today's heads without a missing or left-over weight and give the outputs
they gave then."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import perceiver_hf
from perceiver_hf import PerceiverIOForMaskedLM, PerceiverIOForMultimodalAutoencoding, PerceiverIOModel
from tests.helpers import REPO, assert_parity

FOLDERS = REPO / "tests" / "fixtures" / "previous_layout"
NAMES = sorted(folder.name for folder in FOLDERS.iterdir() if (folder / "config.json").is_file())


def saved_head(folder) -> type:
    """The class that saved the folder (one per head kind, and the bare encoder)."""
    return getattr(perceiver_hf, json.loads((folder / "config.json").read_text())["architectures"][0])


def example(folder) -> tuple[dict, dict]:
    tensors = load_file(str(folder / "example.safetensors"))
    inputs = {name.removeprefix("inputs."): value for name, value in tensors.items() if name.startswith("inputs.")}
    expected = {name.removeprefix("expected").lstrip("."): value for name, value in tensors.items() if name.startswith("expected")}
    return inputs, expected


def test_every_head_kind_of_the_previous_layout_has_a_folder():
    kinds = ("ImageClassification", "MaskedLM", "SequenceClassification", "OpticalFlow", "MultimodalAutoencoding")
    expected = {PerceiverIOModel} | {getattr(perceiver_hf, f"PerceiverIOFor{kind}") for kind in kinds}
    assert {saved_head(FOLDERS / name) for name in NAMES} == expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_a_folder_saved_by_the_previous_layout_gives_the_same_outputs(name, implementation):
    folder = FOLDERS / name
    assert "decoder" in json.loads((folder / "config.json").read_text())  # the former name of `query_decoder`
    head = saved_head(folder)
    model, info = head.from_pretrained(folder, attn_implementation=implementation, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert not info["unexpected_keys"] or head is PerceiverIOModel  # the bare encoder leaves the decoder out
    inputs, expected = example(folder)
    with torch.no_grad():
        if head is PerceiverIOForMultimodalAutoencoding:
            logits = model.eval()(inputs=dict(inputs, label=torch.zeros(1, 5))).logits
            for modality, values in logits.items():
                assert_parity(values, expected[modality])
        else:
            output = model.eval()(**inputs)
            assert_parity(output[0], expected[""])


def test_a_folder_saved_by_the_previous_layout_saves_in_todays(tmp_path):
    model = PerceiverIOForMaskedLM.from_pretrained(FOLDERS / "masked_lm")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert "decoder" not in config and config["query_decoder"]["mask_padded_queries"] is True
    before, after = load_file(str(FOLDERS / "masked_lm" / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert before.keys() == after.keys()  # parameter names are unchanged
    for key in before:
        assert torch.equal(before[key], after[key])
