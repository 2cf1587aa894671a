"""What every query provider is, the factored form of position queries, and the check of subsampled output points."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray


@dataclass
class FactoredQueries:
    """Queries written as sums of table rows: query `i` is `sum_k tables[k][indices[i, k]] + constant`.

    The tables (and the constant) fill disjoint channels, so per-query statistics (a layer norm's mean and
    variance) and linear maps of the queries split into per-table parts. Position queries factor this way
    (each Fourier channel depends on one grid dimension), which lets inference compute per grid coordinate
    what naively is computed per query (see `perceiver_hf.core.rewrites.folded_decoder`).

    Attributes:
        tables: `(rows_k, channels)` tensors, zero outside their channels.
        indices: `(num_queries, len(tables))` row of each table for each query.
        constant: `(channels,)` part shared by every query (e.g. a learned padding), zero elsewhere.
    """

    tables: list[torch.Tensor]
    indices: torch.Tensor
    constant: torch.Tensor

    @property
    def num_queries(self) -> int:
        return self.indices.shape[0]

    def block(self, start: int, end: int) -> FactoredQueries:
        """Queries `start:end`."""
        return FactoredQueries(self.tables, self.indices[start:end], self.constant)

    def materialize(self) -> torch.Tensor:
        """The `(num_queries, channels)` queries themselves."""
        rows = self.constant.expand(self.num_queries, -1)
        for k, table in enumerate(self.tables):
            rows = rows + table[self.indices[:, k]]
        return rows


def check_output_points(points, num_outputs: int, name: str) -> None:
    """Subsampled output points must be a 1-D integer tensor of indices into the `num_outputs` outputs."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"subsampled_output_points[{name!r}] must be a torch.Tensor of indices, got {type(points).__name__}.")
    if points.ndim != 1 or points.is_floating_point() or points.is_complex() or points.dtype == torch.bool:
        raise ValueError(
            f"subsampled_output_points[{name!r}] must be a 1-D tensor of integer indices, got dtype {points.dtype} of "
            f"shape {tuple(points.shape)}."
        )
    if points.numel() and not torch.compiler.is_compiling():
        low, high = int(points.min()), int(points.max())
        if low < 0 or high >= num_outputs:
            raise ValueError(
                f"subsampled_output_points[{name!r}] must index the {num_outputs} {name} outputs, in [0, {num_outputs}); "
                f"got indices from {low} to {high}."
            )


class OutputQueries(nn.Module):
    """Base of the query providers, built from `config.query_decoder["query"]` by `from_config`.

    Providers that support subsampled decoding (transformers' `subsampled_output_points`) take a
    `subsampled_points` keyword in `num_queries` and `forward`: the flat indices of the outputs to decode.
    """

    num_channels: int  # channels of each query (an attribute or a property)

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, **spec) -> OutputQueries:
        return cls(**spec)

    def num_queries(self, inputs: InputArray) -> int:
        raise NotImplementedError

    def forward(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        """Queries `start:end` as a `(batch, end - start, num_channels)` tensor."""
        raise NotImplementedError
