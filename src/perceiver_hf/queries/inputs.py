"""Queries that are the input array itself."""

from __future__ import annotations

import torch

from ..input_array import InputArray
from .base import OutputQueries


class InputQueries(OutputQueries):
    """The input array itself, one query per input row (optical flow decodes per pixel from its features)."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_channels = int(num_channels)

    def num_queries(self, inputs: InputArray) -> int:
        return inputs.length

    def forward(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        return inputs.rows(start, end)
