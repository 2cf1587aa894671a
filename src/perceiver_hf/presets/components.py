"""Config dicts shared by several architectures: position encodings and DeepMind's activation."""

from __future__ import annotations

from typing import Any

# DeepMind's Haiku code uses `jax.nn.gelu`, whose default is the tanh approximation; transformers'
# checkpoints use the exact erf form ("gelu"). Both are in ACT2FN: "gelu" and "gelu_pytorch_tanh".
DEEPMIND_GELU = "gelu_pytorch_tanh"


def deepmind_core(
    num_latents: int,
    d_latents: int,
    num_blocks: int,
    num_self_attends_per_block: int,
    num_self_attention_heads: int,
    num_cross_attention_heads: int,
    **more,
) -> dict[str, Any]:
    """Core fields of a DeepMind model: its latents, encoder blocks and heads (and DeepMind's GELU)."""
    return {
        "num_latents": num_latents,
        "d_latents": d_latents,
        "num_blocks": num_blocks,
        "num_self_attends_per_block": num_self_attends_per_block,
        "num_self_attention_heads": num_self_attention_heads,
        "num_cross_attention_heads": num_cross_attention_heads,
        **more,
        "hidden_act": DEEPMIND_GELU,
    }


def transformers_sizes(core: dict[str, Any], **extra) -> dict[str, Any]:
    """A core's sizes as arguments of transformers' `PerceiverConfig` (the names are the same; transformers'
    checkpoints use the exact GELU, so DeepMind's activation is left out), plus `extra` arguments."""
    return {**{name: value for name, value in core.items() if name != "hidden_act"}, **extra}


def fourier_position_encoding(
    num_bands: int, max_resolution, concat_pos: bool = True, sine_only: bool = False
) -> dict[str, Any]:
    """Config dict of a Fourier position encoding."""
    return {
        "type": "fourier",
        "num_bands": int(num_bands),
        "max_resolution": [int(r) for r in max_resolution],
        "concat_pos": concat_pos,
        "sine_only": sine_only,
    }


def trainable_position_encoding(index_dims, num_channels: int) -> dict[str, Any]:
    """Config dict of a learned position encoding table."""
    dims = [int(index_dims)] if isinstance(index_dims, int) else [int(d) for d in index_dims]
    return {"type": "trainable", "index_dims": dims, "num_channels": int(num_channels)}


def as_pair(size) -> tuple[int, int]:
    """`224` or `(224, 224)` -> `(224, 224)`."""
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def pop_options(overrides: dict[str, Any], names) -> dict[str, Any]:
    """Remove the component options `names` from a preset's `overrides` (the rest replace core fields)."""
    return {name: overrides.pop(name) for name in names if name in overrides}
