"""Classification, whatever the modality: one learned query decodes `num_labels` logits from the latents.

The image and text classifiers differ only in their input adapter (chosen by the config) and in the name of
their input argument, so both are thin subclasses of `PerceiverIOClassifier`.
"""

from __future__ import annotations

import torch

from ..configuration import PerceiverIOConfig
from ..modeling import PerceiverIOClassifierOutput, PerceiverIODecoder, PerceiverIOModel, PerceiverIOPreTrainedModel


class PerceiverIOClassifier(PerceiverIOPreTrainedModel):
    """Input adapter + latent encoder + a one-query decoder projecting to `num_labels`; losses as transformers'."""

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.perceiver = PerceiverIOModel(config)
        self.decoder = PerceiverIODecoder(config, output_channels=config.num_labels)
        self.post_init()

    def classify(
        self,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **adapter_kwargs,
    ) -> PerceiverIOClassifierOutput:
        """Logits (and the loss when `labels` are given) for `inputs` as the input adapter takes them.

        `labels`: class indices for a cross-entropy loss; floats of shape `(batch, num_labels)` for multi-label
        classification; a regression loss when `num_labels == 1` (transformers' `problem_type` rules).
        """
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)

        input_array, encoded = self.perceiver.encode(
            inputs,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **adapter_kwargs,
        )
        logits, decoder_weights = self.decoder(
            encoded.last_hidden_state, input_array, output_attentions=output_attentions
        )
        logits = logits[:, 0, :]

        loss = None
        if labels is not None:
            loss_kwargs = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
            loss = self.loss_function(labels, logits, self.config, **loss_kwargs)

        return self.head_output(
            PerceiverIOClassifierOutput,
            encoded,
            decoder_weights,
            loss=loss,
            logits=logits,
        )
