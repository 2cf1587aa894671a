"""The demo's recipe: the model (a small fresh one, or a pretrained image classifier with a new 10-digit
classifier), its image processor, and the training arguments and `Trainer` that fine-tune it on the digits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoImageProcessor, EvalPrediction, Trainer, TrainingArguments
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..configuration import PerceiverIOConfig
from ..heads import PerceiverIOForImageClassification
from ..input_adapters import ImageInputAdapter
from ..position import TrainablePositionEncoding
from ..presets import classification_decoder_config, fourier_position_encoding, image_adapter_config
from .digits import DIGIT_SIZE, LABELS, DigitsSplit, ImageClassificationDataset, digits_image_processor


@dataclass
class DemoSettings:
    """What `perceiver-hf demo` does; the command line fills it (see `perceiver_hf.cli`)."""

    output_dir: Path = Path("perceiver-io-digits")
    epochs: float = 20
    model: str | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    max_steps: int = -1
    checkpoint_dir: Path | None = None
    attention_dropout: float | None = None
    gradient_checkpointing: bool = False
    bf16: bool = False
    threads: int | None = None
    examples_shown: int = 8


def digits_config() -> PerceiverIOConfig:
    """A small Perceiver IO for 8x8 images (0.3 M parameters): pixels with Fourier positions, 32 latents.

    Fourier positions tell every pixel where it is without anything to learn. `initializer_range=0.1` matters:
    attention logits are products of query and key weights, so with transformers' usual 0.02 both factors start
    tiny, attention stays uniform (every latent sees the mean image) and their gradients vanish; such a model was
    still at 30% accuracy after 10 epochs where this one is at 97%.
    """
    d_latents = 128
    return PerceiverIOConfig(
        num_latents=32,
        d_latents=d_latents,
        num_blocks=1,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        num_cross_attention_heads=4,
        qk_channels=64,
        hidden_act="gelu",
        initializer_range=0.1,
        input_adapter=image_adapter_config("pixels", fourier_position_encoding(8, DIGIT_SIZE)),
        query_decoder=classification_decoder_config(d_latents, use_query_residual=True),
        output_adapter={"type": "classification"},
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={label: index for index, label in LABELS.items()},
    )


def native_image_size(adapter: ImageInputAdapter) -> tuple[int, int]:
    """The image size a pretrained image adapter was built for: its learned position grid, or the Fourier
    resolution, times its downsampling."""
    encoding = adapter.position_encoding
    grid = encoding.index_dims if isinstance(encoding, TrainablePositionEncoding) else encoding.max_resolution
    scale = 4 if adapter.prep_type == "conv" else adapter.spatial_downsample
    return grid[0] * scale, grid[1] * scale


def build_model(settings: DemoSettings):
    """A fresh `digits_config()` model, or `settings.model` with a new 10-digit classifier, and the image
    processor that feeds it digits."""
    label2id = {label: index for index, label in LABELS.items()}
    overrides = {}
    if settings.attention_dropout is not None:
        overrides["attention_probs_dropout_prob"] = settings.attention_dropout
    if settings.model is None:
        config = digits_config()
        for name, value in overrides.items():
            setattr(config, name, value)
        return PerceiverIOForImageClassification(config), digits_image_processor()

    model = PerceiverIOForImageClassification.from_pretrained(
        settings.model,
        id2label=LABELS,  # sets num_labels
        label2id=label2id,
        ignore_mismatched_sizes=True,  # the old classifier's output layer is replaced by a 10-class one
        **overrides,
    )
    adapter = model.perceiver.input_adapter
    if not isinstance(adapter, ImageInputAdapter) or adapter.in_channels != 3:
        raise ValueError(
            f"--model {settings.model} must be an image classifier taking RGB images (an image input adapter with "
            f"3 channels); it has {type(adapter).__name__} with {getattr(adapter, 'in_channels', '?')} channels."
        )
    try:  # keep the normalisation the model was trained with
        source = AutoImageProcessor.from_pretrained(settings.model)
        mean, std = source.image_mean, source.image_std
    except (OSError, ValueError):  # no processor saved: DeepMind's and transformers' ImageNet statistics
        mean, std = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    return model, digits_image_processor(native_image_size(adapter), mean, std)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def training_arguments(settings: DemoSettings, output_dir: Path, **overrides) -> TrainingArguments:
    """The demo's recipe as `TrainingArguments`; `overrides` replace any of them."""
    processes = world_size()
    if settings.batch_size % processes:
        raise ValueError(
            f"The batch size ({settings.batch_size}) is split evenly across processes: it must be a multiple of the "
            f"number of processes ({processes}). Pass --batch-size {settings.batch_size // processes * processes or processes}."
        )
    recipe = dict(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size // processes,
        per_device_eval_batch_size=128,
        learning_rate=settings.learning_rate,
        weight_decay=0.01,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        label_smoothing_factor=0.1,
        seed=settings.seed,
        logging_strategy="epoch",
        eval_strategy="no",
        save_strategy="no",
        save_total_limit=2,
        report_to="none",
        use_cpu=not has_accelerator(),
        bf16=settings.bf16,
        activation_checkpointing=settings.gradient_checkpointing,
        # Every parameter gets a gradient in every step: DDP must not search the graph for unused ones.
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
    )
    return TrainingArguments(**{**recipe, **overrides})


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def build_trainer(
    model: PerceiverIOForImageClassification,
    image_processor,
    split: DigitsSplit,
    args: TrainingArguments,
) -> Trainer:
    return Trainer(
        model=model,
        args=args,
        train_dataset=ImageClassificationDataset(split.train_images, split.train_labels, image_processor),
        eval_dataset=ImageClassificationDataset(split.held_out_images, split.held_out_labels, image_processor),
        compute_metrics=accuracy,
    )
