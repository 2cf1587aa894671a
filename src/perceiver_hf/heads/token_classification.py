"""Token classification: one label per byte, decoded by one learned query per input position (as the masked LM
decodes its logits), each query's output projected to `num_labels`.

A masked LM's folder loads as it is: its encoder and per-position decoder carry over and only the projection to
the labels starts new (see `from_pretrained`).
"""

from __future__ import annotations

import torch
from transformers.utils import can_return_tuple

from ..adapters.text import TextInputAdapter
from ..configuration import PerceiverIOConfig
from ..modeling import (
    PerceiverIOClassifierOutput,
    PerceiverIODecoder,
    PerceiverIOModel,
    PerceiverIOPreTrainedModel,
    select_inputs,
)
from ..queries import TrainableQueries
from .from_masked_lm import FromMaskedLM


class PerceiverIOForTokenClassification(FromMaskedLM, PerceiverIOPreTrainedModel):
    """Perceiver IO byte-level token classifier; see `PerceiverIOConfig.for_token_classification`.

    `logits` have one row per input position, `(batch, sequence_length, num_labels)`; transformers' loss
    conventions apply (cross-entropy, labels of -100 ignored). `pipeline("token-classification")` gives character
    offsets into the input text.
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        self.starts_from_masked_lm(config)
        self.num_labels = config.num_labels
        self.perceiver = PerceiverIOModel(config)
        if not isinstance(self.perceiver.input_adapter, TextInputAdapter):
            raise ValueError(
                f"A token classifier needs a text input adapter (`input_adapter={{'type': 'text', ...}}`), got "
                f"{type(self.perceiver.input_adapter).__name__}. Build the config with "
                "`PerceiverIOConfig.for_token_classification()`."
            )
        self.decoder = PerceiverIODecoder(config, output_channels=config.num_labels)
        queries = self.decoder.queries
        if not (isinstance(queries, TrainableQueries) and queries.match_input_length):
            raise ValueError(
                "A token classifier decodes one learned query per input position (`decoder['query']` with "
                "`match_input_length: True`, as the masked LM's), but this config's decoder has "
                f"{type(queries).__name__}. Build the config with `PerceiverIOConfig.for_token_classification()`."
            )
        self.mask_padded_queries = bool(config.decoder.get("mask_padded_queries", False))
        self.post_init()
        self.ignore_masked_lm_differences()

    def _check_labels(self, labels: torch.Tensor, logits: torch.Tensor) -> None:
        if tuple(labels.shape) != tuple(logits.shape[:2]):
            raise ValueError(
                f"labels have shape {tuple(labels.shape)} but the logits cover {tuple(logits.shape[:2])} "
                "(batch, sequence_length) positions: give one label per input token, -100 where no loss is wanted."
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}.")
        valid = (labels == -100) | ((labels >= 0) & (labels < self.num_labels))
        if not torch.compiler.is_compiling() and not bool(valid.all()):
            bad = labels[~valid].unique()[:5].tolist()
            raise ValueError(
                f"labels must lie in [0, {self.num_labels}) or be -100 (ignored), got {bad}. The model has "
                f"num_labels={self.num_labels}: check the label mapping, or pass `num_labels`/`id2label` when loading."
            )

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
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)

        input_array, encoded = self.perceiver.encode(
            input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits, decoder_weights = self.decoder(
            encoded.last_hidden_state,
            input_array,
            query_mask=attention_mask if self.mask_padded_queries else None,
            output_attentions=output_attentions,
        )

        loss = None
        if labels is not None:
            self._check_labels(labels, logits)
            loss = self.loss_function(
                logits, labels.to(logits.device), self.config, num_items_in_batch=kwargs.get("num_items_in_batch")
            )

        return self.head_output(PerceiverIOClassifierOutput, encoded, decoder_weights, loss=loss, logits=logits)
