"""Byte-level masked language modelling: DeepMind's `language_perceiver_io_bytes` and transformers'
`PerceiverForMaskedLM`.

Bytes are embedded with learned positions, the latents read them, and one learned query per input position
decodes a `d_model` vector whose dot products with the byte embeddings (plus a bias) are the logits. Only as
many positions as the input has are decoded: transformers decodes all 2048 whatever the input length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from ..adapters.text import TextInputAdapter
from ..configuration import PerceiverIOConfig
from ..modeling import PerceiverIODecoder, PerceiverIOModel, PerceiverIOPreTrainedModel, select_inputs


@dataclass
class PerceiverIOMaskedLMOutput(ModelOutput):
    """Output of `PerceiverIOForMaskedLM` (the fields of transformers' `PerceiverMaskedLMOutput`).

    Attributes:
        loss: cross-entropy over the positions whose label is not -100, when `labels` are given.
        logits: `(batch, sequence_length, vocab_size)` scores of every byte at every input position.
        hidden_states, attentions: see `PerceiverIOModelOutput`.
        cross_attentions: the encoder cross-attention weights followed by the decoder's.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


class TiedEmbeddingLogits(nn.Module):
    """Logits as dot products with the input byte embeddings plus a learned bias (DeepMind's `EmbeddingDecoder`).

    The embedding matrix is passed in at call time rather than stored, so the weight exists once and training
    updates it through both uses.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden_states: torch.Tensor, embeddings: nn.Embedding) -> torch.Tensor:
        return nn.functional.linear(hidden_states, embeddings.weight, self.bias)


class PerceiverIOForMaskedLM(PerceiverIOPreTrainedModel):
    """Perceiver IO byte-level masked language model; see `PerceiverIOConfig.for_masked_lm`.

    `config.decoder["mask_padded_queries"]` chooses what padded positions compute: DeepMind masks their
    decoder queries (zero attention output), transformers does not. Logits at real positions are the same.
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        self.perceiver = PerceiverIOModel(config)
        adapter = self.perceiver.input_adapter
        if not isinstance(adapter, TextInputAdapter):
            raise ValueError(
                f"A masked language model needs a text input adapter (`input_adapter={{'type': 'text', ...}}`), "
                f"got {type(adapter).__name__}. Build the config with `PerceiverIOConfig.for_masked_lm()`."
            )
        self.decoder = PerceiverIODecoder(config)
        if self.decoder.output_projection is not None or self.decoder.queries.num_channels != adapter.num_channels:
            raise ValueError(
                f"The logits are tied to the {adapter.num_channels}-channel byte embeddings, so the decoder must "
                f"output {adapter.num_channels} channels: use queries of that width and `final_project=False` "
                "(see `masked_lm_decoder_config`)."
            )
        self.output_adapter = TiedEmbeddingLogits(adapter.vocab_size)
        self.mask_padded_queries = bool((config.decoder or {}).get("mask_padded_queries", False))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TiedEmbeddingLogits):
            init.zeros_(module.bias)

    @can_return_tuple
    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> PerceiverIOMaskedLMOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Byte ids from `PerceiverTokenizer`, masked bytes set to its `mask_token_id` (`inputs` is accepted as
            an alias, as in transformers); at most `max_position_embeddings` of them.
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 for tokens to attend to, 0 for padding.
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            The original byte ids; positions set to -100 are left out of the loss.

        Returns logits of shape `(batch_size, sequence_length, vocab_size)`: one row per input position.
        """
        input_ids = select_inputs(inputs, input_ids, "input_ids")
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)

        input_array, encoded = self.perceiver.encode(
            input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        embeddings = self.perceiver.input_adapter.embeddings
        # Logits are computed per decoded block: the (batch, length, d_model) decoder output never exists whole.
        logits, decoder_weights = self.decoder(
            encoded.last_hidden_state,
            input_array,
            query_mask=attention_mask if self.mask_padded_queries else None,
            output_attentions=output_attentions,
            postprocess=lambda output, start, end: self.output_adapter(output, embeddings),
        )

        loss = None
        if labels is not None:
            if tuple(labels.shape) != tuple(logits.shape[:2]):
                raise ValueError(
                    f"labels have shape {tuple(labels.shape)} but the logits cover {tuple(logits.shape[:2])} "
                    "(batch, sequence_length) positions: give one label per input token, -100 where no loss is wanted."
                )
            loss = self.loss_function(
                logits, labels, vocab_size=logits.shape[-1], num_items_in_batch=kwargs.get("num_items_in_batch")
            )

        return self.head_output(
            PerceiverIOMaskedLMOutput,
            encoded,
            decoder_weights,
            loss=loss,
            logits=logits,
        )
