"""Text classification: byte embeddings in, one learned query decodes `num_labels` logits from the latents.

Started from a masked LM's folder, the encoder carries over and the classification decoder starts new."""

from __future__ import annotations

import torch
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from .. import presets
from ..configuration import PerceiverIOConfig
from ..core.modeling import select_inputs
from ..core.outputs import PerceiverIOClassifierOutput
from .classification import PerceiverIOClassifier
from .from_masked_lm import StartsFromMaskedLM


class PerceiverIOForSequenceClassification(StartsFromMaskedLM, PerceiverIOClassifier):
    """Perceiver IO text classifier, drop-in for transformers' `PerceiverForSequenceClassification`.

    Takes the byte ids of `PerceiverTokenizer`; see `PerceiverIOConfig.for_sequence_classification`.
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)
    masked_lm_replaces = ("decoder.", "output_adapter.")

    @classmethod
    def masked_lm_config(cls, config: PerceiverIOConfig) -> None:
        """The masked LM's per-position decoder gives way to one classification query (as `for_sequence_classification`)."""
        config.query_decoder = presets.classification_decoder_config(config.d_latents, use_query_residual=True)
        config.output_adapter = {"type": "classification"}

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOClassifierOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Byte ids from `PerceiverTokenizer` (`inputs` is accepted as an alias, as in transformers); at most
            `max_position_embeddings` of them.
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 for tokens to attend to, 0 for padding.
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices for a cross-entropy loss; floats of shape `(batch_size, num_labels)` for multi-label
            classification; a regression loss when `num_labels == 1`.
        """
        return self.classify(
            select_inputs(inputs, input_ids, "input_ids"),
            attention_mask=attention_mask,
            labels=labels,
            **kwargs,
        )
