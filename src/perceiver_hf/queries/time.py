"""Queries for time steps: one per step to decode, from the steps' time encoding."""

from __future__ import annotations

import torch
from torch import nn

from ..input_array import InputArray
from ..position import TimeEncoding
from ..time_points import TimePoints
from .base import OutputQueries


class TimeQueries(OutputQueries):
    """One query per given time step (the first of the steps it decodes; see `perceiver_hf.time_points`): the step's
    `TimeEncoding` (the input steps' encoding), optionally mapped by a learned linear layer to `num_channels`, so
    that any horizon, or any step of the history, can be decoded. The steps come as `subsampled_points`."""

    def __init__(self, time_encoding: dict | None = None, num_channels: int | None = None):
        super().__init__()
        self.encoding = TimeEncoding(**(time_encoding or {}))
        self.projection = nn.Linear(self.encoding.num_channels, num_channels) if num_channels else None

    @property
    def num_channels(self) -> int:
        return self.encoding.num_channels if self.projection is None else self.projection.out_features

    def num_queries(self, inputs: InputArray, subsampled_points: TimePoints | None = None) -> int:
        if not isinstance(subsampled_points, TimePoints):
            raise ValueError("Time queries decode the time steps they are given: pass a `TimePoints`.")
        return subsampled_points.steps.shape[-1]

    def forward(self, inputs: InputArray, start: int, end: int, subsampled_points: TimePoints | None = None) -> torch.Tensor:
        points = subsampled_points
        features = None if points.time_features is None else points.time_features[:, start:end]
        queries = self.encoding(points.steps[:, start:end], features, inputs.dtype, name="future_time_features")
        queries = queries if self.projection is None else self.projection(queries)
        return queries.expand(inputs.batch_size, -1, -1)
