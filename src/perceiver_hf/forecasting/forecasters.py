"""The forecasters the evaluation compares: seasonal naive, transformers' PatchTST and a Perceiver IO forecaster.
Each takes the evaluation's windows (`Windows.at`); the trained ones give their `model` and a training `loss`."""

from __future__ import annotations

import numpy as np
import torch
from transformers import PatchTSTConfig, PatchTSTForPrediction

from ..configuration import PerceiverIOConfig
from ..heads import PerceiverIOForTimeSeriesForecasting
from .data import ForecastTask


class SeasonalNaive:
    """Each forecast step repeats the last observed value one (or more) seasons earlier; one sample (its CRPS is
    its absolute error)."""

    name = "seasonal naive"

    def __init__(self, season_length: int):
        self.season_length = season_length

    def sample(self, batch: dict[str, torch.Tensor], num_samples: int = 1) -> np.ndarray:
        past = batch["past_values"].numpy()
        horizon, season = batch["future_values"].shape[1], self.season_length
        forecast = np.full((past.shape[0], horizon, past.shape[2]), np.nan, dtype=np.float64)
        for step in range(horizon):
            back = season * (step // season + 1) - step  # steps before the origin, one season before `step`
            while back <= past.shape[1] and np.isnan(forecast[:, step]).any():
                missing = np.isnan(forecast[:, step])
                forecast[:, step][missing] = past[:, -back][missing]
                back += season
        return forecast[:, None]


def forward_filled(values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Missing values replaced by the last observed one before them (the first observed one at the start), for a
    model that cannot take NaN even where its observed mask is 0."""
    values = values.clone()
    for series in range(values.shape[0]):
        for channel in range(values.shape[2]):
            column, seen = values[series, :, channel], observed[series, :, channel]
            index = torch.where(seen, torch.arange(len(column)), 0).cummax(0).values
            first = int(seen.nonzero()[0]) if seen.any() else 0
            index = torch.where(seen.cumsum(0) > 0, index, first)
            values[series, :, channel] = column[index]
    return values.nan_to_num(0.0)


class PatchTSTForecaster:
    """transformers' `PatchTSTForPrediction` as the PatchTST paper and transformers' documentation set it up
    (patches of 16 steps at stride 8, or a quarter of a short context; 3 layers of width 128 with 16 heads,
    feed-forward 256, dropout 0.2, a flattening head), with a Student-t head trained by negative log-likelihood.
    Missing past values are forward-filled (it reads them even where masked); steps with a missing future value
    are left out of its loss."""

    name = "PatchTST"

    def __init__(self, task: ForecastTask, d_model: int = 128, num_layers: int = 3, **overrides):
        patch_length = min(16, max(2, task.context_length // 4))
        config = PatchTSTConfig(**{
            "num_input_channels": task.num_channels, "context_length": task.context_length,
            "prediction_length": task.prediction_length, "patch_length": patch_length,
            "patch_stride": max(1, patch_length // 2), "d_model": d_model, "num_attention_heads": 16,
            "num_hidden_layers": num_layers, "ffn_dim": 2 * d_model, "attention_dropout": 0.2, "ff_dropout": 0.2,
            "positional_dropout": 0.2, "head_dropout": 0.2, "pooling_type": None, "scaling": "std",
            "loss": "nll", "distribution_output": "student_t", **overrides,
        })
        self.model = PatchTSTForPrediction(config)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        observed = batch["past_observed_mask"]
        outputs = self.model(past_values=forward_filled(batch["past_values"], observed), past_observed_mask=observed)
        distribution = self.model.distribution_output.distribution(
            outputs.prediction_outputs, loc=outputs.loc, scale=outputs.scale
        )
        future_observed = batch["future_observed_mask"].all(dim=-1)  # its log-likelihood sums over channels
        nll = -distribution.log_prob(batch["future_values"].nan_to_num(0.0))
        return (nll * future_observed).sum() / future_observed.sum().clamp_min(1)

    def sample(self, batch: dict[str, torch.Tensor], num_samples: int = 100) -> np.ndarray:
        self.model.config.num_parallel_samples = num_samples
        observed = batch["past_observed_mask"]
        past = forward_filled(batch["past_values"], observed)
        return self.model.generate(past_values=past, past_observed_mask=observed).sequences.numpy()


class PerceiverIOForecaster:
    """`PerceiverIOForTimeSeriesForecasting` built for the task (`PerceiverIOConfig.for_time_series_forecasting`
    with the task's context, horizon, channels and calendar features; `overrides` replace preset values)."""

    name = "Perceiver IO"

    def __init__(self, task: ForecastTask, **overrides):
        config = PerceiverIOConfig.for_time_series_forecasting(**{
            "context_length": task.context_length, "prediction_length": task.prediction_length,
            "num_channels": task.num_channels, "calendar_features": task.calendar_features, **overrides,
        })
        self.model = PerceiverIOForTimeSeriesForecasting(config)

    def inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = dict(batch)
        if not self.model.config.calendar_features:
            inputs.pop("past_time_features"), inputs.pop("future_time_features")
        return inputs

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**self.inputs(batch)).loss

    def sample(self, batch: dict[str, torch.Tensor], num_samples: int = 100) -> np.ndarray:
        inputs = self.inputs(batch)
        inputs.pop("future_values"), inputs.pop("future_observed_mask")
        return self.model.generate(**inputs, num_parallel_samples=num_samples).sequences.numpy()
