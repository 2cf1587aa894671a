"""Output queries: what the decoder cross-attends to the latents with, one block of rows at a time.

A query provider knows how many queries a call needs and builds any contiguous block of them on demand,
so the decoder can decode hundreds of thousands of outputs in bounded memory.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration import PerceiverIOConfig
from .input_array import InputArray


class OutputQueries(nn.Module):
    """Base of the query providers, built from `config.decoder["query"]` by `from_config`."""

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, **spec) -> OutputQueries:
        return cls(**spec)

    @property
    def num_channels(self) -> int:
        raise NotImplementedError

    def num_queries(self, inputs: InputArray) -> int:
        raise NotImplementedError

    def forward(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        """Queries `start:end` as a `(batch, end - start, num_channels)` tensor."""
        raise NotImplementedError


class TrainableQueries(OutputQueries):
    """A learned `(num_queries, num_channels)` array, shared by every example (classification, MLM)."""

    def __init__(self, num_queries: int, num_channels: int, match_input_length: bool = False):
        super().__init__()
        self.queries = nn.Parameter(torch.empty(num_queries, num_channels))
        nn.init.normal_(self.queries, std=0.02)
        # Per-position outputs (MLM) need only as many queries as the input has rows.
        self.match_input_length = match_input_length

    @property
    def num_channels(self) -> int:
        return self.queries.shape[-1]

    def num_queries(self, inputs: InputArray) -> int:
        if not self.match_input_length:
            return self.queries.shape[0]
        if inputs.length > self.queries.shape[0]:
            raise ValueError(
                f"The input has {inputs.length} positions but the model decodes at most {self.queries.shape[0]}."
            )
        return inputs.length

    def forward(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        return self.queries[start:end].to(inputs.dtype).expand(inputs.batch_size, -1, -1)


class InputQueries(OutputQueries):
    """The input array itself, one query per input row (optical flow decodes per pixel from its features)."""

    def __init__(self, num_channels: int):
        super().__init__()
        self._num_channels = int(num_channels)

    @property
    def num_channels(self) -> int:
        return self._num_channels

    def num_queries(self, inputs: InputArray) -> int:
        return inputs.length

    def forward(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        return inputs.rows(start, end)


OUTPUT_QUERIES: dict[str, type[OutputQueries]] = {
    "trainable": TrainableQueries,
    "inputs": InputQueries,
}


def build_output_queries(config: PerceiverIOConfig, spec: dict) -> OutputQueries:
    """The query provider described by `spec` (`config.decoder["query"]`)."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in OUTPUT_QUERIES:
        raise ValueError(f"Unknown output query type {kind!r}; known types: {sorted(OUTPUT_QUERIES)}.")
    return OUTPUT_QUERIES[kind].from_config(config, **spec)
