"""`perceiver-hf demo`, piece by piece: the model, a few training steps, the saved folder through the pipeline,
starting from another checkpoint, and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    PerceiverConfig,
    PerceiverForImageClassificationLearned,
    PerceiverImageProcessor,
    pipeline,
)

from perceiver_hf import PerceiverIOConfig, PerceiverIOForImageClassification
from perceiver_hf.cli import main
from perceiver_hf.demo import DemoSettings, digits_config, run_demo
from perceiver_hf.demo.digits import split_digits
from tests.helpers import perturb_
from tests.helpers.training_job import small_trainer


def test_digits_model_is_small_and_rebuilds_from_its_config(tmp_path):
    config = digits_config()
    model = PerceiverIOForImageClassification(config)
    assert 0.2e6 < sum(p.numel() for p in model.parameters()) < 0.5e6
    assert config.id2label[3] == "3" and config.num_labels == 10
    assert config.attention_probs_dropout_prob == 0  # keeps the fused attention kernel and folded K/V in training
    model.save_pretrained(tmp_path)
    reloaded = PerceiverIOForImageClassification.from_pretrained(tmp_path)
    pixel_values = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(reloaded.eval()(pixel_values=pixel_values).logits, model.eval()(pixel_values=pixel_values).logits)


def test_a_few_training_steps_lower_the_held_out_loss(tmp_path):
    trainer = small_trainer(tmp_path, max_steps=30)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before["eval_loss"] - 0.5
    assert after["eval_accuracy"] > 0.3  # chance is 0.1


@pytest.mark.parametrize("lever", [{"bf16": True}, {"activation_checkpointing": True}], ids=["bf16", "checkpointing"])
def test_memory_levers_train_through_trainer(tmp_path, lever):
    trainer = small_trainer(tmp_path, max_steps=15, **lever)
    before = trainer.evaluate()
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < before["eval_loss"] - 0.3
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast leaves the weights fp32
    if "activation_checkpointing" in lever:
        assert trainer.model.is_activation_checkpointing


def test_demo_saves_a_folder_that_classifies_digits_through_the_pipeline(tmp_path, capsys):
    output_dir = tmp_path / "digits-model"
    result = run_demo(DemoSettings(output_dir=output_dir, max_steps=40, examples_shown=3))

    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "held_out_predictions.png"} <= {
        f.name for f in output_dir.iterdir()
    }
    assert not [f for f in tmp_path.iterdir() if f.name != "digits-model"]  # no scratch folders left behind
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "perceiver_io" and config["id2label"]["7"] == "7"
    assert json.loads((output_dir / "preprocessor_config.json").read_text())["image_processor_type"] == "PerceiverImageProcessor"
    card = (output_dir / "README.md").read_text()
    assert f"value: {result.accuracy:.4f}" in card and f"Held-out accuracy: {result.accuracy:.3f}" in card

    lines = capsys.readouterr().out.strip().splitlines()
    # The header says what runs (--max-steps replaces the epochs); each example names its image, then its digits.
    assert ", 40 optimizer steps, global batch " in lines[0] and "epochs" not in lines[0]
    assert "40 optimizer steps" in card and "20 epochs" not in card
    shown = [line for line in lines if re.match(r"  held-out image +\d+: predicted \d, true \d", line)]
    assert [line.split(":")[0].split()[-1] for line in shown] == ["1", "2", "3"]
    assert lines[-1] == (
        f"held-out accuracy: {result.accuracy:.3f} on 360 images, trained in {result.train_seconds:.0f} s"
    )
    assert result.accuracy > 0.3  # 40 steps; the full demo reaches >= 0.95

    # The folder works for anyone: a digit scanned at another size, through transformers' pipeline.
    split = split_digits()
    classifier = pipeline("image-classification", model=str(output_dir))
    big_digits = [image.resize((32, 32), Image.Resampling.NEAREST) for image in split.held_out_images[:40]]
    predictions = [top[0]["label"] for top in classifier(big_digits, top_k=1)]
    assert np.mean([p == str(label) for p, label in zip(predictions, split.held_out_labels[:40])]) > 0.3


def small_learned_classifier(folder, implementation: str):
    """A 16x16, 3-class image classifier with learned positions (DeepMind's ImageNet 'learned' design)."""
    if implementation == "perceiver_hf":
        config = PerceiverIOConfig.for_image_classification(
            "learned", image_size=16, num_labels=3, num_latents=8, d_latents=32, num_blocks=1,
            num_self_attends_per_block=1, num_self_attention_heads=2,
        )
        perturb_(PerceiverIOForImageClassification(config)).save_pretrained(folder)
    else:  # transformers' own Perceiver checkpoint, converted on the fly
        config = PerceiverConfig(
            num_latents=8, d_latents=32, d_model=64, num_blocks=1, num_self_attends_per_block=1,
            num_self_attention_heads=2, num_cross_attention_heads=1, image_size=16, num_labels=3,
        )
        PerceiverForImageClassificationLearned(config).save_pretrained(folder)
    PerceiverImageProcessor(image_mean=[0.4, 0.4, 0.4], image_std=[0.3, 0.3, 0.3]).save_pretrained(folder)


@pytest.mark.parametrize("implementation", ["perceiver_hf", "transformers"])
def test_demo_fine_tunes_another_checkpoint_with_a_new_classifier(tmp_path, implementation):
    small_learned_classifier(tmp_path / "start", implementation)
    output_dir = tmp_path / "fine-tuned"
    result = run_demo(DemoSettings(output_dir=output_dir, model=str(tmp_path / "start"), max_steps=2, batch_size=8))
    assert 0 <= result.accuracy <= 1
    model = PerceiverIOForImageClassification.from_pretrained(output_dir)
    assert model.config.num_labels == 10 and model.config.id2label[9] == "9"
    processor = json.loads((output_dir / "preprocessor_config.json").read_text())
    # Digits are resized to what the model's learned positions expect, normalised as the model was trained.
    assert processor["size"] == {"height": 16, "width": 16} and processor["image_mean"] == [0.4, 0.4, 0.4]


def test_demo_refuses_to_overwrite_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--output-dir", str(tmp_path), "--max-steps", "1"]) == 2
    error = capsys.readouterr().err
    assert "exists and is not a perceiver_hf model folder" in error and "--output-dir" in error
    assert [f.name for f in tmp_path.iterdir()] == ["notes.txt"]


def test_bad_options_are_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "0"])
    assert exit_info.value.code == 2 and "--epochs must be positive, got 0" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command():
    help_text = subprocess.run(
        [sys.executable, "-m", "perceiver_hf", "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--output-dir" in help_text and "accelerate launch" in help_text
