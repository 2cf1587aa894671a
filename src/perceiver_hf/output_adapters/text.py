"""Byte logits tied to the input embeddings (DeepMind's `EmbeddingDecoder`)."""

from __future__ import annotations

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from .base import OutputAdapter


class TiedEmbeddingLogits(OutputAdapter):
    """Logits as dot products with the input byte embeddings plus a learned bias.

    The embedding matrix is passed in at call time rather than stored, so the weight exists once and training
    updates it through both uses.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, in_channels: int, **spec) -> TiedEmbeddingLogits:
        if config.vocab_size is None:
            raise ValueError("Logits tied to the input embeddings need a text input adapter (`input_adapter={'type': 'text', ...}`).")
        spec.setdefault("vocab_size", config.vocab_size)
        return cls(**spec)

    def forward(self, decoded: torch.Tensor, embeddings: nn.Embedding) -> torch.Tensor:
        return nn.functional.linear(decoded, embeddings.weight, self.bias)
