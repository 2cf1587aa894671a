"""Output queries: what the decoder cross-attends to the latents with, one block of rows at a time.

A query provider knows how many queries a call needs and builds any contiguous block of them on demand,
so the decoder can decode hundreds of thousands of outputs in bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .configuration import PerceiverIOConfig
from .input_array import InputArray
from .position import FourierPositionEncoding, TrainablePositionEncoding, build_position_encoding


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

    def num_queries(self, inputs: InputArray, subsampled_points: torch.Tensor | None = None) -> int:
        if subsampled_points is not None:
            return len(subsampled_points)
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
        return queries[start:end].to(inputs.dtype).expand(inputs.batch_size, -1, -1)

    def factored(
        self, start: int, end: int, subsampled_points: torch.Tensor | None = None, device: torch.device | None = None
    ) -> FactoredQueries:
        """One table, the learned queries themselves."""
        rows = torch.arange(start, end, device=self.queries.device)
        if subsampled_points is not None:
            rows = subsampled_points.to(self.queries.device, torch.long)[start:end]
        return FactoredQueries([self.queries], rows[:, None], self.queries.new_zeros(self.num_channels))


class InputQueries(OutputQueries):
    """The input array itself, one query per input row (optical flow decodes per pixel from its features)."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_channels = int(num_channels)

    def num_queries(self, inputs: InputArray) -> int:
        return inputs.length

    def forward(self, inputs: InputArray, start: int, end: int) -> torch.Tensor:
        return inputs.rows(start, end)


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
        return self.num_outputs if subsampled_points is None else len(subsampled_points)

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


class MultimodalQueries(OutputQueries):
    """Per-modality queries, each padded with a learned vector to a common width and stacked in sorted
    modality order (DeepMind's `MultimodalDecoder` queries: audio, image, label).

    Blocks of rows may straddle modalities; `subsampled_points` maps modality names to index tensors (or
    `None` for all of that modality's queries).
    """

    def __init__(self, modalities: Mapping[str, OutputQueries], min_padding_size: int = 2):
        super().__init__()
        if not modalities:
            raise ValueError("Multimodal queries need at least one modality.")
        self.modalities = nn.ModuleDict({name: modalities[name] for name in sorted(modalities)})
        self.min_padding_size = int(min_padding_size)
        width = self.num_channels
        self.padding = nn.ModuleDict(
            {name: TrainablePositionEncoding(1, width - queries.num_channels) for name, queries in self.modalities.items()}
        )

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, modalities: dict, **spec) -> MultimodalQueries:
        return cls({name: build_output_queries(config, modality) for name, modality in modalities.items()}, **spec)

    @property
    def num_channels(self) -> int:
        return max(queries.num_channels for queries in self.modalities.values()) + self.min_padding_size

    def _points(self, subsampled_points: Mapping[str, torch.Tensor | None] | None) -> dict[str, torch.Tensor | None]:
        if subsampled_points is None:
            return dict.fromkeys(self.modalities)
        if not isinstance(subsampled_points, Mapping):
            raise ValueError(
                f"subsampled_output_points must be a dict of modality -> indices (modalities {list(self.modalities)}), "
                f"got {type(subsampled_points).__name__}."
            )
        unknown = sorted(set(subsampled_points) - set(self.modalities))
        if unknown:
            raise ValueError(f"subsampled_output_points names {unknown}; the decoder's modalities are {list(self.modalities)}.")
        return {name: subsampled_points.get(name) for name in self.modalities}

    def modality_sizes(
        self, inputs: InputArray, subsampled_points: Mapping[str, torch.Tensor | None] | None = None
    ) -> dict[str, int]:
        """Rows of each modality in the stacked queries, in order."""
        points = self._points(subsampled_points)
        sizes = {}
        for name, queries in self.modalities.items():
            kwargs = {} if points[name] is None else {"subsampled_points": points[name]}
            sizes[name] = queries.num_queries(inputs, **kwargs)
        return sizes

    def num_queries(self, inputs: InputArray, subsampled_points=None) -> int:
        return sum(self.modality_sizes(inputs, subsampled_points).values())

    def grids(self) -> dict[str, tuple[int, ...] | None]:
        """The output grid of each modality's queries (`None` for queries without one, such as learned ones)."""
        return {name: getattr(queries, "index_dims", None) for name, queries in self.modalities.items()}

    def factored(self, name: str, start: int, end: int, subsampled_points=None) -> FactoredQueries:
        """Queries `start:end` of modality `name` (not of the stack), padded, in factored form."""
        points = self._points(subsampled_points)[name]
        padding = self.padding[name]()[0]
        inner = self.modalities[name].factored(start, end, points, device=padding.device)
        padding = padding.to(inner.constant.dtype)
        return FactoredQueries(
            [nn.functional.pad(table, (0, padding.shape[0])) for table in inner.tables],
            inner.indices,
            torch.cat([inner.constant, padding]),
        )

    def forward(self, inputs: InputArray, start: int, end: int, subsampled_points=None) -> torch.Tensor:
        points = self._points(subsampled_points)
        blocks, offset = [], 0
        for name, size in self.modality_sizes(inputs, subsampled_points).items():
            lo, hi = max(start, offset) - offset, min(end, offset + size) - offset
            offset += size
            if lo >= hi:
                continue
            kwargs = {} if points[name] is None else {"subsampled_points": points[name]}
            queries = self.modalities[name](inputs, lo, hi, **kwargs)
            padding = self.padding[name]().to(queries.dtype).expand(queries.shape[0], queries.shape[1], -1)
            blocks.append(torch.cat([queries, padding], dim=-1))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)


OUTPUT_QUERIES: dict[str, type[OutputQueries]] = {
    "trainable": TrainableQueries,
    "inputs": InputQueries,
    "fourier": FourierQueries,
    "multimodal": MultimodalQueries,
}


def build_output_queries(config: PerceiverIOConfig, spec: dict) -> OutputQueries:
    """The query provider described by `spec` (`config.query_decoder["query"]`)."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in OUTPUT_QUERIES:
        raise ValueError(f"Unknown output query type {kind!r}; known types: {sorted(OUTPUT_QUERIES)}.")
    return OUTPUT_QUERIES[kind].from_config(config, **spec)
