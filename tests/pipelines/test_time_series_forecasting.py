"""`pipeline("time-series-forecasting")`: arrays, lists, tensors and pandas objects in; forecast, quantiles, plot out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from transformers import pipeline

from perceiver_hf import PerceiverIOConfig, PerceiverIOForTimeSeriesForecasting
from tests.helpers import perturb_

SMALL = {"num_latents": 8, "d_latents": 32, "num_self_attends_per_block": 1, "num_bands": 4, "decoder_num_heads": 2}


def save_forecaster(folder, num_channels=1, **overrides) -> PerceiverIOForTimeSeriesForecasting:
    config = PerceiverIOConfig.for_time_series_forecasting(
        context_length=32, prediction_length=8, num_channels=num_channels, **{**SMALL, "num_parallel_samples": 50, **overrides}
    )
    model = perturb_(PerceiverIOForTimeSeriesForecasting(config)).eval()
    model.save_pretrained(folder)
    return model


def monthly(values, name="temperature") -> pd.Series:
    return pd.Series(values, index=pd.date_range("1990-01-01", periods=len(values), freq="MS"), name=name)


def test_one_dimensional_inputs_give_a_forecast_and_its_quantiles(tmp_path):
    save_forecaster(tmp_path)
    forecaster = pipeline("time-series-forecasting", model=str(tmp_path))
    values = np.sin(np.arange(60) / 4) + 5
    for series in (values, list(values), torch.tensor(values), monthly(values)):
        result = forecaster(series)
        assert result["forecast"].shape == (8,)
        assert set(result["quantiles"]) == {0.1, 0.5, 0.9}
        assert np.all(result["quantiles"][0.1] <= result["quantiles"][0.9])
    result = forecaster(values, prediction_length=30, quantiles=[0.05, 0.95], return_samples=True)
    assert result["forecast"].shape == (30,) and set(result["quantiles"]) == {0.05, 0.95}
    assert result["samples"].shape == (50, 30, 1) and result["timestamps"] is None


def test_the_median_comes_from_the_models_own_samples(tmp_path):
    model = save_forecaster(tmp_path, num_parallel_samples=4000)
    forecaster = pipeline("time-series-forecasting", model=str(tmp_path))
    values = np.cos(np.arange(40) / 3)
    with torch.no_grad():
        mean = model(past_values=torch.tensor(values[-32:], dtype=torch.float32)[None, :, None]).prediction_outputs[0, :, 0]
    # Student-t forecasts are symmetric: the sampled median is near the distribution's mean.
    np.testing.assert_allclose(forecaster(values)["forecast"], mean.numpy(), atol=0.15 * float(np.std(values)) + 0.05)


def test_dataframes_with_missing_values_and_calendar_features(tmp_path):
    save_forecaster(tmp_path, num_channels=2, calendar_features=["day_of_year"])
    forecaster = pipeline("time-series-forecasting", model=str(tmp_path))
    index = pd.date_range("1990-01-01", periods=50, freq="MS")
    frame = pd.DataFrame({"a": np.arange(50.0), "b": np.cos(np.arange(50.0))}, index=index)
    frame.iloc[45, 0] = np.nan  # missing: masked, not read
    result = forecaster(frame, prediction_length=12)
    assert result["forecast"].shape == (12, 2) and np.isfinite(result["forecast"]).all()
    assert result["timestamps"][0] == pd.Timestamp("1994-03-01") and len(result["timestamps"]) == 12
    with pytest.raises(ValueError, match="reads calendar features \\(day_of_year\\)"):
        forecaster(frame.to_numpy())
    assert forecaster(frame.to_numpy(), timestamps=index)["forecast"].shape == (8, 2)


def test_save_writes_a_png_of_history_forecast_and_band(tmp_path):
    save_forecaster(tmp_path / "model")
    forecaster = pipeline("time-series-forecasting", model=str(tmp_path / "model"))
    target = tmp_path / "plots" / "forecast.png"
    result = forecaster(monthly(np.sin(np.arange(48) / 5)), save=target)
    assert result["saved"] == target
    with Image.open(target) as image:
        assert image.format == "PNG" and image.width > 500
    assert [path.name for path in target.parent.iterdir()] == ["forecast.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="ending in .png"):
        forecaster(np.arange(40.0), save=tmp_path / "forecast.jpg")


def test_several_series_and_bad_inputs(tmp_path):
    save_forecaster(tmp_path)
    forecaster = pipeline("time-series-forecasting", model=str(tmp_path))
    results = forecaster([np.arange(40.0), np.arange(20.0) * 2])
    assert len(results) == 2 and all(r["forecast"].shape == (8,) for r in results)
    with pytest.raises(ValueError, match=r"the model forecasts 1 channel\(s\); got shape \(40, 3\)"):
        forecaster(np.zeros((40, 3)))
    with pytest.raises(ValueError, match="too short"):
        forecaster([1.0])
    with pytest.raises(TypeError, match="array of numbers"):
        forecaster(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="prediction_length must be a positive integer"):
        forecaster(np.arange(40.0), prediction_length=0)
