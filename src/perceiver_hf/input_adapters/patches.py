"""Space-to-depth: blocks of neighbouring frames and pixels become channels.

DeepMind's "patches" preprocessing (flow, video) folds `t x s x s` blocks of a channels-first video into the
channels of one position, ordered `(dt, dh, dw, c)` as its einops pattern
`b (t dt) (h dh) (w dw) c -> b t h w (dt dh dw c)` does. Converted checkpoints depend on that order.
"""

from __future__ import annotations

import torch


def space_to_depth(frames: torch.Tensor, temporal_block_size: int = 1, spatial_block_size: int = 1) -> torch.Tensor:
    """Channels-first `(batch, time, channels, height, width)` frames -> channels-last
    `(batch, time / t, height / s, width / s, t * s * s * channels)` with `t`, `s` the block sizes.

    Images `(batch, channels, height, width)` give `(batch, height / s, width / s, s * s * channels)`.
    The result is a view when the blocks allow it (no copy for `s == 1`).
    """
    if frames.ndim == 4:
        return space_to_depth(frames[:, None], 1, spatial_block_size)[:, 0]
    if frames.ndim != 5:
        raise ValueError(
            f"space_to_depth expects (batch, channels, height, width) images or (batch, time, channels, height, "
            f"width) frames, got a rank-{frames.ndim} tensor of shape {tuple(frames.shape)}."
        )
    batch, time, channels, height, width = frames.shape
    t, s = temporal_block_size, spatial_block_size
    if time % t or height % s or width % s:
        raise ValueError(
            f"Frames of shape {tuple(frames.shape)} (time {time}, height {height}, width {width}) do not split into "
            f"blocks of {t} frames and {s}x{s} pixels."
        )
    blocks = frames.reshape(batch, time // t, t, channels, height // s, s, width // s, s)
    blocks = blocks.permute(0, 1, 4, 6, 2, 5, 7, 3)  # (b, T, H, W, dt, dh, dw, c)
    return blocks.reshape(batch, time // t, height // s, width // s, t * s * s * channels)
