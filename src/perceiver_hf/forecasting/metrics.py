"""Forecast accuracy, unit-free: MASE (mean absolute scaled error) of a point forecast, and CRPS (continuous ranked
probability score) of a forecast given by samples, both divided by the same in-sample scale, so that a point
forecast's scaled CRPS equals its MASE. Missing actual values (NaN) are left out."""

from __future__ import annotations

import numpy as np


def seasonal_error(history: np.ndarray, season_length: int) -> np.ndarray:
    """`(channels,)` mean absolute difference between each observed value of the `(steps, channels)` history and
    the observed value one season earlier: the in-sample error of the seasonal-naive forecast (MASE's scale)."""
    if len(history) <= season_length:
        raise ValueError(f"A history of {len(history)} steps has no full season of {season_length} steps to compare.")
    differences = np.abs(history[season_length:] - history[:-season_length])
    scale = np.nanmean(differences, axis=0)
    if not np.all(np.isfinite(scale)) or np.any(scale == 0):
        raise ValueError("The history has no two observed values one season apart that differ; MASE is undefined.")
    return scale


def crps_from_samples(samples: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of `samples` `(num_samples, ...)` at each `actual` value `(...)`:
    `E|X - y| - E|X - X'| / 2`, with the pairwise term computed from the sorted samples in `O(n log n)`."""
    samples = np.sort(np.asarray(samples, dtype=np.float64), axis=0)
    n = samples.shape[0]
    spread_to_actual = np.abs(samples - actual[None]).mean(axis=0)
    # sum_{i,j} |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i) for the sorted x_(1) <= ... <= x_(n).
    ranks = (2 * np.arange(1, n + 1) - n - 1).reshape(-1, *([1] * (samples.ndim - 1)))
    pairwise = 2 * (ranks * samples).sum(axis=0) / n**2
    return spread_to_actual - pairwise / 2


def scaled_errors(samples: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute error of the samples' median and CRPS of the samples, divided by `scale` `(channels,)`, for
    `samples` `(num_samples, steps, channels)` and `actual` `(steps, channels)`; NaN where `actual` is missing."""
    observed = np.isfinite(actual)
    filled = np.nan_to_num(actual)
    absolute = np.abs(np.median(samples, axis=0) - filled)
    crps = crps_from_samples(samples, filled)
    return np.where(observed, absolute / scale, np.nan), np.where(observed, crps / scale, np.nan)


def channel_mean(errors: list[np.ndarray]) -> float:
    """The mean of `(steps, channels)` scaled errors (e.g. of every origin) over the observed values of each
    channel, then over channels: MASE from absolute errors, scaled CRPS from CRPS values."""
    stacked = np.concatenate(errors, axis=0)
    return float(np.mean(np.nanmean(stacked, axis=0)))
