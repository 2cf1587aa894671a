"""A forecast as a picture: the end of the history, the forecast and its 10-90% band, one panel per channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model_folder import write_file_atomically
from .time_series import SeriesInput


def save_forecast_plot(
    path: Path,
    history: SeriesInput,
    forecast: np.ndarray,
    band: np.ndarray,
    future_timestamps=None,
    actual: np.ndarray | None = None,
    history_steps: int | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG to `path` (atomically: no half-written file is ever left there): the last `history_steps`
    steps of `history` (default four horizons), the `(steps, channels)` `forecast` and the band between `band[0]`
    and `band[1]`; `actual` values of the forecast steps, when known, are drawn over it. The x axis is time when
    the history has timestamps, else step offsets."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("Saving forecast plots needs matplotlib: `pip install 'perceiver-hf[timeseries]'`.") from None
    horizon, channels = forecast.shape
    shown = min(len(history.values), history_steps or 4 * horizon)
    past = history.values[-shown:]
    if history.timestamps is not None and future_timestamps is not None:
        past_x, future_x = history.timestamps[-shown:], future_timestamps
    else:
        past_x, future_x = np.arange(-shown, 0), np.arange(horizon)
    figure = Figure(figsize=(10, 2.6 * channels), layout="constrained")
    axes = figure.subplots(channels, 1, squeeze=False)[:, 0]
    for channel, axis in enumerate(axes):
        axis.plot(past_x, past[:, channel], color="black", linewidth=1, label="history")
        axis.fill_between(future_x, band[0][:, channel], band[1][:, channel], color="tab:blue", alpha=0.25, label="10-90%")
        axis.plot(future_x, forecast[:, channel], color="tab:blue", linewidth=1.5, label="forecast (median)")
        if actual is not None:
            axis.plot(future_x, actual[:, channel], color="tab:orange", linewidth=1, label="actual")
        if history.names:
            axis.set_ylabel(history.names[channel])
        axis.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize="small", ncols=4)
    if title:
        axes[0].set_title(title)
    return write_file_atomically(path, lambda target: figure.savefig(target, format="png", dpi=110))
