"""Output adapters: the decoder's output in, the task's output out (logits, flow, pixels and samples)."""

from __future__ import annotations

from ..configuration import PerceiverIOConfig, registered_type
from .base import OutputAdapter
from .classification import ClassificationOutputAdapter
from .flow import FlowOutputAdapter
from .forecast import DistributionOutputAdapter, PointOutputAdapter
from .multimodal import ModalityOutputAdapter, MultimodalOutputAdapter
from .text import TiedEmbeddingLogits
from .token_classification import TokenClassificationOutputAdapter

OUTPUT_ADAPTERS: dict[str, type[OutputAdapter]] = {
    "classification": ClassificationOutputAdapter,
    "distribution": DistributionOutputAdapter,
    "flow": FlowOutputAdapter,
    "multimodal": MultimodalOutputAdapter,
    "point": PointOutputAdapter,
    "tied_embeddings": TiedEmbeddingLogits,
    "token_classification": TokenClassificationOutputAdapter,
}


def build_output_adapter(config: PerceiverIOConfig, in_channels: int, head_type: str) -> OutputAdapter:
    """The adapter described by `config.output_adapter` for a head that decodes with a `head_type` adapter (the
    type a config names may be left out, as in folders saved before output adapters had a registry)."""
    spec = dict(config.output_adapter or {})
    kind = spec.pop("type", head_type)
    adapter = registered_type(OUTPUT_ADAPTERS, kind, "output adapter")
    if kind != head_type:
        raise ValueError(
            f"This head decodes with a {head_type!r} output adapter, but the config names {kind!r}: set "
            f"`config.output_adapter = {{'type': {head_type!r}}}` (or build the config with its `PerceiverIOConfig.for_*`)."
        )
    return adapter.from_config(config, in_channels, **spec)


__all__ = [
    "OUTPUT_ADAPTERS",
    "ClassificationOutputAdapter",
    "DistributionOutputAdapter",
    "FlowOutputAdapter",
    "ModalityOutputAdapter",
    "MultimodalOutputAdapter",
    "OutputAdapter",
    "PointOutputAdapter",
    "TiedEmbeddingLogits",
    "TokenClassificationOutputAdapter",
    "build_output_adapter",
]
