"""Classification, whatever the modality: one learned query decodes `num_labels` logits from the latents.

The image and text classifiers differ only in their input adapter (chosen by the config) and in the name of
their input argument, so both are thin subclasses of `PerceiverIOClassifier`.
"""

from __future__ import annotations

import torch
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from ..configuration import PerceiverIOConfig
from ..core.outputs import PerceiverIOClassifierOutput
from ..losses import check_sequence_labels, zero_loss
from ..output_adapters import build_output_adapter
from .base import PerceiverIOHead, check_num_labels


class PerceiverIOClassifier(PerceiverIOHead):
    """Input adapter + latent encoder + a one-query decoder projecting to `num_labels`; losses as transformers'."""

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config, output_channels=check_num_labels(config))
        self.num_labels = config.num_labels
        self.output_adapter = build_output_adapter(config, self.decoder.output_channels, "classification")
        self.post_init()

    def classify(
        self,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        adapter_kwargs: dict | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOClassifierOutput:
        """Logits (and the loss when `labels` are given) for `inputs` as the input adapter takes them.

        `labels`: class indices for a cross-entropy loss; floats of shape `(batch, num_labels)` for multi-label
        classification; a regression loss when `num_labels == 1` (transformers' `problem_type` rules). `kwargs`
        (e.g. `Trainer`'s `num_items_in_batch`) go on to transformers' `loss_function`.
        """
        input_array, encoded, output_attentions = self.encode(inputs, attention_mask, adapter_kwargs, **kwargs)
        decoded, decoder_weights = self.decoder(
            encoded.last_hidden_state, input_array, output_attentions=output_attentions
        )
        logits = self.output_adapter(decoded)
        loss = None
        if labels is not None:
            check_sequence_labels(labels, logits, self.config.problem_type)
            loss = self.loss_function(labels, logits, self.config, **kwargs) if labels.numel() else zero_loss(logits)
        return self.head_output(PerceiverIOClassifierOutput, encoded, decoder_weights, loss=loss, logits=logits)
