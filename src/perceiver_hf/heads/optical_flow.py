"""Optical flow: every pixel of the first frame queries the latents for its displacement to the second frame."""

from __future__ import annotations

import torch
from transformers.utils import can_return_tuple

from ..configuration import PerceiverIOConfig
from ..modeling import PerceiverIOClassifierOutput, PerceiverIODecoder, PerceiverIOModel, PerceiverIOPreTrainedModel


def end_point_error(flow: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between predicted and ground-truth flow vectors `(..., 2)`.

    Pixels whose ground truth is not finite (NaN/inf marks unknown flow in sparse datasets such as KITTI) are
    left out of the mean.
    """
    valid = torch.isfinite(target).all(dim=-1)
    target = target.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    error = torch.linalg.vector_norm(flow - target, dim=-1).masked_fill(~valid, 0.0)
    return error.sum() / valid.sum().clamp(min=1)


class PerceiverIOForOpticalFlow(PerceiverIOPreTrainedModel):
    """Perceiver IO optical flow (DeepMind's AutoFlow model), drop-in for transformers' `PerceiverForOpticalFlow`.

    `inputs` are two frames of 3x3 pixel patches, `(batch, 2, 27, height, width)`
    (`PerceiverIOFlowProcessor` makes them from two images). The input array (patch features + Fourier
    positions, one row per pixel) doubles as the decoder's queries; they are decoded `config.decoder["chunk_size"]`
    pixels at a time, so memory stays bounded at any resolution.

    `logits` are the decoder output divided by `rescale_factor` (100), exactly what transformers returns;
    multiply by `flow_scale_factor` (20) for the flow in pixels, as DeepMind's colab and the `optical-flow`
    pipeline do.
    """

    main_input_name = "inputs"
    input_modalities = ("image",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        settings = config.output_adapter or {}
        self.rescale_factor = float(settings.get("rescale_factor", 100.0))
        self.flow_scale_factor = float(settings.get("flow_scale_factor", 20.0))
        self.perceiver = PerceiverIOModel(config)
        self.decoder = PerceiverIODecoder(config, output_channels=2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
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
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)

        input_array, encoded = self.perceiver.encode(
            inputs,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        flow, decoder_weights = self.decoder(
            encoded.last_hidden_state, input_array, output_attentions=output_attentions
        )
        batch_size, height, width = inputs.shape[0], inputs.shape[-2], inputs.shape[-1]
        logits = (flow / self.rescale_factor).reshape(batch_size, height, width, flow.shape[-1])

        loss = None
        if labels is not None:
            if tuple(labels.shape) != tuple(logits.shape):
                hint = " Labels look channels-first: permute them to (batch, height, width, 2)." if (
                    labels.ndim == 4 and labels.shape[1] == 2
                ) else ""
                raise ValueError(
                    f"Expected flow labels of shape {tuple(logits.shape)} (batch, height, width, 2) to match the "
                    f"inputs, got {tuple(labels.shape)}.{hint}"
                )
            loss = end_point_error(logits * self.flow_scale_factor, labels.to(logits.dtype))

        return self.head_output(
            PerceiverIOClassifierOutput,
            encoded,
            decoder_weights,
            loss=loss,
            logits=logits,
        )
