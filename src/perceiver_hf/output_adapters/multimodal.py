"""Several modalities out of one decoder: the decoded rows of each modality go through its own linear map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from .base import OutputAdapter


class ModalityOutputAdapter(nn.Module):
    """A linear map of the decoder output, laid out for one modality.

    `kind` is `"audio"` (each query is a patch of `samples_per_patch` samples, flattened into a waveform),
    `"pixels"` (each query is a pixel with `num_channels` values) or `"classification"` (one query, `num_classes`
    logits).
    """

    SIZES: ClassVar[dict[str, str]] = {"audio": "samples_per_patch", "pixels": "num_channels", "classification": "num_classes"}

    def __init__(self, in_channels: int, kind: str, **spec):
        super().__init__()
        if kind not in self.SIZES:
            raise ValueError(f"Unknown output adapter type {kind!r}; expected one of {sorted(self.SIZES)}.")
        self.kind = kind
        self.linear = nn.Linear(in_channels, int(spec[self.SIZES[kind]]))

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        """`(batch, queries, in_channels)` -> `(batch, queries, out_channels)`, applied block by block."""
        return self.linear(decoded)

    def layout(self, outputs: torch.Tensor) -> torch.Tensor:
        """All blocks' outputs in transformers' layout."""
        if self.kind == "audio":
            return outputs.reshape(outputs.shape[0], outputs.shape[1] * outputs.shape[2])
        if self.kind == "classification":
            return outputs[:, 0]
        return outputs

    def reconstruction(self, logits: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Logits laid out like the inputs: pixels `(batch, [frames,] C, height, width)` on the query `grid`,
        audio `(batch, samples, 1)`."""
        if self.kind == "pixels":
            return logits.reshape(logits.shape[0], *grid, logits.shape[-1]).movedim(-1, -3)
        if self.kind == "audio":
            return logits[..., None]
        return logits


class MultimodalOutputAdapter(OutputAdapter, nn.ModuleDict):
    """One `ModalityOutputAdapter` per modality (a dict of them, by name), and the weights of their losses."""

    def __init__(self, modalities: Mapping[str, ModalityOutputAdapter], loss_weights: Mapping[str, float] | None = None):
        super().__init__({name: modalities[name] for name in sorted(modalities)})
        self.loss_weights = {name: float(weight) for name, weight in (loss_weights or {}).items()}

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, in_channels: int, modalities: dict, **spec) -> MultimodalOutputAdapter:
        adapters = {}
        for name, modality in modalities.items():
            modality = dict(modality)
            adapters[name] = ModalityOutputAdapter(in_channels, modality.pop("type", None), **modality)
        return cls(adapters, **spec)

    def split(self, sizes: Mapping[str, int]):
        """The per-block map of a decoder whose stacked queries hold `sizes[name]` rows of each modality: a block's
        rows split by modality, each part through its own adapter."""
        bounds, offset = {}, 0
        for name, size in sizes.items():
            bounds[name] = (offset, offset + size)
            offset += size

        def per_block(decoded: torch.Tensor, start: int, end: int) -> dict[str, torch.Tensor]:
            outputs = {}
            for name, (lo, hi) in bounds.items():
                a, b = max(start, lo), min(end, hi)
                if a < b:
                    outputs[name] = self[name](decoded[:, a - start : b - start])
            return outputs

        return per_block

    def layout(self, decoded: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every decoded modality in transformers' layout (a modality with an empty subsample has no entry)."""
        return {name: adapter.layout(decoded[name]) for name, adapter in self.items() if name in decoded}

    def check_inputs(self, inputs: Mapping[str, torch.Tensor], grids: Mapping[str, tuple[int, ...] | None]) -> None:
        """An autoencoder reconstructs its inputs on the output `grids` it was built for: the video must have that
        many frames of that size, the waveform that many samples (other mistakes are the input adapter's to report)."""
        if not isinstance(inputs, Mapping):
            return
        for name, adapter in self.items():
            grid, given = grids.get(name), inputs.get(name)
            if grid is None or not isinstance(given, torch.Tensor):
                continue
            if adapter.kind == "pixels" and given.ndim == 5 and (given.shape[1], *given.shape[-2:]) != tuple(grid):
                raise ValueError(
                    f"The model reconstructs {grid[0]} frames of {grid[1]}x{grid[2]} pixels, but the {name} input has "
                    f"{given.shape[1]} frames of {given.shape[-2]}x{given.shape[-1]} (shape {tuple(given.shape)}): "
                    "resize the video (the processor does), or build the model for this size."
                )
            samples = grid[0] * adapter.linear.out_features
            if adapter.kind == "audio" and given.ndim >= 2 and given.shape[1] != samples:
                raise ValueError(
                    f"The model reconstructs {samples} audio samples, but the {name} input has {given.shape[1]} (shape "
                    f"{tuple(given.shape)}): pad or trim the waveform, or build the model for this length."
                )

    def reconstruction(
        self, logits: Mapping[str, torch.Tensor], grids: Mapping[str, tuple[int, ...] | None]
    ) -> dict[str, torch.Tensor]:
        """Every modality's logits laid out like the inputs (pixels on their query `grids`)."""
        return {name: self[name].reconstruction(output, grids.get(name)) for name, output in logits.items()}
