"""What every task head is: input adapter -> latent encoder (`self.perceiver`) -> output queries and decoder
cross-attention (`self.decoder`) -> output adapter -> loss. Heads subclass `PerceiverIOHead` and wire the last two."""

from __future__ import annotations

import torch
from transformers.utils import ModelOutput

from ..configuration import PerceiverIOConfig
from ..core.decoder import PerceiverIODecoder
from ..core.modeling import PerceiverIOModel, PerceiverIOPreTrainedModel
from ..core.outputs import PerceiverIOModelOutput
from ..input_array import InputArray


def check_num_labels(config: PerceiverIOConfig) -> int:
    """The labels of a classifying head: at least one."""
    if not isinstance(config.num_labels, int) or config.num_labels < 1:
        raise ValueError(
            f"A classifier needs at least one label, got num_labels={config.num_labels!r}: pass `num_labels=N` or "
            "`id2label={0: 'first label', ...}`."
        )
    return config.num_labels


class PerceiverIOHead(PerceiverIOPreTrainedModel):
    """The shared part of the heads: `self.perceiver` (input adapter + encoder) and `self.decoder`."""

    def __init__(self, config: PerceiverIOConfig, output_channels: int | None = None):
        super().__init__(config)
        self.perceiver = PerceiverIOModel(config)
        self.decoder = PerceiverIODecoder(config, output_channels=output_channels)

    def encode(
        self, inputs, attention_mask: torch.Tensor | None = None, adapter_kwargs: dict | None = None, **kwargs
    ) -> tuple[InputArray, PerceiverIOModelOutput, bool]:
        """The input array, the encoder's output, and whether attention weights were asked for. `kwargs` are the
        forward's transformers keyword arguments: `output_attentions` and `output_hidden_states` (left out, they
        take the config's value) are read here, the rest is for the loss."""
        output_attentions, output_hidden_states = self.output_flags(kwargs)
        input_array, encoded = self.perceiver.encode(
            inputs,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **(adapter_kwargs or {}),
        )
        return input_array, encoded, output_attentions

    @staticmethod
    def head_output(
        output_class: type[ModelOutput],
        encoded: PerceiverIOModelOutput,
        decoder_weights: torch.Tensor | None,
        **fields,
    ) -> ModelOutput:
        """A head's output: its own `fields` (loss, logits, ...) plus the encoder's hidden states and attentions,
        the decoder's cross-attention weights appended to the encoder's."""
        cross_attentions = encoded.cross_attentions
        if cross_attentions is not None:
            cross_attentions = cross_attentions + (decoder_weights,)
        return output_class(
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            cross_attentions=cross_attentions,
            **fields,
        )
