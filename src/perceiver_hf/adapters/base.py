"""What every input adapter is: a module that turns one modality into the encoder's `InputArray`."""

from __future__ import annotations

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray


class InputAdapter(nn.Module):
    """Base of the input adapters (DeepMind's "preprocessors").

    Subclasses are built from their `config.input_adapter` dict by `from_config` and return an `InputArray`
    whose channel count is `num_channels`.
    """

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, **spec) -> InputAdapter:
        return cls(**spec)

    @property
    def num_channels(self) -> int:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, **kwargs) -> InputArray:
        raise NotImplementedError


class ArrayInputAdapter(InputAdapter):
    """For inputs that already are `(batch, M, channels)` arrays."""

    def __init__(self, num_channels: int):
        super().__init__()
        self._num_channels = int(num_channels)

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, **spec) -> ArrayInputAdapter:
        spec.setdefault("num_channels", config.d_model)
        return cls(**spec)

    @property
    def num_channels(self) -> int:
        return self._num_channels

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        if inputs.ndim != 3 or inputs.shape[-1] != self._num_channels:
            raise ValueError(
                f"Expected inputs of shape (batch, length, {self._num_channels}), got {tuple(inputs.shape)}. "
                "Set `d_model` (or the input adapter's `num_channels`) to the channel count of your inputs."
            )
        if not inputs.is_floating_point():
            raise ValueError(f"Expected floating-point inputs, got dtype {inputs.dtype}.")
        return InputArray(inputs, attention_mask=attention_mask)
