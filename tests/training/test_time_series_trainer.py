"""`Trainer` fine-tunes the forecaster on windows of a real series (transformers' default collator, no extras),
with gradient checkpointing too; the saved folder forecasts through the pipeline. The model also learns to fill
in masked steps of a history (imputation), a task no fixed-horizon forecaster can be asked."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Trainer, TrainingArguments, pipeline

from perceiver_hf import PerceiverIOConfig, PerceiverIOForTimeSeriesForecasting
from perceiver_hf.forecasting import Windows, load_task
from tests.helpers import training_losses

SMALL = {"num_latents": 16, "d_latents": 32, "num_self_attends_per_block": 1, "num_bands": 8, "decoder_num_heads": 2}


def elnino_windows(count: int) -> tuple[list[dict], object]:
    task = load_task("elnino")
    batch = Windows(task).sample(count, np.random.default_rng(0))
    return [{name: tensor[i] for name, tensor in batch.items()} for i in range(count)], task


def test_trainer_fine_tunes_with_gradient_checkpointing_and_the_folder_forecasts(tmp_path):
    windows, task = elnino_windows(64)
    config = PerceiverIOConfig.for_time_series_forecasting(
        context_length=task.context_length, prediction_length=task.prediction_length,
        calendar_features=task.calendar_features, **SMALL,
    )
    model = PerceiverIOForTimeSeriesForecasting(config)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=24, per_device_train_batch_size=16, learning_rate=3e-3, logging_steps=1,
        report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True, activation_checkpointing=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=windows)
    trainer.train()
    losses = training_losses(trainer)
    assert len(losses) == 24 and np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.1, losses
    trainer.save_model(str(tmp_path / "saved"))
    series = task.values[:, 0]
    forecast = pipeline("time-series-forecasting", model=str(tmp_path / "saved"))(
        series, timestamps=task.timestamps, prediction_length=24
    )
    assert forecast["forecast"].shape == (24,) and np.isfinite(forecast["forecast"]).all()


def test_the_model_learns_to_fill_in_masked_steps_of_the_history():
    torch.manual_seed(0)
    steps, batch = 48, 32
    model = PerceiverIOForTimeSeriesForecasting(
        PerceiverIOConfig.for_time_series_forecasting(context_length=steps, prediction_length=1, **SMALL)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)

    def sample():
        # Sines of random phase and period; 8 steps of each history masked, and asked for.
        time = torch.arange(steps, dtype=torch.float32)
        period = 8 + 8 * torch.rand(batch, 1, generator=generator)
        phase = 6.3 * torch.rand(batch, 1, generator=generator)
        values = torch.sin(2 * torch.pi * time / period + phase)[..., None]
        hidden = torch.rand(batch, steps, generator=generator).argsort(dim=1)[:, :8].sort(dim=1).values
        observed = torch.ones_like(values, dtype=torch.bool)
        observed[torch.arange(batch)[:, None], hidden] = False
        target = values[torch.arange(batch)[:, None], hidden]
        return {"past_values": values, "past_observed_mask": observed, "future_time_index": hidden - steps,
                "future_values": target}

    def imputation_error() -> float:
        with torch.no_grad():
            inputs = sample()
            target = inputs.pop("future_values")
            return float((model(**inputs).prediction_outputs - target).abs().mean())

    model.eval()
    before = imputation_error()
    model.train()
    for _ in range(120):
        model(**sample()).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    after = imputation_error()
    # The mean absolute value of these sines is 2/pi: a model that ignored the neighbours would stay near it.
    assert after < 0.6 * before and after < 0.4, (before, after)
