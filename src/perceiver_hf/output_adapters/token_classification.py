"""One label per decoded position: each position's decoded vector mapped to the label logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from .base import OutputAdapter


class TokenClassificationOutputAdapter(OutputAdapter):
    """`(batch, positions, in_channels)` decoder output -> `(batch, positions, num_labels)` logits.

    `class_weights` (one per label, optional) weight the cross-entropy of each label's positions (see
    `perceiver_hf.losses.token_classification_loss`): rare labels can count more than the usual "outside" one.
    """

    def __init__(self, in_channels: int, num_labels: int, class_weights: Sequence[float] | None = None):
        super().__init__()
        self.linear = nn.Linear(in_channels, num_labels)
        if class_weights is not None:
            class_weights = [float(weight) for weight in class_weights]
            if len(class_weights) != num_labels or min(class_weights) < 0:
                raise ValueError(
                    f"class_weights must give one non-negative weight per label ({num_labels}), got {class_weights}."
                )
        self.class_weights = class_weights

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, in_channels: int, **spec) -> TokenClassificationOutputAdapter:
        spec.setdefault("num_labels", config.num_labels)
        return cls(in_channels, **spec)

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        return self.linear(decoded)
