"""DeepMind's Kinetics-700 video+audio+label autoencoder (`video_autoencoding_checkpoint.pystate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.presets import fourier_position_encoding, multimodal_autoencoding_components

from ..haiku_checkpoint import HaikuParams
from . import DeepMindTask, core_config, official_encoder

MODALITIES = ("audio", "image", "label")
KINETICS_CLASSES = Path(__file__).resolve().parents[1] / "kinetics700_classes.json"


def kinetics_labels() -> list[str]:
    """The 700 Kinetics-700 class names, in the order of DeepMind's label logits."""
    return json.loads(KINETICS_CLASSES.read_text())["labels"]


def _fourier(kwargs: dict[str, Any]) -> dict[str, Any]:
    return fourier_position_encoding(
        kwargs["num_bands"], kwargs["max_resolution"], kwargs.get("concat_pos", True), kwargs.get("sine_only", False)
    )


def official_config() -> dict[str, Any]:
    """The colab's constructor arguments, in the layout of the fixture's `config.json`."""
    frames, samples_per_frame, samples_per_patch, classes = 16, 1920, 16, 700
    num_samples = frames * samples_per_frame
    audio_positions = {"num_bands": 192, "max_resolution": [num_samples], "sine_only": False, "concat_pos": True}
    image_positions = {"num_bands": 32, "max_resolution": [frames, 56, 56], "sine_only": False, "concat_pos": True}
    return {
        "NUM_FRAMES": frames,
        "AUDIO_SAMPLES_PER_FRAME": samples_per_frame,
        "SAMPLES_PER_PATCH": samples_per_patch,
        "NUM_CLASSES": classes,
        "IMG_SZ": 56,
        "image_size": [224, 224],
        "n_audio_samples": num_samples,
        "modules": {
            "input_preprocessor": {
                "min_padding_size": 4,
                "mask_probs": {"audio": 0.0, "image": 0.0, "label": 1.0},
                "modalities": {
                    "audio": {
                        "prep_type": "patches",
                        "samples_per_patch": samples_per_patch,
                        "position_encoding_type": "fourier",
                        "fourier_position_encoding_kwargs": audio_positions,
                        "n_extra_pos_mlp": 0,
                    },
                    "image": {
                        "prep_type": "patches",
                        "spatial_downsample": 4,
                        "temporal_downsample": 1,
                        "position_encoding_type": "fourier",
                        "fourier_position_encoding_kwargs": image_positions,
                        "n_extra_pos_mlp": 0,
                    },
                    "label": {},
                },
            },
            "encoder": official_encoder(
                z_index_dim=784, num_z_channels=512, num_blocks=1, num_self_attends_per_block=8,
                num_self_attend_heads=8, num_cross_attend_heads=1, name="encoder",
            ),
            "audio_decoder": {
                "output_index_dims": [num_samples // samples_per_patch],
                "output_num_channels": 512,
                "position_encoding_type": "fourier",
                "fourier_position_encoding_kwargs": audio_positions,
                "use_query_residual": False,
                "concat_preprocessed_input": False,
            },
            "image_decoder": {
                "output_shape": [1, frames, 224, 224],
                "output_num_channels": 512,
                "position_encoding_type": "fourier",
                "fourier_position_encoding_kwargs": image_positions,
                "use_query_residual": False,
                "concat_preprocessed_input": False,
            },
            "label_decoder": {
                "num_classes": classes,
                "position_encoding_type": "trainable",
                "trainable_position_encoding_kwargs": {"num_channels": 1024, "init_scale": 0.02},
                "use_query_residual": False,
                "concat_preprocessed_input": False,
            },
            "multimodal_decoder": {
                "min_padding_size": 2,
                "num_outputs": None,
                "output_num_channels": 512,
                "use_query_residual": False,
                "concat_preprocessed_input": False,
            },
        },
    }


def _check_supported(modules: dict[str, Any]) -> None:
    preprocessor = modules["input_preprocessor"]
    if sorted(preprocessor["modalities"]) != list(MODALITIES):
        raise ValueError(f"Expected the modalities {list(MODALITIES)}, got {sorted(preprocessor['modalities'])}.")
    for name in ("audio", "image"):
        modality = preprocessor["modalities"][name]
        if modality.get("prep_type", "patches") != "patches" or modality.get("position_encoding_type") != "fourier":
            raise ValueError(f"Only patches with Fourier positions are supported for {name}, got {modality}.")
        if modality.get("n_extra_pos_mlp", 0):
            raise ValueError(f"n_extra_pos_mlp={modality['n_extra_pos_mlp']} ({name}) is not supported.")
        if modality.get("concat_or_add_pos", "concat") != "concat":
            raise ValueError(f"Only concatenated positions are supported ({name}).")
    for name in ("audio_decoder", "image_decoder", "label_decoder", "multimodal_decoder"):
        if modules[name].get("use_query_residual") or modules[name].get("concat_preprocessed_input"):
            raise ValueError(f"{name}: query residuals and preprocessed-input queries are not supported.")


def build_config(deepmind: dict[str, Any]) -> PerceiverIOConfig:
    modules = deepmind["modules"]
    _check_supported(modules)
    preprocessor = modules["input_preprocessor"]
    audio_in, image_in = preprocessor["modalities"]["audio"], preprocessor["modalities"]["image"]
    audio_out, image_out = modules["audio_decoder"], modules["image_decoder"]
    _, frames, height, width = image_out["output_shape"]
    components = multimodal_autoencoding_components(
        num_frames=frames,
        image_size=(height, width),
        audio_samples_per_frame=deepmind["n_audio_samples"] // frames,
        samples_per_patch=deepmind["SAMPLES_PER_PATCH"],
        num_labels=deepmind["NUM_CLASSES"],
        spatial_patch_size=image_in["spatial_downsample"],
        label_query_channels=modules["label_decoder"]["trainable_position_encoding_kwargs"]["num_channels"],
        decoder_output_channels=modules["multimodal_decoder"]["output_num_channels"],
    )
    # The encodings exactly as configured (bands, resolutions), rather than the builder's defaults.
    adapter = components["input_adapter"]
    adapter["min_padding_size"] = preprocessor["min_padding_size"]
    adapter["mask_probs"] = dict(preprocessor["mask_probs"])
    adapter["modalities"]["audio"].update(
        samples_per_patch=audio_in["samples_per_patch"],
        position_encoding=_fourier(audio_in["fourier_position_encoding_kwargs"]),
    )
    adapter["modalities"]["image"].update(
        temporal_patch_size=image_in.get("temporal_downsample", 1),
        position_encoding=_fourier(image_in["fourier_position_encoding_kwargs"]),
    )
    queries = components["query_decoder"]["query"]
    queries["min_padding_size"] = modules["multimodal_decoder"].get("min_padding_size", 2)
    queries["modalities"]["audio"].update(
        index_dims=list(audio_out["output_index_dims"]),
        position_encoding=_fourier(audio_out["fourier_position_encoding_kwargs"]),
    )
    queries["modalities"]["image"].update(
        index_dims=[frames, height, width], position_encoding=_fourier(image_out["fourier_position_encoding_kwargs"])
    )
    num_classes = deepmind["NUM_CLASSES"]
    # DeepMind's model classifies Kinetics-700: 700 logits name its classes. Other class counts keep LABEL_i.
    labels = {"id2label": dict(enumerate(kinetics_labels()))} if num_classes == 700 else {"num_labels": num_classes}
    return PerceiverIOConfig(
        **core_config(modules["encoder"]),
        **components,
        **labels,
        architectures=["PerceiverIOForMultimodalAutoencoding"],
    )


def write_processor(folder: Path, deepmind: dict[str, Any], config: PerceiverIOConfig) -> None:
    """`preprocessor_config.json` of `PerceiverIOVideoAutoencodingProcessor`: the clip length, frame size and
    audio length of the converted model, with the colab's center crop and bilinear resize."""
    from perceiver_hf import PerceiverIOVideoAutoencodingProcessor

    PerceiverIOVideoAutoencodingProcessor.from_model_config(config).save_pretrained(folder)


def convert(params: HaikuParams, deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, torch.Tensor]:
    encoder = deepmind["modules"]["encoder"]
    weights = params.encoder(encoder.get("name", "encoder"), "perceiver.encoder", encoder["num_self_attends_per_block"])

    def take(module: str, into: str) -> None:
        weights[into] = params.take(module, "pos_embs", into=into)

    for name in MODALITIES:
        take(f"multimodal_preprocessor/{name}_padding", f"perceiver.input_adapter.padding.{name}.position_embeddings")
        take(f"multimodal_preprocessor/{name}_mask_token", f"perceiver.input_adapter.mask_tokens.{name}.position_embeddings")
        take(f"multimodal_decoder/~decoder_query/{name}_padding", f"decoder.queries.padding.{name}.position_embeddings")
    take("classification_decoder/~/basic_decoder/~/trainable_position_encoding", "decoder.queries.modalities.label.queries")
    decoder = "multimodal_decoder/~/basic_decoder"
    weights.update(params.attention_layer(f"{decoder}/cross_attention", "decoder.cross_attention", True))
    weights.update(params.linear(f"{decoder}/output", "decoder.output_projection"))
    for name, module in (
        ("audio", "audio_postprocessor"),
        ("image", "projection_postprocessor"),
        ("label", "classification_postprocessor"),
    ):
        weights.update(params.linear(f"{module}/linear", f"output_adapters.{name}.linear"))
    return weights


TASKS = [
    DeepMindTask(
        name="video-autoencoding",
        filename="video_autoencoding_checkpoint.pystate",
        head="PerceiverIOForMultimodalAutoencoding",
        official_config=official_config(),
        build_config=build_config,
        convert=convert,
        write_processor=write_processor,
        model_card="video_autoencoding.md",
        summary="Kinetics-700 video + audio + label autoencoder (16 frames 224x224, 30,720 audio samples)",
    )
]
