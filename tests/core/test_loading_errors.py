"""A saved folder that cannot be loaded says which file is wrong and what to do, with the library's error as the
cause: a cut-off weights file, a config whose sizes disagree with the weights, a folder without weights."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors import SafetensorError
from transformers import AutoModelForSequenceClassification

from perceiver_hf import PerceiverIOConfig, PerceiverIOForSequenceClassification

SMALL = {"d_model": 16, "d_latents": 32, "num_latents": 8, "num_self_attends_per_block": 1, "num_self_attention_heads": 4,
         "num_cross_attention_heads": 4, "qk_channels": 16, "max_position_embeddings": 24}  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    PerceiverIOForSequenceClassification(PerceiverIOConfig.for_sequence_classification(num_labels=2, **SMALL)).save_pretrained(folder)
    return folder


def copy_of(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "model")


@pytest.mark.parametrize("keep", [0.5, 0.0001])
def test_a_cut_off_weights_file_is_named(saved, tmp_path, keep):
    folder = copy_of(saved, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: max(3, int(weights.stat().st_size * keep))])
    with pytest.raises(OSError, match=f"{weights} is not a complete safetensors file .*download.* again") as caught:
        AutoModelForSequenceClassification.from_pretrained(folder)
    assert isinstance(caught.value.__cause__, SafetensorError)


def test_config_sizes_that_disagree_with_the_weights_are_named(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_latents": 16}))
    message = (
        f"The weights in {folder / 'model.safetensors'} do not fit the sizes given by {folder / 'config.json'} and "
        "the arguments to from_pretrained: "
        r"perceiver.encoder.latents is \(8, 32\) in the weights but \(16, 32\) by the config\. .*ignore_mismatched_sizes=True"
    )
    with pytest.raises(ValueError, match=message) as caught:
        PerceiverIOForSequenceClassification.from_pretrained(folder)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert isinstance(caught.value, RuntimeError)  # what transformers raises, for code that catches it
    model = PerceiverIOForSequenceClassification.from_pretrained(folder, ignore_mismatched_sizes=True)
    assert model.perceiver.encoder.latents.shape == (16, 32)


def test_a_folder_without_weights_is_named(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(OSError, match=f"{folder} has a config.json but no weights .*save_pretrained") as caught:
        AutoModelForSequenceClassification.from_pretrained(folder)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_folder_that_is_not_there_is_named(tmp_path):
    with pytest.raises(OSError, match=f"There is no folder {tmp_path / 'missing'}: check the path"):
        PerceiverIOForSequenceClassification.from_pretrained(tmp_path / "missing")
