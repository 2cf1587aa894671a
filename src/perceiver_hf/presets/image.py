"""DeepMind's ImageNet classifiers: learned positions on 1x1-conv features, Fourier positions on pixels, or a
conv stem with Fourier positions, each read by 512 latents and decoded by one learned query."""

from __future__ import annotations

from typing import Any

from .components import as_pair, deepmind_core, fourier_position_encoding, pop_options, trainable_position_encoding

IMAGENET_SIZE = (224, 224)
# The latent core of all three ImageNet models (62.3M parameters with learned positions).
IMAGENET_CORE = deepmind_core(
    num_latents=512, d_latents=1024, num_blocks=8, num_self_attends_per_block=6,
    num_self_attention_heads=8, num_cross_attention_heads=1,
)


def image_adapter_config(
    prep_type: str,
    position_encoding: dict[str, Any],
    in_channels: int = 3,
    out_channels: int | None = None,
    spatial_downsample: int = 1,
    project_pos_dim: int = -1,
    concat_or_add_pos: str = "concat",
    conv_padding: str | None = None,
) -> dict[str, Any]:
    """Input adapter of an image model (see `ImageInputAdapter`): `prep_type` "pixels", "conv1x1" or "conv"."""
    spec = {"type": "image", "prep_type": prep_type, "in_channels": int(in_channels)}
    if out_channels is not None:
        spec["out_channels"] = int(out_channels)
    if spatial_downsample != 1:
        spec["spatial_downsample"] = int(spatial_downsample)
    if conv_padding is not None:
        spec["conv_padding"] = conv_padding
    spec["position_encoding"] = position_encoding
    if project_pos_dim > 0:
        spec["project_pos_dim"] = int(project_pos_dim)
    spec["concat_or_add_pos"] = concat_or_add_pos
    return spec


def imagenet_adapter_config(
    variant: str, image_size=IMAGENET_SIZE, conv_padding: str = "tf_same", in_channels: int = 3
) -> dict[str, Any]:
    """Input adapter of DeepMind's ImageNet models: `"learned"`, `"fourier"` or `"conv"` preprocessing."""
    height, width = as_pair(image_size)
    if variant == "learned":
        positions = trainable_position_encoding((height, width), 256)
        return image_adapter_config("conv1x1", positions, in_channels, out_channels=256, project_pos_dim=256)
    if variant == "fourier":
        return image_adapter_config("pixels", fourier_position_encoding(64, (height, width)), in_channels)
    if variant == "conv":  # the conv stem downsamples by 4 (stride-2 conv, stride-2 max-pool)
        positions = fourier_position_encoding(64, (height // 4, width // 4))
        return image_adapter_config("conv", positions, in_channels, out_channels=64, conv_padding=conv_padding)
    raise ValueError(f"Unknown image classification variant {variant!r}; expected 'learned', 'fourier' or 'conv'.")


def classification_decoder_config(num_channels: int, use_query_residual: bool) -> dict[str, Any]:
    """One learned query cross-attends to the latents; its output is projected to `num_labels` logits."""
    return {
        "query": {"type": "trainable", "num_queries": 1, "num_channels": int(num_channels)},
        "num_heads": 1,
        "use_query_residual": use_query_residual,
        "final_project": True,
    }


def image_classification(
    variant: str = "learned",
    image_size=IMAGENET_SIZE,
    num_labels: int = 1000,
    decoder_query_residual: bool | None = None,
    **overrides,
) -> dict[str, Any]:
    """DeepMind's ImageNet architecture; `overrides` replace core fields (`conv_padding` and `in_channels` go to
    the input adapter). The learned-position model decodes without a query residual, the other two with one."""
    adapter = imagenet_adapter_config(variant, image_size, **pop_options(overrides, ("conv_padding", "in_channels")))
    core = {**IMAGENET_CORE, **overrides}
    if decoder_query_residual is None:
        decoder_query_residual = variant != "learned"
    return {
        **core,
        "input_adapter": adapter,
        "query_decoder": classification_decoder_config(core["d_latents"], decoder_query_residual),
        "output_adapter": {"type": "classification"},
        "num_labels": num_labels,
    }
