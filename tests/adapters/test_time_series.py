"""The time-series input adapter: one row per past step, `[values, observed, time encoding]`."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf.input_adapters import TimeSeriesInputAdapter
from perceiver_hf.position import TimeEncoding


def test_rows_hold_values_observed_flags_and_the_steps_time_encoding():
    adapter = TimeSeriesInputAdapter(num_channels=2, time_encoding={"num_bands": 3, "max_period": 100.0})
    values = torch.randn(2, 5, 2)
    observed = torch.ones(2, 5, 2, dtype=torch.bool)
    observed[0, 1, 0] = False
    observed[1, 4] = False
    array = adapter(values, observed_mask=observed)
    rows = array.materialize()
    assert rows.shape == (2, 5, adapter.num_channels) == (2, 5, 2 + 2 + 7)
    assert torch.equal(rows[..., :2], values) and torch.equal(rows[..., 2:4], observed.float())
    encoding = TimeEncoding(num_bands=3, max_period=100.0)
    assert torch.equal(rows[0, :, 4:], encoding(torch.arange(-5, 0)[None])[0])  # the steps just before the origin
    # A step with no observed channel is left out of the encoder's attention.
    assert array.attention_mask.tolist() == [[True] * 5, [True] * 4 + [False]]


def test_explicit_time_index_for_irregular_series():
    adapter = TimeSeriesInputAdapter(num_channels=1, time_encoding={"num_bands": 2})
    index = torch.tensor([-30.0, -12.0, -11.0, -2.0])
    rows = adapter(torch.randn(1, 4, 1), time_index=index).materialize()
    assert torch.equal(rows[0, :, 2:], TimeEncoding(num_bands=2)(index[None])[0])
    with pytest.raises(ValueError, match=r"Expected `past_time_index` of shape \(batch, 4\) or \(4,\)"):
        adapter(torch.randn(1, 4, 1), time_index=index[:3])


def test_prepare_zeroes_missing_values_and_checks_the_history():
    adapter = TimeSeriesInputAdapter(num_channels=1)
    values = torch.tensor([[[1.0], [float("nan")], [3.0]]])
    mask = torch.tensor([[[1], [0], [1]]])
    prepared, observed = adapter.prepare(values, mask)
    assert prepared.tolist() == [[[1.0], [0.0], [3.0]]] and observed.dtype == torch.bool
    with pytest.raises(ValueError, match="NaN or infinite value"):
        adapter.prepare(values)
    with pytest.raises(ValueError, match=r"of the shape of `past_values`, \(1, 3, 1\), got \(1, 3\)"):
        adapter.prepare(values, mask[..., 0])
    with pytest.raises(ValueError, match="series 0, channel 0 has 1 observed value"):
        adapter.prepare(values, torch.tensor([[[1], [0], [0]]]))
