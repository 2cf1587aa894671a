"""Audio in, input array out: a mono waveform cut into patches of consecutive samples, with 1-D positions."""

from __future__ import annotations

import torch

from ..input_array import InputArray
from ..position import FourierPositionEncoding, build_position_encoding
from .base import InputAdapter


class AudioInputAdapter(InputAdapter):
    """`(batch, samples, 1)` (or `(batch, samples)`) waveforms as `(batch, samples / samples_per_patch, ...)` patches.

    Args:
        samples_per_patch: consecutive samples per input row (16 in DeepMind's video autoencoder).
        position_encoding: config dict of the position encoding of the patch sequence.
    """

    def __init__(self, samples_per_patch: int = 16, position_encoding: dict | None = None):
        super().__init__()
        if position_encoding is None:
            raise ValueError("An audio input adapter needs a `position_encoding` config.")
        self.samples_per_patch = int(samples_per_patch)
        self.position_encoding = build_position_encoding(position_encoding)

    @property
    def num_channels(self) -> int:
        return self.samples_per_patch + self.position_encoding.num_channels

    def forward(self, audio: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        if not isinstance(audio, torch.Tensor) or audio.ndim not in (2, 3) or (audio.ndim == 3 and audio.shape[-1] != 1):
            got = f"shape {tuple(audio.shape)}" if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise ValueError(f"Expected a mono waveform of shape (batch, samples, 1) or (batch, samples), got {got}.")
        if not audio.is_floating_point():
            raise ValueError(f"Expected floating-point audio samples (in [-1, 1]), got dtype {audio.dtype}.")
        num_samples = audio.shape[1]
        if num_samples % self.samples_per_patch:
            raise ValueError(
                f"The waveform has {num_samples} samples, not a multiple of samples_per_patch="
                f"{self.samples_per_patch}; pad or trim it (audio shape {tuple(audio.shape)})."
            )
        content = audio.reshape(audio.shape[0], num_samples // self.samples_per_patch, self.samples_per_patch)
        if isinstance(self.position_encoding, FourierPositionEncoding):
            positions = self.position_encoding((content.shape[1],), device=content.device, dtype=content.dtype)
        else:
            positions = self.position_encoding((content.shape[1],))
        return InputArray(content, positions[None].to(content.dtype), attention_mask=attention_mask)
