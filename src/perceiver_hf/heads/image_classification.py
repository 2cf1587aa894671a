"""Image classification: DeepMind's three ImageNet models in one class, the variant chosen by the config."""

from __future__ import annotations

import torch

from ..configuration import PerceiverIOConfig
from ..modeling import (
    PerceiverIOClassifierOutput,
    PerceiverIODecoder,
    PerceiverIOModel,
    PerceiverIOPreTrainedModel,
    select_inputs,
)


class PerceiverIOForImageClassification(PerceiverIOPreTrainedModel):
    """Perceiver IO image classifier: one learned query decodes `num_labels` logits from the latents.

    The input adapter in `config.input_adapter` selects the preprocessing (learned positions on 1x1-conv
    features, Fourier positions on pixels, or a conv stem with Fourier positions); see
    `PerceiverIOConfig.for_image_classification`.
    """

    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.perceiver = PerceiverIOModel(config)
        self.decoder = PerceiverIODecoder(config, output_channels=config.num_labels)
        self.post_init()

    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs,
    ) -> PerceiverIOClassifierOutput | tuple:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch_size, channels, height, width)`):
            Images normalised by the image processor (`inputs` is accepted as an alias, as in transformers).
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices for a cross-entropy loss; floats of shape `(batch_size, num_labels)` for multi-label
            classification; a regression loss when `num_labels == 1`.
        interpolate_pos_encoding (`bool`, defaults to `False`):
            Resize learned position encodings to the input resolution.
        """
        pixel_values = select_inputs(inputs, pixel_values, "pixel_values")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict

        input_array, encoded = self.perceiver.encode(
            pixel_values,
            attention_mask=attention_mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits, decoder_weights = self.decoder(
            encoded.last_hidden_state, input_array, output_attentions=output_attentions
        )
        logits = logits[:, 0, :]

        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config)

        output = PerceiverIOClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions + (decoder_weights,) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()
