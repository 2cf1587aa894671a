"""The demo's training recipe on a slice of the digits, small enough for tests.

Imported by the resume test; run as a script by the multi-process test:
`accelerate launch --multi_gpu --num_processes 2 tests/helpers/training_job.py OUTPUT_DIR MAX_STEPS` trains and writes each
process's final weights to OUTPUT_DIR/weights-rank{R}-of-{N}.safetensors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import Trainer

from perceiver_hf.demo import DemoSettings, build_model, build_trainer, training_arguments
from perceiver_hf.demo.digits import DigitsSplit, split_digits


def small_split(num_train: int = 320, num_held_out: int = 100) -> DigitsSplit:
    split = split_digits()
    return DigitsSplit(
        split.train_images[:num_train], split.train_labels[:num_train],
        split.held_out_images[:num_held_out], split.held_out_labels[:num_held_out],
    )


def small_trainer(output_dir: Path, epochs: float = 2, max_steps: int = -1, **arguments) -> Trainer:
    """A fresh demo model (seed 0) and the demo's `TrainingArguments`, global batch 32."""
    settings = DemoSettings(epochs=epochs, max_steps=max_steps, batch_size=32, seed=0)
    transformers.set_seed(settings.seed)
    model, image_processor = build_model(settings)
    arguments = {"disable_tqdm": True, "logging_strategy": "no", **arguments}
    return build_trainer(model, image_processor, small_split(), training_arguments(settings, output_dir, **arguments))


def main(output_dir: str, max_steps: str) -> None:
    torch.set_num_threads(1)
    trainer = small_trainer(Path(output_dir), max_steps=int(max_steps))
    trainer.train()
    args = trainer.args
    weights = {name: tensor.contiguous() for name, tensor in trainer.model.state_dict().items()}
    save_file(weights, str(Path(output_dir) / f"weights-rank{args.process_index}-of-{args.world_size}.safetensors"))


if __name__ == "__main__":
    main(*sys.argv[1:])
