"""Output queries: what the decoder cross-attends to the latents with, one block of rows at a time.

A query provider knows how many queries a call needs and builds any contiguous block of them on demand,
so the decoder can decode hundreds of thousands of outputs in bounded memory.
"""

from __future__ import annotations

from ..configuration import PerceiverIOConfig, registered_type
from .base import FactoredQueries, OutputQueries, check_output_points
from .fourier import FourierQueries, subsampled_positions
from .inputs import InputQueries
from .multimodal import MultimodalQueries
from .time import TimeQueries
from .trainable import TrainableQueries

OUTPUT_QUERIES: dict[str, type[OutputQueries]] = {
    "trainable": TrainableQueries,
    "inputs": InputQueries,
    "fourier": FourierQueries,
    "multimodal": MultimodalQueries,
    "time": TimeQueries,
}


def build_output_queries(config: PerceiverIOConfig, spec: dict) -> OutputQueries:
    """The query provider described by `spec` (`config.query_decoder["query"]`)."""
    spec = dict(spec)
    return registered_type(OUTPUT_QUERIES, spec.pop("type", None), "output query").from_config(config, **spec)


__all__ = [
    "OUTPUT_QUERIES",
    "FactoredQueries",
    "FourierQueries",
    "InputQueries",
    "MultimodalQueries",
    "OutputQueries",
    "TimeQueries",
    "TrainableQueries",
    "build_output_queries",
    "check_output_points",
    "subsampled_positions",
]
