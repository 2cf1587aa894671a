"""Position-only queries: the Fourier features of each point of an output grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..input_array import InputArray
from ..position import FourierPositionEncoding, build_position_encoding
from .base import FactoredQueries, OutputQueries


def subsampled_positions(
    indices: torch.Tensor, index_dims: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Positions `-1 + 2 * index / size` (per dimension) of flat `indices` into an `index_dims` grid, `(n, d)`.

    This is how DeepMind's decoders place subsampled output queries. Unlike the `linspace(-1, 1)` grid of the
    input encodings the right end is excluded, so a query's position depends only on its index: decoding all
    outputs in chunks gives exactly what decoding them at once gives.
    """
    coordinates = torch.stack(torch.unravel_index(indices, tuple(index_dims)), dim=-1)
    return -1 + 2 * coordinates.to(dtype) / torch.tensor(index_dims, device=indices.device, dtype=dtype)


class FourierQueries(OutputQueries):
    """One query per point of an output grid: the Fourier features of the point's position (DeepMind's
    position-only decoder queries, e.g. one per video pixel or audio patch).

    Args:
        index_dims: the output grid, e.g. `(16, 224, 224)` pixels of a video or `(1920,)` audio patches.
        position_encoding: config dict of the Fourier encoding (its `max_resolution` may differ from the grid).
    """

    def __init__(self, index_dims: Sequence[int], position_encoding: dict):
        super().__init__()
        self.index_dims = tuple(int(d) for d in index_dims)
        self.encoding = build_position_encoding(position_encoding)
        if not isinstance(self.encoding, FourierPositionEncoding):
            raise ValueError("FourierQueries need a Fourier position encoding.")
        if self.encoding.num_dimensions != len(self.index_dims):
            raise ValueError(
                f"The output grid {self.index_dims} has {len(self.index_dims)} dimensions but the Fourier encoding "
                f"has {self.encoding.num_dimensions} (max_resolution={self.encoding.max_resolution})."
            )

    @property
    def num_channels(self) -> int:
        return self.encoding.num_channels

    @property
    def num_outputs(self) -> int:
        return math.prod(self.index_dims)

    def num_queries(self, inputs: InputArray, subsampled_points: torch.Tensor | None = None) -> int:
        return self.num_outputs if subsampled_points is None else subsampled_points.shape[0]

    def indices(self, start: int, end: int, subsampled_points: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Flat grid indices of queries `start:end`."""
        if subsampled_points is None:
            return torch.arange(start, end, device=device)
        return subsampled_points[start:end].to(device=device, dtype=torch.long)

    def forward(
        self, inputs: InputArray, start: int, end: int, subsampled_points: torch.Tensor | None = None
    ) -> torch.Tensor:
        indices = self.indices(start, end, subsampled_points, inputs.device)
        dtype = torch.promote_types(inputs.dtype, torch.float32)  # float64 models get float64 positions
        positions = subsampled_positions(indices, self.index_dims, dtype=dtype)
        features = self.encoding(None, positions=positions, dtype=inputs.dtype)
        return features.expand(inputs.batch_size, -1, -1)

    def factored(
        self, start: int, end: int, subsampled_points: torch.Tensor | None = None, device: torch.device | None = None
    ) -> FactoredQueries:
        """One table per grid dimension (the features of each coordinate value), indexed by the coordinates."""
        flat = self.indices(start, end, subsampled_points, device)
        coordinates = torch.stack(torch.unravel_index(flat, self.index_dims), dim=-1)
        owners = self.encoding.channel_dimensions().to(device)
        tables = []
        for k, size in enumerate(self.index_dims):
            positions = torch.zeros(size, len(self.index_dims), device=device)
            positions[:, k] = subsampled_positions(torch.arange(size, device=device), (size,))[:, 0]
            tables.append(self.encoding(None, positions=positions) * (owners == k))
        return FactoredQueries(tables, coordinates, torch.zeros(self.num_channels, device=device))
