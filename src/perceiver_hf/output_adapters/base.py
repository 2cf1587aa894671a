"""What every output adapter is: a module that turns the decoder's output into the task's output."""

from __future__ import annotations

from torch import nn

from ..configuration import PerceiverIOConfig


class OutputAdapter(nn.Module):
    """Base of the output adapters (DeepMind's "postprocessors").

    Subclasses are built from their `config.output_adapter` dict by `from_config`, given the channels of each
    decoded query. Their `forward` may run on one decoded block of queries at a time (the decoder concatenates
    the blocks), so that large per-query outputs shrink before the next block is decoded.
    """

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, in_channels: int, **spec) -> OutputAdapter:
        return cls(**spec)
