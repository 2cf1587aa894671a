"""`PerceiverIOForTimeSeriesForecasting`: transformers' time-series conventions, any horizon, the past too."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForTimeSeriesPrediction
from transformers.time_series_utils import StudentTOutput

from perceiver_hf import PerceiverIOConfig, PerceiverIOForTimeSeriesForecasting
from tests.helpers import assert_parity, perturb_

SMALL = {"num_latents": 8, "d_latents": 32, "num_self_attends_per_block": 2, "num_bands": 8, "decoder_num_heads": 2}


def forecaster(num_channels=2, **overrides) -> PerceiverIOForTimeSeriesForecasting:
    config = PerceiverIOConfig.for_time_series_forecasting(
        context_length=24, prediction_length=6, num_channels=num_channels, **{**SMALL, **overrides}
    )
    return perturb_(PerceiverIOForTimeSeriesForecasting(config)).eval()


def history(batch=3, steps=24, channels=2) -> torch.Tensor:
    time = torch.arange(steps, dtype=torch.float32)[None, :, None]
    return 10 + torch.sin(time / 3 + torch.arange(channels)) + 0.1 * torch.randn(batch, steps, channels)


def test_shapes_follow_transformers_time_series_conventions():
    model = forecaster()
    output = model(past_values=history(), future_values=history(steps=6))
    assert output.prediction_outputs.shape == (3, 6, 2) and output.loss.ndim == 0
    assert output.loc.shape == output.scale.shape == (3, 1, 2)
    assert [p.shape for p in output.distribution_params] == [(3, 6, 2)] * 3  # Student-t: df, loc, scale
    assert model.generate(past_values=history()).sequences.shape == (3, 100, 6, 2)


@pytest.mark.parametrize("horizon", [1, 6, 50])
def test_generate_forecasts_any_horizon(horizon):
    model = forecaster(num_parallel_samples=7)
    assert model.generate(past_values=history(), prediction_length=horizon).sequences.shape == (3, 7, horizon, 2)


def test_a_longer_horizon_keeps_the_shorter_ones_forecast_and_any_history_length_works():
    model = forecaster()
    past = history(steps=40)  # longer than the config's context_length: nothing fixes it
    with torch.no_grad():
        short = model(past_values=past, prediction_length=4).prediction_outputs
        long = model(past_values=past, prediction_length=30).prediction_outputs
    assert_parity(long[:, :4], short, 1e-6)  # each step is its own query


def test_loss_is_the_negative_log_likelihood_of_transformers_student_t():
    model = forecaster(num_channels=1)
    past, future = history(channels=1), history(steps=6, channels=1)
    output = model(past_values=past, future_values=future)
    df, loc, scale = output.distribution_params
    # transformers' StudentTOutput, scaled by the model's loc and scale as PatchTST does.
    distribution = StudentTOutput(dim=1).distribution((df[..., 0], loc[..., 0], scale[..., 0]), output.loc[..., 0], output.scale[..., 0])
    assert_parity(output.loss, -distribution.log_prob(future[..., 0]).mean(), 1e-5)
    assert_parity(output.prediction_outputs, model.distribution(output).mean, 1e-6)


def test_the_normal_forecast_is_its_distribution_mean():
    model = forecaster(distribution_output="normal")
    with torch.no_grad():
        output = model(past_values=history())
    assert len(output.distribution_params) == 2  # loc, scale
    assert_parity(output.prediction_outputs, model.distribution(output).mean, 1e-6)


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_point_forecasts_train_on_scaled_errors_and_sample_once(loss):
    model = forecaster(loss=loss)
    past, future = history(), history(steps=6)
    output = model(past_values=past, future_values=future)
    scaled_error = (output.prediction_outputs - future) / output.scale
    expected = scaled_error.square().mean() if loss == "mse" else scaled_error.abs().mean()
    assert_parity(output.loss, expected, 1e-5)
    assert model.generate(past_values=past).sequences.shape == (3, 1, 6, 2)
    with pytest.raises(ValueError, match="point forecasts"):
        model.distribution(output)


def test_forecasts_follow_an_affine_change_of_units():
    # Scaling happens inside the model: a history in other units gives the same forecast in those units.
    model = forecaster()
    past = history()
    with torch.no_grad():
        forecast = model(past_values=past).prediction_outputs
        converted = model(past_values=past * 3.0 - 7.0).prediction_outputs
    assert_parity(converted, forecast * 3.0 - 7.0, 1e-4)


def test_missing_values_are_masked_not_read():
    model = forecaster()
    past = history()
    mask = torch.ones_like(past, dtype=torch.bool)
    mask[0, 5:9, 1] = False
    mask[1, 3] = False  # a whole step missing: left out of the encoder's attention
    poisoned = past.clone()
    poisoned[~mask] = float("nan")
    other = past.clone()
    other[~mask] = 1e6
    with torch.no_grad():
        a = model(past_values=poisoned, past_observed_mask=mask).prediction_outputs
        b = model(past_values=other, past_observed_mask=mask).prediction_outputs
    assert torch.isfinite(a).all()
    assert_parity(a, b, 1e-6)


def test_missing_future_values_are_left_out_of_the_loss():
    model = forecaster()
    past, future = history(), history(steps=6)
    observed = torch.ones_like(future, dtype=torch.bool)
    observed[:, 2] = False
    gapped = future.clone()
    gapped[:, 2] = float("nan")
    loss = model(past_values=past, future_values=gapped, future_observed_mask=observed).loss
    kept = model(past_values=past, future_time_index=torch.tensor([0, 1, 3, 4, 5]), future_values=future[:, [0, 1, 3, 4, 5]]).loss
    assert_parity(loss, kept, 1e-5)


def test_steps_of_the_history_can_be_decoded_for_imputation():
    model = forecaster()
    past = history()
    index = torch.tensor([-20, -3, 0, 2])  # two steps of the history, two of the future
    with torch.no_grad():
        output = model(past_values=past, future_time_index=index)
        future = model(past_values=past, prediction_length=3).prediction_outputs
    assert output.prediction_outputs.shape == (3, 4, 2)
    assert_parity(output.prediction_outputs[:, 2:], future[:, [0, 2]], 1e-6)
    assert model.generate(past_values=past, future_time_index=index).sequences.shape == (3, 100, 4, 2)


def test_calendar_features_are_read_for_past_and_future_steps():
    model = forecaster(calendar_features=["time_of_day", "day_of_week"])
    past = history()
    features = torch.randn(3, 24, 4), torch.randn(3, 6, 4)
    with torch.no_grad():
        a = model(past_values=past, past_time_features=features[0], future_time_features=features[1]).prediction_outputs
        b = model(past_values=past, past_time_features=features[0], future_time_features=-features[1]).prediction_outputs
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"pass `past_time_features` of shape \(batch, 24, 4\)"):
        model(past_values=past, future_time_features=features[1])
    for wrong in (features[0], features[1][..., :3]):
        with pytest.raises(ValueError, match=r"Expected `future_time_features` of shape \(batch, 6, 4\)"):
            model(past_values=past, past_time_features=features[0], future_time_features=wrong)


def test_saved_folders_load_through_auto_classes(tmp_path):
    model = forecaster(distribution_output="normal", scaling="mean")
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), PerceiverIOConfig)
    loaded = AutoModelForTimeSeriesPrediction.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, PerceiverIOForTimeSeriesForecasting)
    assert loaded.config.prediction_length == 6 and loaded.config.scaling == "mean"
    past = history()
    with torch.no_grad():
        assert_parity(loaded(past_values=past).prediction_outputs, model(past_values=past).prediction_outputs, 1e-6)
    assert len(loaded(past_values=past).distribution_params) == 2  # normal: loc, scale


def test_gradient_checkpointing_keeps_gradients():
    model = forecaster().train()
    past, future = history(), history(steps=6)

    def gradients():
        model.zero_grad()
        model(past_values=past, future_values=future).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys() and len(plain) == len(list(model.parameters()))
    for name in plain:
        assert_parity(checkpointed[name], plain[name], 1e-5)


def test_bad_inputs_are_refused_with_what_to_do():
    model = forecaster()
    past = history()
    with pytest.raises(ValueError, match=r"built for 2 channel\(s\)"):
        model(past_values=history(channels=3))
    with pytest.raises(ValueError, match=r"Add the channel axis"):
        forecaster(num_channels=1)(past_values=history(channels=1)[..., 0])
    with pytest.raises(ValueError, match="too short.*needs at least 2"):
        model(past_values=past[:, :1])
    nan = past.clone()
    nan[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="no `past_observed_mask`"):
        model(past_values=nan)
    with pytest.raises(ValueError, match="marks as observed"):
        model(past_values=nan, past_observed_mask=torch.ones_like(nan))
    with pytest.raises(ValueError, match=r"Expected `future_values` of shape \(3, 6, 2\)"):
        model(past_values=past, future_values=history(steps=6)[..., :1])
    with pytest.raises(ValueError, match="pass `future_observed_mask`"):
        model(past_values=past, future_values=torch.full((3, 6, 2), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        model(past_values=past.long())
    with pytest.raises(ValueError, match="positive integer"):
        model(past_values=past, prediction_length=0)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="`loss` must be"):
        PerceiverIOConfig.for_time_series_forecasting(context_length=24, prediction_length=6, loss="huber")
    with pytest.raises(ValueError, match="`distribution_output` must be one of"):
        PerceiverIOForTimeSeriesForecasting(
            PerceiverIOConfig.for_time_series_forecasting(context_length=24, prediction_length=6, distribution_output="gamma")
        )
    with pytest.raises(ValueError, match="Unknown calendar features"):
        PerceiverIOConfig.for_time_series_forecasting(context_length=24, prediction_length=6, calendar_features=["moon"])
    with pytest.raises(ValueError, match="`context_length` must be an integer >= 2"):
        PerceiverIOConfig.for_time_series_forecasting(context_length=1, prediction_length=6)
