"""Input adapters: one modality in, the encoder's `(batch, M, C)` input array out."""

from __future__ import annotations

from ..configuration import PerceiverIOConfig, registered_type
from .audio import AudioInputAdapter
from .base import ArrayInputAdapter, InputAdapter
from .flow import FlowInputAdapter
from .image import ConvStem, ImageInputAdapter
from .multimodal import MultimodalInputAdapter, OneHotInputAdapter
from .patches import space_to_depth
from .text import TextInputAdapter
from .time_series import TimeSeriesInputAdapter
from .video import VideoPatchesInputAdapter

INPUT_ADAPTERS: dict[str, type[InputAdapter]] = {
    "array": ArrayInputAdapter,
    "image": ImageInputAdapter,
    "audio": AudioInputAdapter,
    "flow": FlowInputAdapter,
    "multimodal": MultimodalInputAdapter,
    "one_hot": OneHotInputAdapter,
    "text": TextInputAdapter,
    "time_series": TimeSeriesInputAdapter,
    "video_patches": VideoPatchesInputAdapter,
}


def build_input_adapter(config: PerceiverIOConfig, spec: dict | None = None) -> InputAdapter:
    """The adapter described by `spec` (default `config.input_adapter`; raw `(batch, M, d_model)` arrays when unset)."""
    spec = dict(spec if spec is not None else config.input_adapter or {"type": "array"})
    return registered_type(INPUT_ADAPTERS, spec.pop("type", None), "input adapter").from_config(config, **spec)


__all__ = [
    "INPUT_ADAPTERS",
    "ArrayInputAdapter",
    "AudioInputAdapter",
    "ConvStem",
    "FlowInputAdapter",
    "ImageInputAdapter",
    "InputAdapter",
    "MultimodalInputAdapter",
    "OneHotInputAdapter",
    "TextInputAdapter",
    "TimeSeriesInputAdapter",
    "VideoPatchesInputAdapter",
    "build_input_adapter",
    "space_to_depth",
]
