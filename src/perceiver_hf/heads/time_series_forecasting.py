"""Time-series forecasting: the latents read a history of any length, one row per step; one query per asked-for
step (any future step, or a step of the history) decodes that step's distribution."""

from __future__ import annotations

import torch
from torch.distributions import Distribution
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..configuration import PerceiverIOConfig
from ..core.modeling import select_inputs
from ..core.outputs import PerceiverIOForecastOutput, PerceiverIOSampleOutput
from ..input_adapters import TimeSeriesInputAdapter
from ..losses import forecast_loss
from ..output_adapters import build_output_adapter
from ..queries import TimeQueries
from ..scaling import SeriesScaler
from ..time_points import time_plan
from .base import PerceiverIOHead


class PerceiverIOForTimeSeriesForecasting(PerceiverIOHead):
    """Perceiver IO for probabilistic (or point) forecasting, in transformers' time-series conventions (as
    `PatchTSTForPrediction`): `past_values` `(batch, context_length, num_channels)` in, `prediction_outputs`
    `(batch, steps, num_channels)` out, `generate()` samples. Build its config with
    `PerceiverIOConfig.for_time_series_forecasting(context_length=..., prediction_length=..., num_channels=...)`.

    Nothing fixes the lengths: the history may have any number of steps, and `prediction_length=H` (or
    `future_time_index`, any offsets, negative ones being steps of the history) chooses the steps to decode.
    """

    main_input_name = "past_values"
    input_modalities = ("time",)

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        kind = (config.output_adapter or {}).get("type", "distribution")
        if not isinstance(self.perceiver.input_adapter, TimeSeriesInputAdapter) or not isinstance(
            self.decoder.queries, TimeQueries
        ) or kind not in ("distribution", "point"):
            raise ValueError(
                "This head needs a time-series input adapter, time queries and a 'distribution' or 'point' output "
                "adapter: build its config with `PerceiverIOConfig.for_time_series_forecasting(...)`."
            )
        self.scaler = SeriesScaler(getattr(config, "scaling", "std"))
        self.output_adapter = build_output_adapter(config, self.decoder.output_channels, kind)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        past_values: torch.Tensor | None = None,
        past_observed_mask: torch.Tensor | None = None,
        future_values: torch.Tensor | None = None,
        future_observed_mask: torch.Tensor | None = None,
        past_time_features: torch.Tensor | None = None,
        future_time_features: torch.Tensor | None = None,
        past_time_index: torch.Tensor | None = None,
        future_time_index: torch.Tensor | None = None,
        prediction_length: int | None = None,
        inputs: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOForecastOutput:
        r"""
        past_values (`torch.Tensor` of shape `(batch_size, context_length, num_channels)`):
            The history; any number of steps. Missing values may be NaN where `past_observed_mask` is 0. (`inputs`
            is accepted as an alias, as in transformers' Perceiver.)
        past_observed_mask (`torch.Tensor` of the shape of `past_values`, *optional*):
            1 where a value was observed, 0 where it is missing (default: all observed).
        future_values (`torch.Tensor` of shape `(batch_size, steps, num_channels)`, *optional*):
            The values of the decoded steps, for the loss (negative log-likelihood, or the point loss).
        future_observed_mask (`torch.Tensor` of the shape of `future_values`, *optional*):
            0 where a future value is missing: it is left out of the loss.
        past_time_features, future_time_features (`torch.Tensor` of shape `(batch_size, steps, num_time_features)`):
            Calendar (or other known) features of each past / decoded step, when the model was built with them.
        past_time_index, future_time_index (`torch.Tensor` of shape `(steps,)` or `(batch_size, steps)`, *optional*):
            Offsets of the steps from the forecast origin (0 is the first step after the history). Defaults: the
            history is `-context .. -1`, the forecast `0 .. prediction_length - 1`. Negative future offsets decode
            steps of the history (imputation of missing values); gaps in `past_time_index` make irregular series.
        prediction_length (`int`, *optional*):
            How many steps to forecast, default `config.prediction_length` (or the length of `future_values`).
        """
        past_values = select_inputs(inputs, past_values, "past_values")
        if not isinstance(past_values, torch.Tensor):
            raise TypeError(f"past_values must be a torch.Tensor (batch, steps, channels), got {type(past_values).__name__}.")
        past_values = past_values.to(self.dtype) if past_values.is_floating_point() else past_values
        values, observed = self.perceiver.input_adapter.prepare(past_values, past_observed_mask)
        scaled, loc, scale = self.scaler(values, observed)
        if prediction_length is None and future_time_index is None and future_values is not None:
            prediction_length = future_values.shape[1] if future_values.ndim == 3 else None
        plan = time_plan(
            prediction_length, future_time_index, future_time_features, self.output_adapter.steps_per_query,
            self.config.prediction_length, self.decoder.queries.encoding, past_values.device,
        )
        adapter_kwargs = {"observed_mask": observed, "time_index": past_time_index, "time_features": past_time_features}
        input_array, encoded, output_attentions = self.encode(scaled, None, adapter_kwargs, **kwargs)
        decoded, decoder_weights = self.decoder(
            encoded.last_hidden_state, input_array, output_attentions=output_attentions, subsampled_points=plan.queries
        )
        params = plan.gather_steps(self.output_adapter(decoded))  # from the queries' steps to those asked for

        loss = None
        if future_values is not None:
            loss = forecast_loss(self.output_adapter, params, loc, scale, future_values, future_observed_mask)
        fields = {
            "loss": loss,
            "prediction_outputs": self.output_adapter.point_forecast(params, loc, scale),
            "distribution_params": params,
            "loc": loc,
            "scale": scale,
        }
        return self.head_output(PerceiverIOForecastOutput, encoded, decoder_weights, **fields)

    def distribution(self, outputs: PerceiverIOForecastOutput) -> Distribution:
        """The forecast distribution of a forward's `outputs`, in the data's units."""
        if not hasattr(self.output_adapter, "distribution"):
            raise ValueError("This model makes point forecasts (`output_adapter` 'point'); it has no distribution.")
        return self.output_adapter.distribution(outputs.distribution_params, outputs.loc, outputs.scale)

    @torch.no_grad()
    def generate(
        self,
        past_values: torch.Tensor,
        past_observed_mask: torch.Tensor | None = None,
        prediction_length: int | None = None,
        num_parallel_samples: int | None = None,
        **inputs,
    ) -> PerceiverIOSampleOutput:
        """`sequences` `(batch, num_parallel_samples, prediction_length, num_channels)`: draws from the forecast
        distribution of the next `prediction_length` steps (any number; default the config's), or of the steps of
        `future_time_index`. `inputs`: the other arguments of `forward` (time features, time indices)."""
        outputs = self(
            past_values=past_values, past_observed_mask=past_observed_mask, prediction_length=prediction_length, **inputs
        )
        num_samples = num_parallel_samples or self.config.num_parallel_samples
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_parallel_samples` must be a positive integer, got {num_samples!r}.")
        sequences = self.output_adapter.sample(outputs.distribution_params, outputs.loc, outputs.scale, num_samples)
        return PerceiverIOSampleOutput(sequences=sequences)
