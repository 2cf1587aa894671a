"""Rotary position embedding (RoFormer, arXiv 2104.09864) for queries and keys, as Perceiver AR uses it.

Channel pairs are adjacent (`(x0, x1), (x2, x3), ...`), pair `i` turns by `position * 10000^(-2i/d)`, and only the
first `rotated_channels` of each head turn (the rest pass through). Because a query and a key turned by their own
positions meet in a dot product that depends only on the difference of the positions, keys can be rotated once
when they enter a cache and never again.
"""

from __future__ import annotations

import torch
from torch import nn


def inverse_frequencies(rotated_channels: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """`base^(-2i/d)` for the `d / 2` channel pairs, in float32."""
    return 1.0 / (
        base ** (torch.arange(0, rotated_channels, 2, dtype=torch.float32, device=device) / rotated_channels)
    )


class RotaryEmbedding(nn.Module):
    """Turns `(batch, heads, length, head_dim)` queries or keys by their positions.

    `rotated_channels` must be even; `base` sets the slowest frequency. The frequencies are recomputed per call
    (a few numbers) rather than kept in a buffer: nothing to store in checkpoints or to initialise on loading.
    """

    def __init__(self, rotated_channels: int, base: float = 10000.0):
        super().__init__()
        if rotated_channels % 2:
            raise ValueError(f"rotated_channels must be even, got {rotated_channels}.")
        self.rotated_channels = rotated_channels
        self.base = base

    def angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(cos, sin)` of shape `(batch, 1, length, rotated_channels)` for integer `positions` `(batch, length)`."""
        frequencies = inverse_frequencies(self.rotated_channels, self.base, positions.device)
        angles = positions.to(torch.float32)[..., None] * frequencies
        # Each frequency serves one adjacent channel pair.
        angles = angles.repeat_interleave(2, dim=-1)[:, None]
        return angles.cos(), angles.sin()

    @staticmethod
    def rotate(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Turn `states` `(batch, heads, length, head_dim)` by angles from `angles` of the same length."""
        rotated = cos.shape[-1]
        turning, passing = states[..., :rotated], states[..., rotated:]
        pairs = turning.unflatten(-1, (-1, 2))
        # (x0, x1) -> (-x1, x0): the pair turned by a quarter, which cos/sin then mix with the original.
        quarter_turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        turned = turning * cos.to(states.dtype) + quarter_turned * sin.to(states.dtype)
        return torch.cat((turned, passing), dim=-1) if passing.shape[-1] else turned
