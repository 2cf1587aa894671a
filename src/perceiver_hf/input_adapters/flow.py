"""Two frames of pixel patches in, input array out: DeepMind's optical-flow preprocessing.

Each pixel of each frame arrives as its 3x3 patch (27 channels, ordered `(ph, pw, c)`; see
`perceiver_hf.processing_flow`). Space-to-depth over the two frames stacks them into 54 channels per pixel,
ordered `(frame, ph, pw, c)`; a linear layer ("conv after patching") maps them to `out_channels`, and 2-D
Fourier positions of the pixel grid are concatenated. The flow decoder then uses these same rows as its
queries, one per pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from ..input_array import InputArray
from ..position import FourierPositionEncoding, build_position_encoding
from .base import InputAdapter, positioned_channels
from .patches import space_to_depth


class FlowInputAdapter(InputAdapter):
    """Frame pairs of pixel patches `(batch, num_frames, in_channels, height, width)` -> `(batch, H*W, C)`.

    Args:
        in_channels: channels per frame and pixel (27: a 3x3 RGB patch).
        num_frames: frames merged into each position (2 for flow: DeepMind's `temporal_downsample`).
        out_channels: width of the linear layer applied after patching (`0` keeps the `num_frames * in_channels`
            raw channels).
        position_encoding: config of a Fourier position encoding over the `(height, width)` grid; its
            `max_resolution` is the training resolution, and any other resolution works.
        concat_or_add_pos: `"concat"` positions as extra channels or `"add"` them to the features.
    """

    def __init__(
        self,
        in_channels: int = 27,
        num_frames: int = 2,
        out_channels: int = 64,
        position_encoding: dict | None = None,
        concat_or_add_pos: str = "concat",
    ):
        super().__init__()
        if position_encoding is None or position_encoding.get("type") != "fourier":
            raise ValueError(
                "The flow input adapter needs a Fourier `position_encoding` (it must work at any resolution), got "
                f"{position_encoding!r}."
            )
        self.in_channels = int(in_channels)
        self.num_frames = int(num_frames)
        self.concat_or_add_pos = concat_or_add_pos
        patch_channels = self.num_frames * self.in_channels
        self.patch_projection = nn.Linear(patch_channels, out_channels) if out_channels else None
        self.content_channels = out_channels or patch_channels
        self.position_encoding: FourierPositionEncoding = build_position_encoding(position_encoding)
        self._num_channels = positioned_channels(
            self.content_channels, self.position_encoding.num_channels, concat_or_add_pos
        )

    @property
    def num_channels(self) -> int:
        return self._num_channels

    def _check(self, inputs: torch.Tensor) -> None:
        expected = f"(batch, {self.num_frames}, {self.in_channels}, height, width)"
        fix = (
            f"Pass {self.num_frames} frames of {self.in_channels // 9 if self.in_channels % 9 == 0 else '?'}-channel "
            "3x3 pixel patches; PerceiverIOFlowProcessor turns a pair of images into this layout."
        )
        if not isinstance(inputs, torch.Tensor):
            raise ValueError(f"Expected inputs as a torch.Tensor of shape {expected}, got {type(inputs).__name__}. {fix}")
        if inputs.ndim != 5:
            raise ValueError(
                f"Expected inputs of shape {expected}, got a rank-{inputs.ndim} tensor of shape "
                f"{tuple(inputs.shape)}. {fix}"
            )
        if not inputs.is_floating_point():
            raise ValueError(f"Expected floating-point inputs of shape {expected}, got dtype {inputs.dtype}. {fix}")
        if inputs.shape[1] != self.num_frames:
            raise ValueError(
                f"Expected {self.num_frames} frames, inputs of shape {expected}, got {inputs.shape[1]} frame(s) in "
                f"inputs of shape {tuple(inputs.shape)}. {fix}"
            )
        if inputs.shape[2] != self.in_channels:
            hint = (
                " The inputs look channels-last: permute them to (batch, frames, channels, height, width)."
                if inputs.shape[-1] == self.in_channels
                else ""
            )
            raise ValueError(
                f"Expected {self.in_channels} channels per frame, inputs of shape {expected}, got shape "
                f"{tuple(inputs.shape)}.{hint} {fix}"
            )
        if min(inputs.shape[-2:]) < 1:
            raise ValueError(f"Expected frames of at least 1x1 pixels, got inputs of shape {tuple(inputs.shape)}. {fix}")

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        self._check(inputs)
        batch_size, _, _, height, width = inputs.shape
        features = space_to_depth(inputs, temporal_block_size=self.num_frames)  # (B, 1, H, W, frames * C)
        content = features.reshape(batch_size, height * width, features.shape[-1])
        if self.patch_projection is not None:
            content = self.patch_projection(content)
        positions = self.position_encoding((height, width), device=content.device, dtype=content.dtype)
        return InputArray(content, positions[None], combine=self.concat_or_add_pos, attention_mask=attention_mask)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_frames={self.num_frames}, concat_or_add_pos={self.concat_or_add_pos}"
