"""DeepMind's three ImageNet classifiers: learned positions, Fourier positions, conv stem + Fourier positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.presets import (
    classification_decoder_config,
    fourier_position_encoding,
    image_adapter_config,
    trainable_position_encoding,
)

from ..haiku_checkpoint import HaikuParams
from . import DeepMindTask, core_config, official_encoder

_ENCODER = official_encoder(
    z_index_dim=512, num_z_channels=1024, num_blocks=8, num_self_attends_per_block=6, num_self_attend_heads=8,
    num_cross_attend_heads=1, use_query_residual=True,
)
_PREPROCESSORS = {
    "learned": {
        "prep_type": "conv1x1",
        "spatial_downsample": 1,
        "position_encoding_type": "trainable",
        "trainable_position_encoding_kwargs": {"num_channels": 256, "init_scale": 0.02},
        "concat_or_add_pos": "concat",
        "project_pos_dim": 256,
        "num_channels": 256,
    },
    "fourier": {
        "position_encoding_type": "fourier",
        "fourier_position_encoding_kwargs": {"concat_pos": True, "max_resolution": [224, 224], "num_bands": 64, "sine_only": False},
        "prep_type": "pixels",
        "spatial_downsample": 1,
    },
    "conv": {
        "position_encoding_type": "fourier",
        "fourier_position_encoding_kwargs": {"concat_pos": True, "max_resolution": [56, 56], "num_bands": 64, "sine_only": False},
        "prep_type": "conv",
    },
}


IMAGENET_CLASSES = Path(__file__).resolve().parents[1] / "imagenet_classes.json"
# DeepMind's colab crops 224 / (224 + 32) of the shorter side, then resizes the crop to 224x224.
CROP_PADDING = 32


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, in the order of DeepMind's logits."""
    return json.loads(IMAGENET_CLASSES.read_text())["labels"]


def official_config(variant: str) -> dict[str, Any]:
    """The colab's constructor arguments, in the layout of the fixtures' `config.json`."""
    return {
        "image_size": [224, 224],
        "num_classes": 1000,
        "config": {
            "encoder": dict(_ENCODER),
            "decoder": {
                "num_z_channels": 1024,
                "use_query_residual": variant != "learned",
                "position_encoding_type": "trainable",
                "trainable_position_encoding_kwargs": {"num_channels": 1024, "init_scale": 0.02},
            },
            "input_preprocessor": dict(_PREPROCESSORS[variant]),
        },
    }


def build_config(deepmind: dict[str, Any]) -> PerceiverIOConfig:
    model = deepmind["config"]
    preprocessor, decoder = model["input_preprocessor"], model["decoder"]
    height, width = deepmind["image_size"]
    if preprocessor["position_encoding_type"] == "trainable":
        positions = trainable_position_encoding((height, width), preprocessor["trainable_position_encoding_kwargs"]["num_channels"])
    else:
        positions = fourier_position_encoding(**preprocessor["fourier_position_encoding_kwargs"])
    prep_type = preprocessor["prep_type"]
    adapter = image_adapter_config(
        prep_type,
        positions,
        out_channels=preprocessor.get("num_channels", 64),
        # The conv stem's 4x is fixed; DeepMind's argument is for pixels and 1x1 convolutions.
        spatial_downsample=1 if prep_type == "conv" else preprocessor.get("spatial_downsample", 1),
        project_pos_dim=preprocessor.get("project_pos_dim", -1),
        concat_or_add_pos=preprocessor.get("concat_or_add_pos", "concat"),
    )
    query_channels = decoder["trainable_position_encoding_kwargs"]["num_channels"]
    num_classes = deepmind["num_classes"]
    # DeepMind's classifiers are ImageNet's: 1000 logits name its classes. Other class counts keep LABEL_i.
    labels = {"id2label": dict(enumerate(imagenet_labels()))} if num_classes == 1000 else {"num_labels": num_classes}
    return PerceiverIOConfig(
        **core_config(model["encoder"]),
        input_adapter=adapter,
        query_decoder=classification_decoder_config(query_channels, decoder.get("use_query_residual", False)),
        output_adapter={"type": "classification"},
        **labels,
        architectures=["PerceiverIOForImageClassification"],
    )


def write_processor(folder: Path, deepmind: dict[str, Any], config: PerceiverIOConfig) -> None:
    """`preprocessor_config.json` for transformers' PerceiverImageProcessor, following DeepMind's colab.

    The processor center-crops `size / crop_size` of the shorter side and resizes the crop to `size`; the colab
    crops 224 / (224 + 32) and resizes to 224x224. PIL's bicubic filter (antialiased) stands in for OpenCV's
    INTER_CUBIC, and the processor rounds the crop offset down where the colab rounds it up.
    """
    from transformers.models.perceiver.image_processing_pil_perceiver import PerceiverImageProcessorPil

    height, width = (int(side) for side in deepmind["image_size"])
    processor = PerceiverImageProcessorPil(
        size={"height": height, "width": width},
        crop_size={
            "height": round(height * (224 + CROP_PADDING) / 224),
            "width": round(width * (224 + CROP_PADDING) / 224),
        },
        do_center_crop=True,
        do_resize=True,
        resample=PILImageResampling.BICUBIC,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )
    processor.save_pretrained(folder)


