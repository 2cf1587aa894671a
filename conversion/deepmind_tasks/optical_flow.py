"""DeepMind's optical-flow model (trained on AutoFlow at 368x496): `optical_flow_checkpoint.pystate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.presets import flow_decoder_config, flow_output_config, fourier_position_encoding
from perceiver_hf.processing import PerceiverIOFlowProcessor

from ..haiku_checkpoint import CheckpointError, HaikuParams
from . import DeepMindTask, core_config, official_encoder

_TRAIN_SIZE = [368, 496]
_FOURIER = {"concat_pos": True, "max_resolution": _TRAIN_SIZE, "num_bands": 64, "sine_only": False}

# The colab's constructor arguments, in the layout of the `optical_flow` fixture's config.json.
OFFICIAL_CONFIG: dict[str, Any] = {
    "TRAIN_SIZE": _TRAIN_SIZE,
    "FLOW_SCALE_FACTOR": 20,
    "input_preprocessor": {
        "position_encoding_type": "fourier",
        "fourier_position_encoding_kwargs": dict(_FOURIER),
        "n_extra_pos_mlp": 0,
        "prep_type": "patches",
        "spatial_downsample": 1,
        "conv_after_patching": True,
        "temporal_downsample": 2,
        "num_channels": 64,
    },
    "encoder": official_encoder(
        z_index_dim=2048, num_z_channels=512, num_blocks=1, num_self_attends_per_block=24, num_self_attend_heads=16,
        num_cross_attend_heads=1,
    ),
    "decoder": {
        "output_image_shape": _TRAIN_SIZE,
        "rescale_factor": 100.0,
        "use_query_residual": False,
        "output_num_channels": 2,
        "position_encoding_type": "fourier",
        "fourier_position_encoding_kwargs": dict(_FOURIER),
    },
}


def _require(settings: dict[str, Any], key: str, expected, where: str) -> None:
    value = settings.get(key, expected)
    if value != expected:
        raise CheckpointError(
            f"perceiver_hf's flow model supports {where}.{key} = {expected!r} (DeepMind's optical-flow model), "
            f"got {value!r}."
        )


def build_config(deepmind: dict[str, Any]) -> PerceiverIOConfig:
    preprocessor, decoder = deepmind["input_preprocessor"], deepmind["decoder"]
    _require(preprocessor, "prep_type", "patches", "input_preprocessor")
    _require(preprocessor, "temporal_downsample", 2, "input_preprocessor")
    _require(preprocessor, "spatial_downsample", 1, "input_preprocessor")
    _require(preprocessor, "position_encoding_type", "fourier", "input_preprocessor")
    _require(preprocessor, "n_extra_pos_mlp", 0, "input_preprocessor")
    _require(preprocessor, "concat_or_add_pos", "concat", "input_preprocessor")
    _require(decoder, "output_num_channels", 2, "decoder")
    _require(decoder, "concat_preprocessed_input", False, "decoder")

    adapter = {
        "type": "flow",
        "in_channels": 27,
        "num_frames": 2,
        # Without `conv_after_patching` the 54 patch channels go to the encoder as they are.
        "out_channels": preprocessor.get("num_channels", 64) if preprocessor.get("conv_after_patching") else 0,
        "position_encoding": fourier_position_encoding(**preprocessor["fourier_position_encoding_kwargs"]),
    }
    decoder_config = flow_decoder_config(adapter)
    decoder_config.update(
        use_query_residual=decoder.get("use_query_residual", False),
        num_heads=decoder.get("num_heads", 1),
        qk_channels=decoder.get("qk_channels"),
        v_channels=decoder.get("v_channels"),
        widening_factor=decoder.get("widening_factor", 1),
    )
    output = flow_output_config(
        deepmind["TRAIN_SIZE"], decoder.get("rescale_factor", 100.0), deepmind.get("FLOW_SCALE_FACTOR", 20)
    )
    return PerceiverIOConfig(
        **core_config(deepmind["encoder"]),
        input_adapter=adapter,
        query_decoder=decoder_config,
        output_adapter=output,
        architectures=["PerceiverIOForOpticalFlow"],
    )


def convert(params: HaikuParams, deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, torch.Tensor]:
    weights = params.encoder("perceiver_encoder", "perceiver.encoder", deepmind["encoder"]["num_self_attends_per_block"])
    if config.input_adapter["out_channels"]:
        weights.update(params.linear("image_preprocessor/patches_linear", "perceiver.input_adapter.patch_projection"))
    decoder = "flow_decoder/~/basic_decoder"
    weights.update(params.attention_layer(f"{decoder}/cross_attention", "decoder.cross_attention", True))
    weights.update(params.linear(f"{decoder}/output", "decoder.output_projection"))
    return weights


def tile_overlap(train_size) -> int:
    """The colab's 20-pixel overlap between tiles; tiny test models get a proportionate one."""
    return min(20, min(train_size) // 2)


def write_processor(output_dir: Path, deepmind: dict[str, Any], config: PerceiverIOConfig) -> None:
    train_size = deepmind["TRAIN_SIZE"]
    processor = PerceiverIOFlowProcessor(tile_size=train_size, min_overlap=tile_overlap(train_size))
    processor.save_pretrained(output_dir)


def card_values(deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, Any]:
    return {"min_overlap": tile_overlap(config.output_adapter["train_size"])}


TASKS = [
    DeepMindTask(
        name="optical-flow",
        filename="optical_flow_checkpoint.pystate",
        head="PerceiverIOForOpticalFlow",
        official_config=OFFICIAL_CONFIG,
        build_config=build_config,
        convert=convert,
        write_processor=write_processor,
        model_card="optical_flow.md",
        summary="Optical flow between two frames (AutoFlow, 368x496), Fourier positions on 3x3 patches",
        card_values=card_values,
    )
]
