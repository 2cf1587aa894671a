"""The DeepMind checkpoints `convert_deepmind.py` knows, one `DeepMindTask` each.

A task says where the official file lives, what DeepMind's constructor arguments were for it (the form of the
fixtures' `config.json`), how those arguments become a `PerceiverIOConfig`, and how the Haiku parameters map
onto the perceiver_hf head. Task modules register their tasks in `TASKS` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.presets import DEEPMIND_GELU

from ..haiku_checkpoint import HaikuParams

DEEPMIND_BUCKET = "https://storage.googleapis.com/perceiver_io"


@dataclass(frozen=True)
class DeepMindTask:
    """One official DeepMind Perceiver IO checkpoint and how to convert it.

    Attributes:
        name: the `--task` value, e.g. `"imagenet-learned"`.
        filename: the official file in DeepMind's bucket.
        head: the perceiver_hf head class name the checkpoint converts into.
        official_config: DeepMind's constructor arguments at the colab configuration, in the form of the
            fixtures' `config.json` (what `--deepmind-config` reads).
        build_config: DeepMind arguments -> `PerceiverIOConfig`.
        convert: (Haiku parameters, DeepMind arguments, our config) -> perceiver_hf state dict.
        write_processor: writes processor files (preprocessor config, tokenizer, ...) into the output folder.
        model_card: file name of the model card template in `model_cards/` (None: the generic `deepmind.md`).
        summary: one line for `--help` and the model card.
        metadata: extra values for the model card template (e.g. `{"top1_accuracy": 79.0}`); see
            `model_card_context` in `convert_deepmind.py` for the values every template gets.
        task_of: DeepMind arguments -> (the name of the task they describe, or None for none of them; why), for
            tasks that share a head and a configuration layout (the three ImageNet classifiers): a checkpoint
            converted with another task's arguments must not be published under this task's name.
        card_values: (DeepMind arguments, our config) -> template values that depend on the converted
            architecture (they override `metadata`), so that a card describes the model it comes with.
    """

    name: str
    filename: str
    head: str
    official_config: dict[str, Any]
    build_config: Callable[[dict[str, Any]], PerceiverIOConfig]
    convert: Callable[[HaikuParams, dict[str, Any], PerceiverIOConfig], dict[str, torch.Tensor]]
    write_processor: Callable[[Path, dict[str, Any], PerceiverIOConfig], None] | None = None
    model_card: str | None = None
    summary: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    task_of: Callable[[dict[str, Any]], tuple[str | None, str]] | None = None
    card_values: Callable[[dict[str, Any], PerceiverIOConfig], dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return f"{DEEPMIND_BUCKET}/{self.filename}"


def official_encoder(
    z_index_dim: int,
    num_z_channels: int,
    num_blocks: int,
    num_self_attends_per_block: int,
    num_self_attend_heads: int,
    num_cross_attend_heads: int,
    **more,
) -> dict[str, Any]:
    """DeepMind's `PerceiverEncoder` arguments as a colab gives them: the sizes, the settings the colabs share, and
    the task's own (`more`)."""
    return {
        "num_self_attends_per_block": num_self_attends_per_block,
        "num_blocks": num_blocks,
        "z_index_dim": z_index_dim,
        "num_z_channels": num_z_channels,
        "num_cross_attend_heads": num_cross_attend_heads,
        "num_self_attend_heads": num_self_attend_heads,
        "cross_attend_widening_factor": 1,
        "self_attend_widening_factor": 1,
        "dropout_prob": 0.0,
        "z_pos_enc_init_scale": 0.02,
        "cross_attention_shape_for_attn": "kv",
        **more,
    }


def core_config(encoder: dict[str, Any]) -> dict[str, Any]:
    """`PerceiverEncoder` keyword arguments -> PerceiverIOConfig core fields."""
    return {
        "num_latents": encoder["z_index_dim"],
        "d_latents": encoder["num_z_channels"],
        "num_blocks": encoder["num_blocks"],
        "num_self_attends_per_block": encoder["num_self_attends_per_block"],
        "num_self_attention_heads": encoder["num_self_attend_heads"],
        "num_cross_attention_heads": encoder["num_cross_attend_heads"],
        "qk_channels": encoder.get("qk_channels"),
        "v_channels": encoder.get("v_channels"),
        "cross_attention_shape_for_attention": encoder.get("cross_attention_shape_for_attn", "kv"),
        "self_attention_widening_factor": encoder.get("self_attend_widening_factor", 1),
        "cross_attention_widening_factor": encoder.get("cross_attend_widening_factor", 1),
        "use_query_residual": encoder.get("use_query_residual", True),
        "attention_probs_dropout_prob": float(encoder.get("dropout_prob", 0.0)),
        "hidden_act": DEEPMIND_GELU,
    }


def _collect() -> dict[str, DeepMindTask]:
    from . import imagenet, language, optical_flow, video_autoencoding

    tasks = {}
    for module in (imagenet, language, optical_flow, video_autoencoding):
        for task in module.TASKS:
            tasks[task.name] = task
    return tasks


TASKS: dict[str, DeepMindTask] = _collect()
