"""One small model of every head (and the bare encoder), perturbed random weights, chunked eager decoding: the
models the export and bf16 tests run. `ExportableModel(model).example_inputs` gives inputs for any of them."""

from __future__ import annotations

import torch

from perceiver_hf import (
    PerceiverIOConfig,
    PerceiverIOForImageClassification,
    PerceiverIOForMaskedLM,
    PerceiverIOForMultimodalAutoencoding,
    PerceiverIOForOpticalFlow,
    PerceiverIOForSequenceClassification,
    PerceiverIOModel,
)
from tests.helpers import SMALL_CORE as SMALL
from tests.helpers import perturb_

TEXT = {"d_model": 32, "max_position_embeddings": 48, **SMALL}


def image_model(variant: str) -> PerceiverIOForImageClassification:
    size = (32, 32) if variant == "conv" else (16, 16)
    config = PerceiverIOConfig.for_image_classification(variant, image_size=size, num_labels=5, input_chunk_size=40, **SMALL)
    return PerceiverIOForImageClassification(config)


BUILDERS = {
    "image-learned": lambda: image_model("learned"),
    "image-fourier": lambda: image_model("fourier"),
    "image-conv": lambda: image_model("conv"),
    "masked-lm": lambda: PerceiverIOForMaskedLM(
        PerceiverIOConfig.for_masked_lm(decoder_num_heads=4, decoder_qk_channels=16, input_chunk_size=8, **TEXT)
    ),
    "sequence-classification": lambda: PerceiverIOForSequenceClassification(
        PerceiverIOConfig.for_sequence_classification(num_labels=3, **TEXT)
    ),
    "optical-flow": lambda: PerceiverIOForOpticalFlow(
        PerceiverIOConfig.for_optical_flow(
            train_size=(12, 16), out_channels=16, num_bands=4, decoder_chunk_size=50, input_chunk_size=50, **SMALL
        )
    ),
    "autoencoder": lambda: PerceiverIOForMultimodalAutoencoding(
        PerceiverIOConfig.for_multimodal_autoencoding(
            num_frames=2, image_size=(12, 16), audio_samples_per_frame=12, samples_per_patch=4, num_labels=10,
            image_num_bands=3, audio_num_bands=5, label_query_channels=40, decoder_output_channels=24,
            decoder_chunk_size=20, **SMALL,
        )
    ),
    "latents-only": lambda: PerceiverIOModel(
        PerceiverIOConfig.for_image_classification("fourier", image_size=(16, 16), num_labels=5, **SMALL)
    ),
}


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return perturb_(BUILDERS[name]()).eval()
