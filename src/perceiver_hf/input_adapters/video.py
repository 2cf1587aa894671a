"""Video in, input array out: non-overlapping patches of frames folded into channels, with positions on the
patch grid.

DeepMind's video autoencoder reads 16x224x224 frames as 16x56x56 patches of 4x4 pixels (48 channels) with 3-D
Fourier positions; the same featurisation serves still images (a 2-D grid). Frames come channels-first,
`(batch, [time,] channels, height, width)`, as transformers' processors give them.
"""

from __future__ import annotations

import math

import torch

from ..input_array import InputArray
from ..position import FourierPositionEncoding, build_position_encoding
from .base import InputAdapter
from .patches import space_to_depth


class VideoPatchesInputAdapter(InputAdapter):
    """Non-overlapping patches of a video (or image) flattened into channels, plus positions of the patch grid.

    Args:
        in_channels: channels of a frame (3 for RGB).
        spatial_patch_size: patch side in pixels (DeepMind's `spatial_downsample`).
        temporal_patch_size: frames per patch (`temporal_downsample`).
        position_encoding: config dict of the position encoding of the `(T', H', W')` (or `(H', W')`) patch grid.
    """

    def __init__(
        self,
        in_channels: int = 3,
        spatial_patch_size: int = 4,
        temporal_patch_size: int = 1,
        position_encoding: dict | None = None,
    ):
        super().__init__()
        if position_encoding is None:
            raise ValueError("A patches input adapter needs a `position_encoding` config.")
        self.in_channels = int(in_channels)
        self.spatial_patch_size = int(spatial_patch_size)
        self.temporal_patch_size = int(temporal_patch_size)
        self.position_encoding = build_position_encoding(position_encoding)
        # The position grid says what the frames are: (T', H', W') patches of a video or (H', W') of an image.
        grid_rank = getattr(self.position_encoding, "num_dimensions", None) or len(self.position_encoding.index_dims)
        if grid_rank not in (2, 3):
            raise ValueError(f"Patches need a 2-D (image) or 3-D (video) position encoding, got {grid_rank}-D.")
        self.is_video = grid_rank == 3

    @property
    def patch_channels(self) -> int:
        temporal = self.temporal_patch_size if self.is_video else 1
        return temporal * self.spatial_patch_size**2 * self.in_channels

    @property
    def num_channels(self) -> int:
        return self.patch_channels + self.position_encoding.num_channels

    def _check(self, frames: torch.Tensor) -> None:
        video = self.is_video
        layout = "(batch, frames, channels, height, width)" if video else "(batch, channels, height, width)"
        if not isinstance(frames, torch.Tensor) or frames.ndim != (5 if video else 4):
            got = f"shape {tuple(frames.shape)}" if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"Expected frames of shape {layout}, got {got}.")
        if not frames.is_floating_point():
            raise ValueError(f"Expected floating-point frames (e.g. pixels / 255), got dtype {frames.dtype}.")
        channel_axis = 2 if video else 1
        if frames.shape[channel_axis] != self.in_channels:
            hint = " Frames look channels-last: permute them channels-first." if frames.shape[-1] == self.in_channels else ""
            raise ValueError(
                f"Expected frames {layout} with {self.in_channels} channels, got shape {tuple(frames.shape)}.{hint}"
            )
        height, width = frames.shape[-2:]
        s = self.spatial_patch_size
        if height % s or width % s:
            raise ValueError(
                f"Frame size {height}x{width} is not divisible by the {s}x{s} patch size; resize or crop the frames "
                f"to a multiple of {s} (got shape {tuple(frames.shape)})."
            )
        if video and frames.shape[1] % self.temporal_patch_size:
            raise ValueError(
                f"{frames.shape[1]} frames are not divisible by the temporal patch size {self.temporal_patch_size}."
            )

    def forward(self, frames: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        self._check(frames)
        patches = space_to_depth(frames, self.temporal_patch_size, self.spatial_patch_size)
        grid = tuple(patches.shape[1:-1])
        content = patches.reshape(patches.shape[0], math.prod(grid), patches.shape[-1])  # sizes given: batch may be 0
        if isinstance(self.position_encoding, FourierPositionEncoding):
            positions = self.position_encoding(grid, device=content.device, dtype=content.dtype)
        else:
            positions = self.position_encoding(grid)
        return InputArray(content, positions[None].to(content.dtype), attention_mask=attention_mask)
