"""Time series as users hold them (1-D or 2-D arrays, pandas Series and DataFrames) -> a forecaster's inputs, and
the calendar features of timestamps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..presets import CALENDAR_FEATURES

_DAY_SECONDS = 86400.0


def calendar_features(timestamps, names) -> np.ndarray:
    """`(len(timestamps), 2 * len(names))` float32: the sine and cosine of each named phase of every timestamp
    (a pandas `DatetimeIndex`): `time_of_day`, `day_of_week` (Monday 0:00 is phase 0) and `day_of_year`."""
    unknown = sorted(set(names) - set(CALENDAR_FEATURES))
    if unknown:
        raise ValueError(f"Unknown calendar features {unknown}; choose from {list(CALENDAR_FEATURES)}.")
    seconds = (timestamps.hour * 3600 + timestamps.minute * 60 + timestamps.second).to_numpy(dtype=np.float64)
    day_fraction = seconds / _DAY_SECONDS
    phases = {
        "time_of_day": day_fraction,
        "day_of_week": (timestamps.dayofweek.to_numpy(dtype=np.float64) + day_fraction) / 7.0,
        "day_of_year": (timestamps.dayofyear.to_numpy(dtype=np.float64) - 1 + day_fraction) / 365.25,
    }
    columns = []
    for name in names:
        angle = 2 * math.pi * phases[name]
        columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=-1).astype(np.float32) if columns else np.zeros((len(timestamps), 0), np.float32)


def future_timestamps(timestamps, steps: int):
    """The `steps` timestamps after a regular `DatetimeIndex` (its `freq`, or the one pandas infers)."""
    import pandas as pd

    freq = timestamps.freq or (pd.infer_freq(timestamps) if len(timestamps) >= 3 else None)
    if freq is None:
        raise ValueError(
            "The series' timestamps have no regular frequency, so the forecast's timestamps are unknown: give the "
            "series a `DatetimeIndex` with a frequency (e.g. `series.asfreq('30min')`)."
        )
    return pd.date_range(start=timestamps[-1], periods=steps + 1, freq=freq)[1:]


@dataclass
class SeriesInput:
    """One history: `values` `(steps, channels)` float32 with NaN where missing, its `timestamps` (a pandas
    `DatetimeIndex`, or `None`), channel `names`, and whether it came without a channel axis (`one_dimensional`:
    a 1-D array or a pandas Series), so that its forecast comes back without one too."""

    values: np.ndarray
    timestamps: Any = None
    names: list[str] | None = None
    one_dimensional: bool = False


def as_series(data, num_channels: int) -> SeriesInput:
    """A 1-D or 2-D array (steps x channels), a list, a torch tensor, or a pandas Series / DataFrame (whose
    `DatetimeIndex`, if any, gives the timestamps) as a `SeriesInput` with `num_channels` channels."""
    timestamps = names = None
    if type(data).__module__.startswith("pandas"):
        import pandas as pd

        if isinstance(data, pd.Series):
            names = [str(data.name)] if data.name is not None else None
        elif isinstance(data, pd.DataFrame):
            names = [str(column) for column in data.columns]
        else:
            raise TypeError(f"Expected a pandas Series or DataFrame, got {type(data).__name__}.")
        timestamps = data.index if isinstance(data.index, pd.DatetimeIndex) else None
        data = data.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(data, torch.Tensor):
        data = data.detach().cpu().double().numpy()
    try:
        values = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"Expected a time series as a 1-D or 2-D array of numbers (or a pandas Series/DataFrame), got {type(data).__name__}."
        ) from None
    one_dimensional = values.ndim == 1
    if one_dimensional:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] != num_channels:
        raise ValueError(
            f"Expected a series of shape (steps,) or (steps, {num_channels}): the model forecasts {num_channels} "
            f"channel(s); got shape {values.shape}."
        )
    return SeriesInput(values.astype(np.float32), timestamps, names, one_dimensional)
