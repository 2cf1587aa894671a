"""Image classification: DeepMind's three ImageNet models in one class, the variant chosen by the config."""

from __future__ import annotations

import torch
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..core.modeling import select_inputs
from ..core.outputs import PerceiverIOClassifierOutput
from .classification import PerceiverIOClassifier


class PerceiverIOForImageClassification(PerceiverIOClassifier):
    """Perceiver IO image classifier: one learned query decodes `num_labels` logits from the latents.

    The input adapter in `config.input_adapter` selects the preprocessing (learned positions on 1x1-conv
    features, Fourier positions on pixels, or a conv stem with Fourier positions); see
    `PerceiverIOConfig.for_image_classification`.
    """

    main_input_name = "pixel_values"
    input_modalities = ("image",)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        inputs: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOClassifierOutput:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch_size, channels, height, width)`):
            Images normalised by the image processor (`inputs` is accepted as an alias, as in transformers).
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices for a cross-entropy loss; floats of shape `(batch_size, num_labels)` for multi-label
            classification; a regression loss when `num_labels == 1`.
        interpolate_pos_encoding (`bool`, defaults to `False`):
            Resize learned position encodings to the input resolution.
        """
        return self.classify(
            select_inputs(inputs, pixel_values, "pixel_values"),
            attention_mask=attention_mask,
            labels=labels,
            adapter_kwargs={"interpolate_pos_encoding": interpolate_pos_encoding},
            **kwargs,
        )
