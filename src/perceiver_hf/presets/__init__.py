"""DeepMind's Perceiver IO architectures as `PerceiverIOConfig` keyword arguments: the official sizes of each
model's core, the component dicts of its input adapter, query decoder and output adapter, and one function per
task that puts them together (what `PerceiverIOConfig.for_*` build).

Tests, benchmarks and converters take official sizes from here rather than writing them out again.
"""

from .components import DEEPMIND_GELU, fourier_position_encoding, trainable_position_encoding, transformers_sizes
from .image import (
    IMAGENET_CORE,
    IMAGENET_SIZE,
    classification_decoder_config,
    image_adapter_config,
    image_classification,
    imagenet_adapter_config,
)
from .language import (
    BYTE_VOCAB_SIZE,
    LANGUAGE_CORE,
    masked_lm,
    masked_lm_decoder_config,
    sequence_classification,
    text_adapter_config,
    token_classification,
)
from .optical_flow import (
    OPTICAL_FLOW_CORE,
    OPTICAL_FLOW_TRAIN_SIZE,
    flow_adapter_config,
    flow_decoder_config,
    flow_output_config,
    optical_flow,
)
from .time_series import CALENDAR_FEATURES, TIME_SERIES_CORE, time_series_components, time_series_forecasting
from .video import VIDEO_AUTOENCODING_CORE, multimodal_autoencoding, multimodal_autoencoding_components

__all__ = [
    "BYTE_VOCAB_SIZE",
    "CALENDAR_FEATURES",
    "DEEPMIND_GELU",
    "IMAGENET_CORE",
    "IMAGENET_SIZE",
    "LANGUAGE_CORE",
    "OPTICAL_FLOW_CORE",
    "OPTICAL_FLOW_TRAIN_SIZE",
    "TIME_SERIES_CORE",
    "VIDEO_AUTOENCODING_CORE",
    "classification_decoder_config",
    "flow_adapter_config",
    "flow_decoder_config",
    "flow_output_config",
    "fourier_position_encoding",
    "image_adapter_config",
    "image_classification",
    "imagenet_adapter_config",
    "masked_lm",
    "masked_lm_decoder_config",
    "multimodal_autoencoding",
    "multimodal_autoencoding_components",
    "optical_flow",
    "sequence_classification",
    "text_adapter_config",
    "time_series_components",
    "time_series_forecasting",
    "token_classification",
    "trainable_position_encoding",
    "transformers_sizes",
]
