"""Optical flow: every pixel of the first frame queries the latents for its displacement to the second frame."""

from __future__ import annotations

import torch
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..configuration import PerceiverIOConfig
from ..core.outputs import PerceiverIOClassifierOutput
from ..losses import end_point_error
from ..output_adapters import build_output_adapter
from .base import PerceiverIOHead


class PerceiverIOForOpticalFlow(PerceiverIOHead):
    """Perceiver IO optical flow (DeepMind's AutoFlow model), drop-in for transformers' `PerceiverForOpticalFlow`.

    `inputs` are two frames of 3x3 pixel patches, `(batch, 2, 27, height, width)`
    (`PerceiverIOFlowProcessor` makes them from two images). The input array (patch features + Fourier
    positions, one row per pixel) doubles as the decoder's queries; they are decoded
    `config.query_decoder["chunk_size"]` pixels at a time, so memory stays bounded at any resolution.

    `logits` are the decoder output divided by `rescale_factor` (100), exactly what transformers returns;
    multiply by `flow_scale_factor` (20) for the flow in pixels, as DeepMind's colab and the `optical-flow`
    pipeline do.
    """

    main_input_name = "inputs"
    input_modalities = ("image",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config, output_channels=2)
        self.output_adapter = build_output_adapter(config, self.decoder.output_channels, "flow")
        self.post_init()

    @property
    def flow_scale_factor(self) -> float:
        """`logits * flow_scale_factor` is the flow in pixels."""
        return self.output_adapter.flow_scale_factor

    @can_return_tuple
    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOClassifierOutput:
        r"""
        inputs (`torch.Tensor` of shape `(batch_size, 2, 27, height, width)`):
            Two frames of 3x3 patches around every pixel, channels ordered `(patch row, patch column, RGB)`, from
            frames normalised to [-1, 1]. Any `height` and `width` work; the model was trained at 368x496.
        labels (`torch.Tensor` of shape `(batch_size, height, width, 2)`, *optional*):
            Ground-truth flow in pixels (`(dx, dy)`); non-finite entries mark pixels without ground truth. The loss
            is the mean end-point error of `logits * flow_scale_factor` (transformers cannot train this model).
        """
        if inputs is None:
            raise ValueError("You have to specify `inputs`: two frames of 3x3 patches, (batch, 2, 27, height, width).")
        input_array, encoded, output_attentions = self.encode(inputs, attention_mask, **kwargs)
        flow, decoder_weights = self.decoder(
            encoded.last_hidden_state, input_array, output_attentions=output_attentions
        )
        logits = self.output_adapter(flow, height=inputs.shape[-2], width=inputs.shape[-1])

        loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor):
                raise TypeError(f"labels must be a torch.Tensor of flow vectors (batch, height, width, 2), got {type(labels).__name__}.")
            if tuple(labels.shape) != tuple(logits.shape):
                hint = " Labels look channels-first: permute them to (batch, height, width, 2)." if (
                    labels.ndim == 4 and labels.shape[1] == 2
                ) else ""
                raise ValueError(
                    f"Expected flow labels of shape {tuple(logits.shape)} (batch, height, width, 2) to match the "
                    f"inputs, got {tuple(labels.shape)}.{hint}"
                )
            loss = end_point_error(logits * self.flow_scale_factor, labels.to(logits.dtype))
        return self.head_output(PerceiverIOClassifierOutput, encoded, decoder_weights, loss=loss, logits=logits)
