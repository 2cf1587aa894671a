"""`pipeline("time-series-forecasting", model=DIR)`: a history in, its forecast, quantiles and (optionally) a plot out.

    forecaster = pipeline("time-series-forecasting", model="path/to/forecaster")
    result = forecaster(series, prediction_length=48, save="forecast.png")
    result["forecast"]     # (48,) or (48, channels): the median of the sampled forecasts
    result["quantiles"]    # {0.1: ..., 0.5: ..., 0.9: ...}, each shaped like the forecast
    result["timestamps"]   # the forecast's timestamps, when the series had a DatetimeIndex

The series is a 1-D array (one channel), a 2-D array (steps x channels), a torch tensor, or a pandas Series /
DataFrame; NaN marks missing values (the model is told through its observed mask). The last `context_length`
steps (default the model's) are the history. Models built with calendar features need timestamps: a pandas
`DatetimeIndex` on the series, or `timestamps=`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Pipeline

from ..processing.forecast_plot import save_forecast_plot
from ..processing.time_series import SeriesInput, as_series, calendar_features, future_timestamps

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def _is_series(data) -> bool:
    return isinstance(data, (np.ndarray, torch.Tensor, list, tuple)) or type(data).__module__.startswith("pandas")


class TimeSeriesForecastingPipeline(Pipeline):
    """Forecasts with `PerceiverIOForTimeSeriesForecasting`. Call arguments: `prediction_length` (steps ahead,
    any number; default the model's), `context_length` (history steps used; default the model's), `quantiles`
    (default 0.1, 0.5, 0.9), `num_samples` (draws; default the model's `num_parallel_samples`), `timestamps` (a
    `DatetimeIndex` for an array input), `save` (a `.png` path: history, forecast and the 10-90% band) and
    `return_samples` (add the draws, `(num_samples, steps, channels)`)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __call__(self, series, **kwargs):
        """One series, or a list of series (each a 1-D/2-D array, tensor or pandas object)."""
        if isinstance(series, (list, tuple)) and not (series and _is_series(series[0])):
            series = np.asarray(series, dtype=np.float64)  # a plain list of numbers is one series
        return super().__call__(list(series) if isinstance(series, tuple) else series, **kwargs)

    def _sanitize_parameters(
        self, prediction_length=None, context_length=None, quantiles=None, num_samples=None, timestamps=None,
        save=None, return_samples=None,
    ):
        if prediction_length is not None and (not isinstance(prediction_length, int) or prediction_length < 1):
            raise ValueError(f"prediction_length must be a positive integer, got {prediction_length!r}.")
        if context_length is not None and (not isinstance(context_length, int) or context_length < 2):
            raise ValueError(f"context_length must be an integer >= 2, got {context_length!r}.")
        if quantiles is not None and not all(0 < q < 1 for q in quantiles):
            raise ValueError(f"quantiles must lie strictly between 0 and 1, got {list(quantiles)}.")
        if save is not None and Path(save).suffix.lower() != ".png":
            raise ValueError(f"save= writes a PNG plot: give a path ending in .png, got {str(save)!r}.")
        preprocess = {"prediction_length": prediction_length, "context_length": context_length, "timestamps": timestamps}
        forward = {"num_samples": num_samples} if num_samples is not None else {}
        postprocess = {"quantiles": quantiles, "save": save, "return_samples": return_samples}
        return (
            {k: v for k, v in preprocess.items() if v is not None},
            forward,
            {k: v for k, v in postprocess.items() if v is not None},
        )

    def preprocess(self, series, prediction_length=None, context_length=None, timestamps=None) -> dict[str, Any]:
        config = self.model.config
        history = as_series(series, config.num_input_channels)
        if timestamps is not None:
            if len(timestamps) != len(history.values):
                raise ValueError(f"timestamps has {len(timestamps)} entries for a series of {len(history.values)} steps.")
            history.timestamps = timestamps
        context = history.values[-(context_length or config.context_length) :]
        horizon = prediction_length or config.prediction_length
        observed = np.isfinite(context)
        inputs = {
            "past_values": torch.from_numpy(np.where(observed, context, 0.0).astype(np.float32))[None],
            "past_observed_mask": torch.from_numpy(observed)[None],
            "prediction_length": horizon,
        }
        future = None if history.timestamps is None else future_timestamps(history.timestamps, horizon)
        if config.calendar_features:
            if history.timestamps is None:
                raise ValueError(
                    f"This model reads calendar features ({', '.join(config.calendar_features)}): give the series a "
                    "pandas DatetimeIndex, or pass timestamps=."
                )
            past_times = history.timestamps[-len(context) :]
            inputs["past_time_features"] = torch.from_numpy(calendar_features(past_times, config.calendar_features))[None]
            inputs["future_time_features"] = torch.from_numpy(calendar_features(future, config.calendar_features))[None]
        return {"inputs": inputs, "history": history, "future_timestamps": future}

    def _forward(self, model_inputs: dict[str, Any], num_samples: int | None = None) -> dict[str, Any]:
        inputs = {
            name: value.to(self.model.device) if isinstance(value, torch.Tensor) else value
            for name, value in model_inputs["inputs"].items()
        }
        samples = self.model.generate(**inputs, num_parallel_samples=num_samples).sequences[0]
        return {**model_inputs, "samples": samples.float().cpu().numpy()}

    def postprocess(
        self, model_outputs: dict[str, Any], quantiles=DEFAULT_QUANTILES, save=None, return_samples: bool = False
    ) -> dict[str, Any]:
        history: SeriesInput = model_outputs["history"]
        samples = model_outputs["samples"]  # (num_samples, steps, channels)

        def shaped(array: np.ndarray) -> np.ndarray:
            return array[..., 0] if history.one_dimensional else array

        levels = sorted(set(quantiles) | {0.5})
        values = np.quantile(samples, levels, axis=0)
        result = {
            "forecast": shaped(values[levels.index(0.5)]),
            "quantiles": {q: shaped(v) for q, v in zip(levels, values) if q in quantiles},
            "timestamps": model_outputs["future_timestamps"],
        }
        if return_samples:
            result["samples"] = samples
        if save is not None:
            band = np.quantile(samples, [0.1, 0.9], axis=0)
            median = values[levels.index(0.5)]
            result["saved"] = save_forecast_plot(Path(save), history, median, band, model_outputs["future_timestamps"])
        return result
