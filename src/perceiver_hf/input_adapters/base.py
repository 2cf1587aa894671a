"""What every input adapter is: a module that turns one modality into the encoder's `InputArray`."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray


def positioned_channels(content_channels: int, position_channels: int, concat_or_add_pos: str) -> int:
    """Channels of an input array whose position encodings are concatenated to, or added to, its features."""
    if concat_or_add_pos == "concat":
        return content_channels + position_channels
    if concat_or_add_pos != "add":
        raise ValueError(f"concat_or_add_pos must be 'concat' or 'add', got {concat_or_add_pos!r}.")
    if position_channels != content_channels:
        raise ValueError(
            f"Adding positions needs as many position channels ({position_channels}) as feature channels "
            f"({content_channels})."
        )
    return content_channels


class InputAdapter(nn.Module):
    """Base of the input adapters (DeepMind's "preprocessors").

    Subclasses are built from their `config.input_adapter` dict by `from_config` and return an `InputArray`
    whose channel count is `num_channels`. `config_defaults` names the constructor arguments that, left out of
    the dict, take the value of a config field (e.g. `{"num_channels": "d_model"}`).
    """

    config_defaults: ClassVar[dict[str, str]] = {}
    num_channels: int  # channels of the input array it returns (an attribute or a property)

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, **spec) -> InputAdapter:
        for argument, field in cls.config_defaults.items():
            spec.setdefault(argument, getattr(config, field))
        return cls(**spec)

    def forward(self, inputs: torch.Tensor, **kwargs) -> InputArray:
        raise NotImplementedError


class ArrayInputAdapter(InputAdapter):
    """For inputs that already are `(batch, M, channels)` arrays."""

    config_defaults: ClassVar[dict[str, str]] = {"num_channels": "d_model"}

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_channels = int(num_channels)

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        if inputs.ndim != 3 or inputs.shape[-1] != self.num_channels:
            raise ValueError(
                f"Expected inputs of shape (batch, length, {self.num_channels}), got {tuple(inputs.shape)}. "
                "Set `d_model` (or the input adapter's `num_channels`) to the channel count of your inputs."
            )
        if not inputs.is_floating_point():
            raise ValueError(f"Expected floating-point inputs, got dtype {inputs.dtype}.")
        return InputArray(inputs, attention_mask=attention_mask)
