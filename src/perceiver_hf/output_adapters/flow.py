"""Optical flow: one decoded query per pixel holds its two flow channels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import OutputAdapter


class FlowOutputAdapter(OutputAdapter):
    """`(batch, height * width, 2)` decoder output -> `(batch, height, width, 2)` logits, divided by `rescale_factor`
    (transformers' `logits`); `logits * flow_scale_factor` is the flow in pixels (DeepMind's colab).

    `train_size` is the frame size the model was trained on, which the pipeline tiles larger frames into.
    """

    def __init__(
        self, rescale_factor: float = 100.0, flow_scale_factor: float = 20.0, train_size: Sequence[int] = (368, 496)
    ):
        super().__init__()
        self.rescale_factor = float(rescale_factor)
        self.flow_scale_factor = float(flow_scale_factor)
        self.train_size = tuple(int(d) for d in train_size)

    def forward(self, decoded: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return (decoded / self.rescale_factor).reshape(decoded.shape[0], height, width, decoded.shape[-1])
