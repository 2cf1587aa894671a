"""The Perceiver AR training example (`examples/train_perceiver_ar.py`) trains for real on held-out-split text."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from transformers import PerceiverTokenizer

from perceiver_hf import PerceiverARForCausalLM

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_perceiver_ar.py"
TINY = [
    "--context",
    "64",
    "--latents",
    "16",
    "--hidden",
    "32",
    "--layers",
    "1",
    "--steps",
    "16",
    "--batch-size",
    "4",
    "--learning-rate",
    "3e-3",
    "--warmup",
    "2",
    "--train-bytes",
    "100000",
    "--eval-windows",
    "8",
    "--threads",
    "1",
]

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_perceiver_ar", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_and_held_out_sources_are_different_real_files(example):
    train, held_out = example.stdlib_sources(False, 200_000), example.stdlib_sources(True, 50_000)
    assert len(train) > 3 and held_out and not set(train) & set(held_out)
    assert any("def " in text for text in train)


def test_a_few_steps_lower_the_loss_of_every_model(example, tmp_path):
    results = example.main([*TINY, "--output", str(tmp_path)])
    assert set(results) == {"perceiver-ar", "gpt2-long", "gpt2-short"}
    for name, result in results.items():
        first, last = result["first_losses"], result["last_losses"]
        assert sum(last) / len(last) < sum(first) / len(first) - 0.3, name
        assert 0 < result["held_out_bits_per_byte"] < 9
    saved = json.loads((tmp_path / "results.json").read_text())["results"]
    assert saved["perceiver-ar"]["held_out_bits_per_byte"] == results["perceiver-ar"]["held_out_bits_per_byte"]
    model = PerceiverARForCausalLM.from_pretrained(tmp_path)
    assert model.config.num_latents == 16
    assert PerceiverTokenizer.from_pretrained(tmp_path).padding_side == "left"


def test_wrong_arguments_stop_with_a_message(example, tmp_path, capsys):
    with pytest.raises(SystemExit):
        example.main([*TINY, "--models", "gpt3"])
    assert "--models takes names from" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        example.main([*TINY, "--output", str(tmp_path / "file")])
    assert "is a file" in capsys.readouterr().err
