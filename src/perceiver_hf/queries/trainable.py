"""Learned queries: one array shared by every example, optionally per input position and carrying the input."""

from __future__ import annotations

import torch
from torch import nn

from ..input_array import InputArray
from .base import FactoredQueries, OutputQueries


class TrainableQueries(OutputQueries):
    """A learned `(num_queries, num_channels)` array, shared by every example (classification, MLM).

    Per-position queries may also carry the input: `add_inputs` adds each position's input-array row (a byte's
    embedding and position), and `input_window=w` a learned linear map of the rows `w` positions around it, as the
    optical-flow decoder decodes each pixel from its input features (its 3x3 patch).
    """

    def __init__(
        self,
        num_queries: int,
        num_channels: int,
        match_input_length: bool = False,
        add_inputs: bool = False,
        input_window: int = 0,
    ):
        super().__init__()
        self.queries = nn.Parameter(torch.empty(num_queries, num_channels))
        nn.init.normal_(self.queries, std=0.02)
        # Per-position outputs (MLM) need only as many queries as the input has rows.
        self.match_input_length = match_input_length
        if (add_inputs or input_window) and not match_input_length:
            raise ValueError("Queries that carry the input rows are per position: they need `match_input_length`.")
        self.add_inputs = bool(add_inputs or input_window)
        self.input_window = int(input_window)
        width = 2 * self.input_window + 1
        self.input_context = nn.Conv1d(num_channels, num_channels, width) if input_window else None

    def _inputs(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        """Input rows `start:end`, plus the learned map of their neighbourhoods (padding and the edges read as 0)."""
        w = self.input_window
        lo, hi = max(0, start - w), min(inputs.length, end + w)
        rows = inputs.rows(lo, hi)
        if rows.shape[-1] != self.num_channels:
            raise ValueError(
                f"The queries carry the input rows, so they need the input array's {rows.shape[-1]} channels, but "
                f"have {self.num_channels}: set the query's `num_channels` to the input adapter's channels."
            )
        if self.input_context is None:
            return rows
        if inputs.attention_mask is not None:
            rows = rows * inputs.attention_mask[:, lo:hi, None].to(rows.dtype)
        padded = nn.functional.pad(rows.transpose(1, 2), (w - (start - lo), w - (hi - end)))
        return rows[:, start - lo : end - lo] + self.input_context(padded).transpose(1, 2)

    @property
    def num_channels(self) -> int:
        return self.queries.shape[-1]

    @property
    def num_outputs(self) -> int:
        return self.queries.shape[0]

    def num_queries(self, inputs: InputArray, subsampled_points: torch.Tensor | None = None) -> int:
        if subsampled_points is not None:
            return subsampled_points.shape[0]  # not len(): it would fix a symbolic size
        if not self.match_input_length:
            return self.queries.shape[0]
        if inputs.length > self.queries.shape[0]:
            raise ValueError(
                f"The input has {inputs.length} positions but the model decodes at most {self.queries.shape[0]}."
            )
        return inputs.length

    def forward(
        self, inputs: InputArray, start: int, end: int, subsampled_points: torch.Tensor | None = None
    ) -> torch.Tensor:
        queries = self.queries if subsampled_points is None else self.queries[subsampled_points.to(self.queries.device)]
        queries = queries[start:end].to(inputs.dtype).expand(inputs.batch_size, -1, -1)
        if not self.add_inputs:
            return queries
        if subsampled_points is not None:
            raise ValueError("Queries that carry the input rows decode every position: subsampled_output_points is not supported.")
        return queries + self._inputs(inputs, start, end)

    def factored(
        self, start: int, end: int, subsampled_points: torch.Tensor | None = None, device: torch.device | None = None
    ) -> FactoredQueries:
        """One table, the learned queries themselves."""
        if self.add_inputs:
            raise ValueError("Queries that carry the input rows do not factor into tables; decode them unfolded.")
        rows = torch.arange(start, end, device=self.queries.device)
        if subsampled_points is not None:
            rows = subsampled_points.to(self.queries.device, torch.long)[start:end]
        return FactoredQueries([self.queries], rows[:, None], self.queries.new_zeros(self.num_channels))
