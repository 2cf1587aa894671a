"""The rolling-origin evaluation on a real series: seasonal naive, PatchTST and Perceiver IO trained a few steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perceiver_hf.forecasting import (
    PatchTSTForecaster,
    PerceiverIOForecaster,
    SeasonalNaive,
    TrainingBudget,
    Windows,
    evaluate,
    load_task,
    train,
)

SMALL_PERCEIVER = {"num_latents": 16, "d_latents": 32, "num_self_attends_per_block": 1, "num_bands": 8, "decoder_num_heads": 2}


@pytest.fixture(scope="module")
def elnino():
    return load_task("elnino")


def test_windows_end_before_the_first_origin_in_training(elnino):
    windows = Windows(elnino)
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = windows.sample(16, rng)
        assert batch["past_values"].shape == (16, 120, 1) and batch["future_values"].shape == (16, 12, 1)
        assert batch["past_time_features"].shape == (16, 120, 2) and batch["future_time_features"].shape == (16, 12, 2)
    # Every drawn window's last forecast step lies before the first test origin.
    last_origin = elnino.train_end - elnino.prediction_length
    starts = rng.integers(elnino.context_length, last_origin + 1, size=1000)
    assert starts.max() + elnino.prediction_length <= elnino.train_end
    test = windows.at(elnino.origins)
    np.testing.assert_array_equal(test["future_values"][-1].numpy(), elnino.values[-12:])


def test_seasonal_naive_repeats_the_last_season_and_skips_missing_values():
    naive = SeasonalNaive(season_length=3)
    past = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [float("nan")], [6.0]]])
    forecast = naive.sample({"past_values": past, "future_values": torch.zeros(1, 5, 1)})
    assert forecast.shape == (1, 1, 5, 1)
    assert forecast[0, 0, :, 0].tolist() == [4.0, 2.0, 6.0, 4.0, 2.0]  # the missing 5 falls back a season, to 2


def test_seasonal_naive_on_co2_keeps_its_in_sample_scale():
    task = load_task("co2")
    scores = evaluate(SeasonalNaive(task.season_length), task)
    assert scores["mase"] == scores["crps"] and 0.3 < scores["mase"] < 3


@pytest.mark.parametrize("forecaster", [PerceiverIOForecaster, PatchTSTForecaster])
def test_a_few_training_steps_lower_the_loss_and_give_finite_metrics(elnino, forecaster, single_thread):
    torch.manual_seed(0)
    kwargs = SMALL_PERCEIVER if forecaster is PerceiverIOForecaster else {"d_model": 32, "num_layers": 1}
    model = forecaster(elnino, **kwargs)
    losses = train(model, elnino, TrainingBudget(steps=30, batch_size=16, learning_rate=3e-3), progress=False)
    assert len(losses) == 30 and all(math.isfinite(loss) for loss in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1, losses
    scores = evaluate(model, elnino, num_samples=20)
    assert set(scores) == {"mase", "crps"} and all(math.isfinite(v) and v > 0 for v in scores.values())
    assert scores["crps"] < scores["mase"]  # a spread of samples scores better than its median alone
