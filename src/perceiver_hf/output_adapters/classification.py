"""One decoded query holds the logits (classification, whatever the modality)."""

from __future__ import annotations

import torch

from .base import OutputAdapter


class ClassificationOutputAdapter(OutputAdapter):
    """`(batch, 1, num_labels)` decoder output (one query, projected to the labels) -> `(batch, num_labels)`."""

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        return decoded[:, 0, :]
