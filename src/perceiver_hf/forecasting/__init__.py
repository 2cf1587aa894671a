"""Evaluating forecasters on real series: the data sets (the `timeseries` extra), the rolling-origin evaluation
with MASE and CRPS, and the forecasters it compares (seasonal naive, transformers' PatchTST, Perceiver IO)."""

from .data import TASKS, ForecastTask, load_task
from .evaluation import TrainingBudget, Windows, evaluate, train
from .forecasters import PatchTSTForecaster, PerceiverIOForecaster, SeasonalNaive
from .metrics import crps_from_samples, seasonal_error

__all__ = [
    "TASKS",
    "ForecastTask",
    "PatchTSTForecaster",
    "PerceiverIOForecaster",
    "SeasonalNaive",
    "TrainingBudget",
    "Windows",
    "crps_from_samples",
    "evaluate",
    "load_task",
    "seasonal_error",
    "train",
]
