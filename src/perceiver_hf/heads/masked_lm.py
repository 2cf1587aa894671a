"""Byte-level masked language modelling: DeepMind's `language_perceiver_io_bytes` and transformers'
`PerceiverForMaskedLM`.

Bytes are embedded with learned positions, the latents read them, and one learned query per input position
decodes a `d_model` vector whose dot products with the byte embeddings (plus a bias) are the logits. Only as
many positions as the input has are decoded: transformers decodes all 2048 whatever the input length.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..configuration import PerceiverIOConfig
from ..core.modeling import select_inputs
from ..core.outputs import PerceiverIOMaskedLMOutput
from ..input_adapters import TextInputAdapter
from ..losses import check_class_indices, has_labels, zero_loss
from ..output_adapters import TiedEmbeddingLogits, build_output_adapter
from .base import PerceiverIOHead


class PerceiverIOForMaskedLM(PerceiverIOHead):
    """Perceiver IO byte-level masked language model; see `PerceiverIOConfig.for_masked_lm`.

    `config.query_decoder["mask_padded_queries"]` chooses what padded positions compute: DeepMind masks their
    decoder queries (zero attention output), transformers does not. Logits at real positions are the same.
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        adapter = self.perceiver.input_adapter
        if not isinstance(adapter, TextInputAdapter):
            raise ValueError(
                f"A masked language model needs a text input adapter (`input_adapter={{'type': 'text', ...}}`), "
                f"got {type(adapter).__name__}. Build the config with `PerceiverIOConfig.for_masked_lm()`."
            )
        if self.decoder.output_channels != adapter.num_channels:
            raise ValueError(
                f"The logits are tied to the {adapter.num_channels}-channel byte embeddings, so the decoder must "
                f"output {adapter.num_channels} channels: use queries of that width and `final_project=False` "
                "(see `presets.masked_lm_decoder_config`)."
            )
        self.output_adapter = build_output_adapter(config, self.decoder.output_channels, "tied_embeddings")
        self.mask_padded_queries = bool((config.query_decoder or {}).get("mask_padded_queries", False))
        self.post_init()

    def _resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of=None, mean_resizing=True):
        # The logits are tied to the input embeddings; only their bias has a row per token of its own to follow.
        embeddings = super()._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        bias = self.output_adapter.bias
        resized = bias.new_zeros(embeddings.num_embeddings)
        kept = min(bias.shape[0], resized.shape[0])
        resized[:kept] = bias.detach()[:kept]
        self.output_adapter.bias = nn.Parameter(resized, requires_grad=bias.requires_grad)
        return embeddings

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TiedEmbeddingLogits):
            init.zeros_(module.bias)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
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
        input_array, encoded, output_attentions = self.encode(input_ids, attention_mask, **kwargs)
        embeddings = self.perceiver.input_adapter.embeddings
        # Logits are computed per decoded block: the (batch, length, d_model) decoder output never exists whole.
        logits, decoder_weights = self.decoder(
            encoded.last_hidden_state,
            input_array,
            query_mask=attention_mask if self.mask_padded_queries else None,
            output_attentions=output_attentions,
            postprocess=lambda decoded, start, end: self.output_adapter(decoded, embeddings),
        )

        loss = None
        if labels is not None:
            check_class_indices(labels, logits.shape[-1], tuple(logits.shape[:2]), ignore_index=-100)
            if has_labels(labels):
                loss = self.loss_function(logits, labels, vocab_size=logits.shape[-1], **kwargs)
            else:
                loss = zero_loss(logits)
        return self.head_output(PerceiverIOMaskedLMOutput, encoded, decoder_weights, loss=loss, logits=logits)
