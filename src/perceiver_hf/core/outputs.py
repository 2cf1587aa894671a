"""What the model and its heads return: transformers' Perceiver output fields."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class PerceiverIOModelOutput(ModelOutput):
    """Output of the encoder: the latents, and optionally every intermediate latent state and attention map.

    Attributes:
        last_hidden_state: `(batch, num_latents, d_latents)` latents after the last self-attention layer.
        hidden_states: latents before every self-attention layer and after every block (as transformers'
            Perceiver reports them), when `output_hidden_states=True`.
        attentions: self-attention weights of every layer application, when `output_attentions=True`.
        cross_attentions: encoder (and, for heads, decoder) cross-attention weights.
    """

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PerceiverIOClassifierOutput(ModelOutput):
    """Output of the classification, flow and autoencoding heads (the fields of transformers' Perceiver).

    Attributes:
        loss: the training loss, when `labels` are given.
        logits: the head's prediction.
        hidden_states, attentions: see `PerceiverIOModelOutput`.
        cross_attentions: the encoder cross-attention weights followed by the decoder's.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PerceiverIOMaskedLMOutput(PerceiverIOClassifierOutput):
    """Output of `PerceiverIOForMaskedLM` (the fields of transformers' `PerceiverMaskedLMOutput`): `logits` are
    `(batch, sequence_length, vocab_size)` scores of every byte at every input position, `loss` the cross-entropy
    over the positions whose label is not -100."""


@dataclass
class PerceiverIOMultimodalAutoencodingOutput(PerceiverIOClassifierOutput):
    """Output of `PerceiverIOForMultimodalAutoencoding`: `logits` per modality (`{"audio": (batch, samples),
    "image": (batch, pixels, 3), "label": (batch, num_labels)}` for the decoded outputs), `loss` the weighted sum
    of per-modality reconstruction losses, and `modality_losses` the unweighted loss of each modality that had a
    target."""

    modality_losses: dict[str, torch.Tensor] | None = None


@dataclass
class PerceiverIOForecastOutput(ModelOutput):
    """Output of `PerceiverIOForTimeSeriesForecasting` (the fields of transformers' `PatchTSTForPredictionOutput`,
    with the distribution's parameters in a field of their own).

    Attributes:
        loss: mean negative log-likelihood (or point loss) over the observed future values, when `future_values`
            are given.
        prediction_outputs: `(batch, steps, num_channels)` point forecast in the data's units (the distribution's
            mean for a distribution head).
        distribution_params: the forecast distribution's parameters, each `(batch, steps, num_channels)`, in the
            scaled space (`model.distribution(output)` is the distribution in the data's units); for a point head,
            the scaled point forecast.
        loc, scale: `(batch, 1, num_channels)`, the scaler's statistics of each history.
        hidden_states, attentions, cross_attentions: see `PerceiverIOClassifierOutput`.
    """

    loss: torch.Tensor | None = None
    prediction_outputs: torch.Tensor | None = None
    distribution_params: tuple[torch.Tensor, ...] | None = None
    loc: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PerceiverIOSampleOutput(ModelOutput):
    """What `generate` returns (as transformers' time-series models): `sequences`, `(batch, num_parallel_samples,
    steps, num_channels)` draws from the forecast distribution (one draw, the point forecast, for a point head)."""

    sequences: torch.Tensor | None = None
