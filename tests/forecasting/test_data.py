"""The real series ship inside pmdarima and statsmodels (the `timeseries` extra) and load offline, as they are."""

from __future__ import annotations

import numpy as np
import pytest

from perceiver_hf.forecasting import TASKS, load_task


@pytest.mark.parametrize(
    ("name", "shape", "missing"), [("taylor", (4032, 1), 0), ("co2", (2284, 1), 59), ("elnino", (732, 1), 0), ("macrodata", (203, 12), 0)]
)
def test_series_load_with_their_missing_values_kept_missing(name, shape, missing):
    task = load_task(name)
    assert task.values.shape == shape and task.values.dtype == np.float32
    assert int(np.isnan(task.values).sum()) == missing  # never interpolated
    assert len(task.timestamps) == shape[0] and task.timestamps.is_monotonic_increasing


@pytest.mark.parametrize("name", sorted(TASKS))
def test_origins_cover_the_end_of_the_series_and_training_stays_before_them(name):
    task = load_task(name)
    origins = task.origins
    assert len(origins) == task.num_origins and origins[-1] + task.prediction_length == len(task.values)
    assert np.all(np.diff(origins) == task.origin_stride)
    assert task.train_end == origins[0] >= task.context_length + task.prediction_length
    assert len(task.values) - task.train_end <= 0.15 * len(task.values) + task.prediction_length


def test_taylor_is_half_hourly_from_monday_5_june_2000():
    task = load_task("taylor")
    assert str(task.timestamps[0]) == "2000-06-05 00:00:00" and task.timestamps[0].dayofweek == 0
    assert str(task.timestamps[-1]) == "2000-08-27 23:30:00"  # Sunday 27 August, as pmdarima documents
    assert task.context_length == 2016 and task.prediction_length == 48  # six weeks of context, one day ahead


def test_unknown_series_is_refused():
    with pytest.raises(ValueError, match="choose from"):
        load_task("sunspots")
