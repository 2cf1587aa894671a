"""Token classification: one label per byte, decoded by one learned query per input position (as the masked LM
decodes its logits), each position's decoded vector mapped to `num_labels` logits by the output adapter.

A masked LM's folder loads as it is: its encoder and per-position decoder carry over, the output adapter starts new.
"""

from __future__ import annotations

import torch
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..configuration import PerceiverIOConfig
from ..core.modeling import select_inputs
from ..core.outputs import PerceiverIOClassifierOutput
from ..input_adapters import TextInputAdapter
from ..losses import token_classification_loss
from ..output_adapters import build_output_adapter
from ..queries import TrainableQueries
from .base import PerceiverIOHead, check_num_labels
from .from_masked_lm import StartsFromMaskedLM


class PerceiverIOForTokenClassification(StartsFromMaskedLM, PerceiverIOHead):
    """Perceiver IO byte-level token classifier; see `PerceiverIOConfig.for_token_classification`.

    `logits` have one row per input position, `(batch, sequence_length, num_labels)`; transformers' loss
    conventions apply (cross-entropy, labels of -100 ignored). `pipeline("token-classification")` gives character
    offsets into the input text.
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)
    masked_lm_replaces = ("output_adapter.",)

    @classmethod
    def masked_lm_config(cls, config: PerceiverIOConfig) -> None:
        config.output_adapter = {"type": "token_classification"}

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config, output_channels=check_num_labels(config))  # a final projection gets the labels
        config = self.config  # a masked LM's config became this head's (a copy)
        if not isinstance(self.perceiver.input_adapter, TextInputAdapter):
            raise ValueError(
                f"A token classifier needs a text input adapter (`input_adapter={{'type': 'text', ...}}`), got "
                f"{type(self.perceiver.input_adapter).__name__}. Build the config with "
                "`PerceiverIOConfig.for_token_classification()`."
            )
        queries = self.decoder.queries
        if not (isinstance(queries, TrainableQueries) and queries.match_input_length):
            raise ValueError(
                "A token classifier decodes one learned query per input position (`query_decoder['query']` with "
                f"`match_input_length: True`, as the masked LM's), but this config's decoder has "
                f"{type(queries).__name__}. Build the config with `PerceiverIOConfig.for_token_classification()`."
            )
        self.num_labels = config.num_labels
        self.output_adapter = build_output_adapter(config, self.decoder.output_channels, "token_classification")
        self.mask_padded_queries = bool(self.config.query_decoder.get("mask_padded_queries", False))
        self.post_init()

    def masked_lm_kept(self) -> str:
        return (
            f"the encoder and the decoder's {self.decoder.queries.queries.shape[0]} position queries and "
            "cross-attention; the byte logits' bias is left out"
        )

    @can_return_tuple
    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOClassifierOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Byte ids from `PerceiverTokenizer` (`inputs` is accepted as an alias); at most
            `max_position_embeddings` of them.
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 for tokens to attend to, 0 for padding.
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            A class index per token; -100 where no loss is wanted (special tokens, padding).

        Returns logits of shape `(batch_size, sequence_length, num_labels)`.
        """
        input_ids = select_inputs(inputs, input_ids, "input_ids")
        input_array, encoded, output_attentions = self.encode(input_ids, attention_mask, **kwargs)
        logits, decoder_weights = self.decoder(
            encoded.last_hidden_state,
            input_array,
            query_mask=attention_mask if self.mask_padded_queries else None,
            output_attentions=output_attentions,
            postprocess=lambda decoded, start, end: self.output_adapter(decoded),
        )
        loss = None
        if labels is not None:
            loss = token_classification_loss(logits, labels, self.output_adapter.class_weights, **kwargs)
        return self.head_output(PerceiverIOClassifierOutput, encoded, decoder_weights, loss=loss, logits=logits)
