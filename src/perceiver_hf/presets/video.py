"""DeepMind's Kinetics-700 video + audio + label autoencoder: 16 frames of 224x224, 30,720 audio samples and an
always-masked label packed into one input array, 784 latents, one decoder query per pixel, audio patch and label."""

from __future__ import annotations

from typing import Any

from .components import as_pair, deepmind_core, fourier_position_encoding, pop_options
from .image import IMAGENET_SIZE

VIDEO_AUTOENCODING_CORE = deepmind_core(
    num_latents=784, d_latents=512, num_blocks=1, num_self_attends_per_block=8,
    num_self_attention_heads=8, num_cross_attention_heads=1, d_model=704,
)
_COMPONENT_OPTIONS = (
    "spatial_patch_size",
    "image_num_bands",
    "audio_num_bands",
    "label_query_channels",
    "decoder_output_channels",
    "decoder_chunk_size",
    "loss_weights",
)


def multimodal_autoencoding_components(
    num_frames: int = 16,
    image_size=IMAGENET_SIZE,
    audio_samples_per_frame: int = 1920,
    samples_per_patch: int = 16,
    num_labels: int = 700,
    spatial_patch_size: int = 4,
    image_num_bands: int = 32,
    audio_num_bands: int = 192,
    label_query_channels: int = 1024,
    decoder_output_channels: int = 512,
    decoder_chunk_size: int = 8192,
    loss_weights: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """`input_adapter`, `query_decoder` and `output_adapter` of the autoencoder.

    Inputs: audio patches with 1-D Fourier positions, video patches with 3-D Fourier positions of the patch grid,
    and an always-masked one-hot label, padded to a common width (min. 4 learned channels). Decoder queries: one
    per audio patch and one per pixel (Fourier positions, as DeepMind places subsampled queries), and one learned
    label query, padded to a common width (min. 2). Outputs: samples per patch, RGB per pixel, class logits.
    """
    height, width = as_pair(image_size)
    num_samples = num_frames * audio_samples_per_frame
    patch_grid = (num_frames, height // spatial_patch_size, width // spatial_patch_size)
    image_positions = fourier_position_encoding(image_num_bands, patch_grid)
    audio_positions = fourier_position_encoding(audio_num_bands, (num_samples,))
    audio_patches = num_samples // samples_per_patch
    return {
        "input_adapter": {
            "type": "multimodal",
            "min_padding_size": 4,
            "mask_probs": {"audio": 0.0, "image": 0.0, "label": 1.0},
            "modalities": {
                "audio": {"type": "audio", "samples_per_patch": samples_per_patch, "position_encoding": audio_positions},
                "image": {
                    "type": "video_patches",
                    "in_channels": 3,
                    "spatial_patch_size": spatial_patch_size,
                    "temporal_patch_size": 1,
                    "position_encoding": image_positions,
                },
                "label": {"type": "one_hot", "num_classes": num_labels},
            },
        },
        "query_decoder": {
            "query": {
                "type": "multimodal",
                "min_padding_size": 2,
                "modalities": {
                    "audio": {"type": "fourier", "index_dims": [audio_patches], "position_encoding": audio_positions},
                    "image": {"type": "fourier", "index_dims": [num_frames, height, width], "position_encoding": image_positions},
                    "label": {"type": "trainable", "num_queries": 1, "num_channels": label_query_channels},
                },
            },
            "num_heads": 1,
            "use_query_residual": False,
            "final_project": True,
            "output_channels": decoder_output_channels,
            "chunk_size": decoder_chunk_size,
        },
        "output_adapter": {
            "type": "multimodal",
            "modalities": {
                "audio": {"type": "audio", "samples_per_patch": samples_per_patch},
                "image": {"type": "pixels", "num_channels": 3},
                "label": {"type": "classification", "num_classes": num_labels},
            },
            "loss_weights": dict(loss_weights or {"audio": 1.0, "image": 1.0, "label": 1.0}),
        },
    }


def multimodal_autoencoding(
    num_frames: int = 16,
    image_size=IMAGENET_SIZE,
    audio_samples_per_frame: int = 1920,
    samples_per_patch: int = 16,
    num_labels: int | None = None,
    **overrides,
) -> dict[str, Any]:
    """The autoencoder, 700 classes or as many as `id2label` names; `overrides` replace core fields or
    `multimodal_autoencoding_components` options."""
    if num_labels is None:
        num_labels = len(overrides["id2label"]) if overrides.get("id2label") else 700
    options = pop_options(overrides, _COMPONENT_OPTIONS)
    components = multimodal_autoencoding_components(
        num_frames, image_size, audio_samples_per_frame, samples_per_patch, num_labels, **options
    )
    labels = {} if overrides.get("id2label") else {"num_labels": num_labels}
    return {
        **VIDEO_AUTOENCODING_CORE,
        **overrides,
        **components,
        **labels,
        "architectures": ["PerceiverIOForMultimodalAutoencoding"],
    }
