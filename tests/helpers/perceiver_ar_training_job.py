"""A few Trainer steps of a small Perceiver AR with `labels=input_ids`, small enough for tests.

Imported by the tests; run as a script by the multi-process test:
`accelerate launch --multi_gpu --num_processes 2 tests/perceiver_ar_training_job.py OUTPUT_DIR MAX_STEPS` trains and
writes each process's final weights to OUTPUT_DIR/weights-rank{R}-of-{N}.safetensors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import PerceiverTokenizer, Trainer, TrainingArguments

from perceiver_hf import PerceiverARConfig, PerceiverARForCausalLM

GLOBAL_BATCH = 8


def small_trainer(output_dir: Path, max_steps: int, world_size: int = 1) -> Trainer:
    """A fresh model (seed 0) on fixed random sequences; global batch 8 whatever the number of processes."""
    transformers.set_seed(0)
    config = PerceiverARConfig(
        vocab_size=262,
        max_position_embeddings=40,
        num_latents=8,
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=2,
        prefix_dropout=0.0,
    )
    model = PerceiverARForCausalLM(config)
    # One global batch per step, the whole data set: every step sees the same examples however they are sharded.
    rows = torch.randint(6, 262, (GLOBAL_BATCH, 40), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": row, "labels": row} for row in rows]
    arguments = TrainingArguments(
        output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=GLOBAL_BATCH // world_size,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        save_strategy="no",
        seed=0,
        dataloader_drop_last=True,
        max_grad_norm=0.0,
    )
    return Trainer(model=model, args=arguments, train_dataset=data, processing_class=PerceiverTokenizer())


def main(output_dir: str, max_steps: str) -> None:
    torch.set_num_threads(1)
    trainer = small_trainer(Path(output_dir), int(max_steps), world_size=int(os.environ.get("WORLD_SIZE", "1")))
    trainer.train()
    args = trainer.args
    # Cloned: the tied output and input embeddings share memory, which safetensors refuses to save twice.
    weights = {name: tensor.detach().clone() for name, tensor in trainer.model.state_dict().items()}
    save_file(weights, str(Path(output_dir) / f"weights-rank{args.process_index}-of-{args.world_size}.safetensors"))


if __name__ == "__main__":
    main(*sys.argv[1:])
