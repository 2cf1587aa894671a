"""DeepMind's optical-flow model (AutoFlow, 368x496 frame pairs): two frames of 3x3 patches, 2048 latents, and
one decoder query per pixel made of the input array itself."""

from __future__ import annotations

from typing import Any

from ..position import build_position_encoding
from .components import deepmind_core, fourier_position_encoding, pop_options

# The frame size DeepMind's model was trained on; the pipeline tiles larger frames into it.
OPTICAL_FLOW_TRAIN_SIZE = (368, 496)
OPTICAL_FLOW_CORE = deepmind_core(
    num_latents=2048, d_latents=512, num_blocks=1, num_self_attends_per_block=24,
    num_self_attention_heads=16, num_cross_attention_heads=1,
)


def flow_adapter_config(
    train_size=OPTICAL_FLOW_TRAIN_SIZE, out_channels: int = 64, num_bands: int = 64, in_channels: int = 27
) -> dict[str, Any]:
    """Two frames of 3x3 patches, a linear layer, Fourier positions."""
    return {
        "type": "flow",
        "in_channels": int(in_channels),
        "num_frames": 2,
        "out_channels": int(out_channels),
        "position_encoding": fourier_position_encoding(num_bands, train_size),
    }


def flow_decoder_config(input_adapter: dict[str, Any], chunk_size: int | None = 16384) -> dict[str, Any]:
    """Every row of the input array (one per pixel) queries the latents for its two flow channels, `chunk_size`
    pixels at a time."""
    content_channels = input_adapter["out_channels"] or input_adapter["num_frames"] * input_adapter["in_channels"]
    query_channels = content_channels + build_position_encoding(input_adapter["position_encoding"]).num_channels
    return {
        "query": {"type": "inputs", "num_channels": int(query_channels)},
        "num_heads": 1,
        "use_query_residual": False,
        "final_project": True,
        "output_channels": 2,
        "chunk_size": chunk_size,
    }


def flow_output_config(
    train_size=OPTICAL_FLOW_TRAIN_SIZE, rescale_factor: float = 100.0, flow_scale_factor: float = 20.0
) -> dict[str, Any]:
    """The decoder output is divided by `rescale_factor` (the model's `logits`, as transformers returns them);
    `logits * flow_scale_factor` is the flow in pixels (what DeepMind's colab returns)."""
    return {
        "type": "flow",
        "rescale_factor": float(rescale_factor),
        "flow_scale_factor": float(flow_scale_factor),
        "train_size": [int(d) for d in train_size],
    }


def optical_flow(
    train_size=OPTICAL_FLOW_TRAIN_SIZE, decoder_chunk_size: int | None = 16384, **overrides
) -> dict[str, Any]:
    """The optical-flow architecture; `overrides` replace core fields (`out_channels` and `num_bands` resize the
    input adapter). `decoder_chunk_size` pixels are decoded at a time (`None`: all at once)."""
    adapter = flow_adapter_config(train_size, **pop_options(overrides, ("out_channels", "num_bands")))
    return {
        **OPTICAL_FLOW_CORE,
        **overrides,
        "input_adapter": adapter,
        "query_decoder": flow_decoder_config(adapter, decoder_chunk_size),
        "output_adapter": flow_output_config(train_size),
    }
