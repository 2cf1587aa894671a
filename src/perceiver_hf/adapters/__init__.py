"""Input adapters: one modality in, the encoder's `(batch, M, C)` input array out."""

from __future__ import annotations

from ..configuration import PerceiverIOConfig
from .base import ArrayInputAdapter, InputAdapter
from .flow import FlowInputAdapter
from .image import ConvStem, ImageInputAdapter
from .patches import space_to_depth

INPUT_ADAPTERS: dict[str, type[InputAdapter]] = {
    "array": ArrayInputAdapter,
    "image": ImageInputAdapter,
    "flow": FlowInputAdapter,
}


def build_input_adapter(config: PerceiverIOConfig) -> InputAdapter:
    """The adapter described by `config.input_adapter` (raw `(batch, M, d_model)` arrays when it is unset)."""
    spec = dict(config.input_adapter or {"type": "array"})
    kind = spec.pop("type", None)
    if kind not in INPUT_ADAPTERS:
        raise ValueError(f"Unknown input adapter type {kind!r}; known types: {sorted(INPUT_ADAPTERS)}.")
    return INPUT_ADAPTERS[kind].from_config(config, **spec)


__all__ = [
    "INPUT_ADAPTERS",
    "ArrayInputAdapter",
    "ConvStem",
    "FlowInputAdapter",
    "ImageInputAdapter",
    "InputAdapter",
    "build_input_adapter",
    "space_to_depth",
]
