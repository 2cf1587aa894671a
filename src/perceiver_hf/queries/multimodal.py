"""Several modalities' queries stacked into one decoder's, each padded to a common width."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray
from ..position import TrainablePositionEncoding
from .base import FactoredQueries, OutputQueries, check_output_points


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
        from . import build_output_queries  # the registry holds this class too

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
        points = {name: subsampled_points.get(name) for name in self.modalities}
        for name, indices in points.items():
            if indices is not None:
                check_output_points(indices, self.modalities[name].num_outputs, name)
        return points

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
