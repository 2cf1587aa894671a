"""The main job: fine-tune, save a Hub-ready folder (weights, image processor, model card, a picture of
predictions), reload it through `pipeline("image-classification")` and report the held-out accuracy.

Runs as one process (`perceiver-hf demo`) or as several with DDP (`accelerate launch --multi_gpu
--num_processes 2 -m perceiver_hf demo`, `torchrun --nproc-per-node 2 -m perceiver_hf demo`): the global batch stays
the same, each process takes its share of it.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from transformers import pipeline
from transformers.trainer_utils import get_last_checkpoint

from ..model_folder import check_output_folder, render_model_card, staged_output_folder
from .digits import split_digits
from .recipe import DemoSettings, build_model, build_trainer, has_accelerator, training_arguments, world_size

PREDICTIONS_PICTURE = "held_out_predictions.png"
OUTPUT_OPTION = "--output-dir"


@dataclass
class DemoResult:
    accuracy: float
    num_held_out: int
    train_seconds: float
    output_dir: Path


def save_prediction_picture(images, labels, predictions, path: Path, columns: int = 8) -> None:
    """Digits enlarged 8x, each captioned with the prediction (green when right, red when wrong)."""
    cell, caption = 64, 16
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * cell, rows * (cell + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, label, predicted) in enumerate(zip(images, labels, predictions)):
        x, y = (index % columns) * cell, (index // columns) * (cell + caption)
        sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        colour = (0, 130, 0) if predicted == str(label) else (200, 0, 0)
        draw.text((x + 4, y + cell + 2), f"{predicted} (true {label})", fill=colour)
    sheet.save(path)


def training_length(settings: DemoSettings) -> str:
    # Trainer's max_steps replaces the epochs (and sets the learning-rate schedule's length): say which one runs.
    return f"{settings.max_steps} optimizer steps" if settings.max_steps > 0 else f"{settings.epochs:g} epochs"


def model_card(settings: DemoSettings, result: DemoResult, num_train: int, num_parameters: int) -> str:
    """The folder's `README.md`: the measured accuracy and time, and how the model was trained."""
    processes = world_size()
    levers = ((settings.bf16, ", bf16 autocast"), (settings.gradient_checkpointing, ", gradient checkpointing"))
    device = "accelerator" if has_accelerator() else "CPU"
    context = {
        "model_name": result.output_dir.name,
        "accuracy": result.accuracy,
        "num_held_out": result.num_held_out,
        "train_seconds": result.train_seconds,
        "num_parameters": num_parameters,
        "num_train": num_train,
        "start": f"`{settings.model}`" if settings.model else "a fresh `digits_config()` (random initialisation)",
        "picture": PREDICTIONS_PICTURE,
        "learning_rate": f"{settings.learning_rate:g}",
        "batch_size": settings.batch_size,
        "schedule": training_length(settings),
        "seed": settings.seed,
        "levers": "".join(text for flag, text in levers if flag),
        "hardware": f"{processes} process{'es' if processes > 1 else ''}, {torch.get_num_threads()} thread(s) each, "
        f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "command": " ".join(["perceiver-hf", *sys.argv[1:]]) if sys.argv else "perceiver-hf demo",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    return render_model_card("model_card.md", context, Path(__file__).resolve().parent)


def run_demo(settings: DemoSettings, say=print) -> DemoResult | None:
    """Fine-tune, save, reload through the pipeline, report. Returns the result on the main process (None on the
    others, which only help training)."""
    check_output_folder(settings.output_dir, OUTPUT_OPTION)
    threads = settings.threads or (1 if settings.model is None and "OMP_NUM_THREADS" not in os.environ else None)
    previous_threads = torch.get_num_threads()
    try:
        if threads:
            # The small model's matrices are too small for intra-op threads to pay off, and on a busy machine
            # threads waiting for each other make a step many times slower (65 ms with one thread, 270-1150 ms
            # with two).
            torch.set_num_threads(threads)
        return _train_save_and_report(settings, say)
    finally:  # a caller in the same process (a notebook, a test run) gets its threads back
        torch.set_num_threads(previous_threads)


def _train_save_and_report(settings: DemoSettings, say) -> DemoResult | None:
    output_dir = Path(settings.output_dir).resolve()
    transformers.set_seed(settings.seed)  # every process builds the same initial model
    split = split_digits()
    model, image_processor = build_model(settings)
    num_parameters = sum(p.numel() for p in model.parameters())

    with tempfile.TemporaryDirectory(prefix="perceiver_hf_demo_") as scratch:
        checkpoint_dir = Path(settings.checkpoint_dir) if settings.checkpoint_dir else Path(scratch)
        args = training_arguments(settings, checkpoint_dir, save_strategy="epoch" if settings.checkpoint_dir else "no")
        trainer = build_trainer(model, image_processor, split, args)
        main = trainer.is_world_process_zero()
        if not main:
            say = lambda *_, **__: None  # noqa: E731 - only the main process talks
        resume = get_last_checkpoint(str(checkpoint_dir)) if settings.checkpoint_dir and checkpoint_dir.is_dir() else None

        dropout = model.config.attention_probs_dropout_prob
        say(
            f"Fine-tuning a {num_parameters / 1e6:.2f} M-parameter Perceiver IO on {len(split.train_images)} handwritten "
            f"digits ({len(split.held_out_images)} held out), {training_length(settings)}, global batch "
            f"{settings.batch_size}, {args.world_size} process(es), {torch.get_num_threads()} thread(s) each."
        )
        if dropout > 0:
            say(
                f"Attention dropout is {dropout}: it keeps PyTorch's fused attention kernel from running and the "
                "encoder from folding its key/value projections. Pass --attention-dropout 0 to train leaner."
            )
        if resume:
            say(f"Resuming from {resume}.")
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume)
        train_seconds = time.perf_counter() - started
        if not main:
            return None

        # The folder is measured as users will load it: through the pipeline, before it is moved into place.
        with staged_output_folder(output_dir, OUTPUT_OPTION) as staging:
            trainer.model.save_pretrained(staging)
            image_processor.save_pretrained(staging)
            classifier = pipeline("image-classification", model=str(staging), device="cpu")
            predictions = [top[0]["label"] for top in classifier(split.held_out_images, top_k=1, batch_size=64)]
            correct = [predicted == str(label) for predicted, label in zip(predictions, split.held_out_labels)]
            result = DemoResult(float(np.mean(correct)), len(correct), train_seconds, output_dir)
            shown = min(16, len(correct))
            save_prediction_picture(
                split.held_out_images[:shown], split.held_out_labels[:shown], predictions[:shown],
                staging / PREDICTIONS_PICTURE,
            )
            card = model_card(settings, result, len(split.train_images), num_parameters)
            (staging / "README.md").write_text(card, encoding="utf-8")

    say(f"\nSaved the model, its image processor and model card to {output_dir}")
    say(f'Reloaded it with pipeline("image-classification", model="{output_dir}"); held-out digits:')
    for index in range(min(settings.examples_shown, len(predictions))):
        mark = "ok" if correct[index] else "WRONG"
        truth = split.held_out_labels[index]
        say(f"  held-out image {index + 1:3d}: predicted {predictions[index]}, true {truth}  {mark}")
    say(f"held-out accuracy: {result.accuracy:.3f} on {result.num_held_out} images, trained in {train_seconds:.0f} s")
    return result
