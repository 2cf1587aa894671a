"""The series scaler computes what transformers' time-series scalers compute, over the observed steps only."""

from __future__ import annotations

import pytest
import torch
from transformers import PatchTSTConfig
from transformers.models.patchtst.modeling_patchtst import PatchTSTScaler

from perceiver_hf.scaling import SeriesScaler
from tests.helpers import assert_parity


@pytest.mark.parametrize("scaling", ["std", "mean", None])
def test_scaling_matches_transformers_scalers(scaling):
    values = 50 + 20 * torch.randn(4, 30, 3, dtype=torch.float64)
    observed = torch.rand(4, 30, 3) > 0.3
    observed[2, :, 1] = False  # a channel without any observed value: the mean scaler's batch default
    theirs = PatchTSTScaler(PatchTSTConfig(scaling=scaling))
    expected = theirs(values, observed.to(values.dtype))
    scaled, loc, scale = SeriesScaler(scaling)(values, observed)
    for ours, reference in zip((scaled, loc, scale), expected):
        assert ours.shape == reference.shape
        assert_parity(ours, reference, 1e-12)


def test_scaling_inverts_and_ignores_missing_values():
    values = 1000 + 10 * torch.randn(2, 16, 1, dtype=torch.float64)
    observed = torch.ones_like(values, dtype=torch.bool)
    observed[0, :4] = False
    scaled, loc, scale = SeriesScaler("std")(values, observed)
    assert_parity(scaled * scale + loc, values, 1e-12)
    assert_parity(loc[0, 0], values[0, 4:].mean(0), 1e-12)
    assert scaled[1].mean().abs() < 1e-9 and (scaled[1].std(unbiased=False) - 1).abs() < 1e-4


def test_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="`scaling` must be one of"):
        SeriesScaler("minmax")
