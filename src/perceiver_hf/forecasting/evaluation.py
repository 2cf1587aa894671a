"""Rolling-origin evaluation: train once on the steps before the first forecast origin (a fixed budget of steps,
batch and context, the same for every model, and no look at the test windows), then forecast from every origin
and score the forecasts with MASE and scaled CRPS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..processing.time_series import calendar_features
from .data import ForecastTask
from .metrics import channel_mean, scaled_errors, seasonal_error


@dataclass
class TrainingBudget:
    """What every trained model gets: optimizer steps, windows per batch, AdamW's learning rate (with 5% warm-up
    and cosine decay) and the seed that draws the windows and initialises the model."""

    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0


class Windows:
    """Windows of a task's series: `context_length` steps of history and the `prediction_length` steps after
    them, with observed masks (NaN marks a missing value) and the calendar features of every step."""

    def __init__(self, task: ForecastTask):
        self.task = task
        self.calendar = calendar_features(task.timestamps, task.calendar_features)

    def at(self, origins) -> dict[str, torch.Tensor]:
        """The windows whose forecast starts at each index of `origins` (the history is the steps before it)."""
        task, origins = self.task, np.asarray(origins)
        past = origins[:, None] + np.arange(-task.context_length, 0)
        future = origins[:, None] + np.arange(task.prediction_length)
        if past.min() < 0 or future.max() >= len(task.values):
            raise ValueError(f"A window of {task.name} reaches outside the series ({len(task.values)} steps).")
        past_values, future_values = task.values[past], task.values[future]
        return {
            "past_values": torch.from_numpy(past_values),
            "past_observed_mask": torch.from_numpy(np.isfinite(past_values)),
            "future_values": torch.from_numpy(future_values),
            "future_observed_mask": torch.from_numpy(np.isfinite(future_values)),
            "past_time_features": torch.from_numpy(self.calendar[past]),
            "future_time_features": torch.from_numpy(self.calendar[future]),
        }

    def sample(self, batch_size: int, generator: np.random.Generator) -> dict[str, torch.Tensor]:
        """A batch of training windows drawn uniformly from those that end before the first test origin."""
        task = self.task
        last = task.train_end - task.prediction_length
        if last < task.context_length:
            raise ValueError(
                f"{task.name}: {task.train_end} training steps hold no window of {task.context_length} + "
                f"{task.prediction_length} steps."
            )
        return self.at(generator.integers(task.context_length, last + 1, size=batch_size))


def train(forecaster, task: ForecastTask, budget: TrainingBudget, progress: bool = True) -> list[float]:
    """Train `forecaster` (its `model` and its `loss(batch)`) on windows before the first origin; the losses."""
    model = forecaster.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.learning_rate, weight_decay=budget.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, budget.steps // 20), budget.steps)
    windows, generator = Windows(task), np.random.default_rng(budget.seed)
    losses = []
    bar = tqdm(range(budget.steps), desc=f"{forecaster.name} on {task.name}", disable=not progress, leave=False)
    for _ in bar:
        loss = forecaster.loss(windows.sample(budget.batch_size, generator))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def evaluate(forecaster, task: ForecastTask, num_samples: int = 100) -> dict[str, float]:
    """MASE and scaled CRPS of `forecaster.sample(batch, num_samples)` over every origin of `task` (the scale: the
    seasonal-naive in-sample error of the training part)."""
    scale = seasonal_error(task.values[: task.train_end], task.season_length)
    batch = Windows(task).at(task.origins)
    with torch.no_grad():
        samples = np.asarray(forecaster.sample(batch, num_samples), dtype=np.float64)  # (origins, samples, H, C)
    absolute, crps = zip(*(scaled_errors(s, a, scale) for s, a in zip(samples, batch["future_values"].numpy())))
    return {"mase": channel_mean(list(absolute)), "crps": channel_mean(list(crps))}