def convert(params: HaikuParams, deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, torch.Tensor]:
    encoder = deepmind["config"]["encoder"]
    weights = params.encoder("perceiver_encoder", "perceiver.encoder", encoder["num_self_attends_per_block"])
    decoder = "classification_decoder/~/basic_decoder"
    weights["decoder.queries.queries"] = params.take(
        f"{decoder}/~/trainable_position_encoding", "pos_embs", into="decoder.queries.queries"
    )
    weights.update(params.attention_layer(f"{decoder}/cross_attention", "decoder.cross_attention", True))
    weights.update(params.linear(f"{decoder}/output", "decoder.output_projection"))

    prep_type = deepmind["config"]["input_preprocessor"]["prep_type"]
    adapter = "perceiver.input_adapter"
    if prep_type == "conv1x1":
        weights.update(params.conv2d("image_preprocessor/~/conv2_d", f"{adapter}.conv1x1"))
        network_inputs = "image_preprocessor/~_build_network_inputs"
        positions = f"{adapter}.position_encoding.position_embeddings"
        weights[positions] = params.take(f"{network_inputs}/trainable_position_encoding", "pos_embs", into=positions)
        weights.update(params.linear(f"{network_inputs}/position_encoding_projector/linear", f"{adapter}.position_projection"))
    elif prep_type == "conv":
        stem = "image_preprocessor/~/conv2_d_downsample/~"
        weights.update(params.conv2d(f"{stem}/conv", f"{adapter}.conv_stem.conv", bias=False))
        weights.update(params.batch_norm(f"{stem}/batchnorm", f"{adapter}.conv_stem.batchnorm"))
    return weights


# The three classifiers differ only in their input preprocessor: (prep_type, position_encoding_type) names the task.
_VARIANTS = {("conv1x1", "trainable"): "learned", ("pixels", "fourier"): "fourier", ("conv", "fourier"): "conv"}


def task_of(deepmind: dict[str, Any]) -> tuple[str | None, str]:
    """The ImageNet task a DeepMind configuration is for, and the preprocessor that says so."""
    preprocessor = deepmind["config"]["input_preprocessor"]
    kind = (preprocessor.get("prep_type"), preprocessor.get("position_encoding_type"))
    variant = _VARIANTS.get(kind)
    return (f"imagenet-{variant}" if variant else None), f"prep_type {kind[0]!r}, position_encoding_type {kind[1]!r}"


def card_values(deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, Any]:
    """The card's description of the input preprocessing, read from the converted configuration."""
    adapter = config.input_adapter
    positions = adapter["position_encoding"]
    if adapter["prep_type"] == "conv1x1":
        height, width = positions["index_dims"]
        description = (
            f"a 1x1 convolution of the pixels ({adapter['out_channels']} channels) and learned position encodings "
            f"({height * width} x {positions['num_channels']}, projected)"
        )
    else:
        fourier = f"2D Fourier position features ({positions['num_bands']} bands)"
        description = f"the raw pixels and {fourier}"
        if adapter["prep_type"] == "conv":
            stem = "7x7/2 convolution, batch norm, ReLU, 3x3/2 max-pool"
            description = f"a conv stem ({stem}; {adapter['out_channels']} channels) and {fourier}"
    return {"variant_description": description}


TASKS = [
    DeepMindTask(
        name=f"imagenet-{variant}",
        filename=filename,
        head="PerceiverIOForImageClassification",
        official_config=official_config(variant),
        build_config=build_config,
        convert=convert,
        write_processor=write_processor,
        model_card="imagenet.md",
        summary=summary,
        metadata={"variant_title": title, "top1_accuracy": top1_accuracy},
        task_of=task_of,
        card_values=card_values,
    )
    for variant, filename, summary, title, top1_accuracy in (
        (
            "learned",
            "imagenet_learned_position_encoding.pystate",
            "ImageNet classifier, learned position encoding on 1x1-conv features",
            "learned position encoding",
            72.7,
        ),
        (
            "fourier",
            "imagenet_fourier_position_encoding.pystate",
            "ImageNet classifier, Fourier position encoding on pixels",
            "Fourier position encoding",
            79.0,
        ),
        (
            "conv",
            "imagenet_conv_preprocessing.pystate",
            "ImageNet classifier, conv stem + Fourier position encoding",
            "conv preprocessing",
            82.1,
        ),
    )
]
