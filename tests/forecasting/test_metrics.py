"""MASE and CRPS, checked against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perceiver_hf.forecasting.metrics import channel_mean, crps_from_samples, scaled_errors, seasonal_error


def test_crps_of_samples_is_the_energy_form_computed_pairwise():
    rng = np.random.default_rng(0)
    samples, actual = rng.normal(size=(25, 3, 2)), rng.normal(size=(3, 2))
    pairwise = np.abs(samples[:, None] - samples[None]).mean(axis=(0, 1))
    expected = np.abs(samples - actual).mean(axis=0) - pairwise / 2
    np.testing.assert_allclose(crps_from_samples(samples, actual), expected, atol=1e-12)


def test_crps_of_many_normal_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    mu, sigma, y = 2.0, 3.0, 4.5
    z = (y - mu) / sigma
    cdf, pdf = 0.5 * (1 + math.erf(z / math.sqrt(2))), math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    closed_form = sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))
    estimate = crps_from_samples(rng.normal(mu, sigma, size=(200_000, 1)), np.array([y]))[0]
    assert estimate == pytest.approx(closed_form, rel=0.01)


def test_one_sample_has_crps_equal_to_its_absolute_error_so_scaled_crps_equals_mase():
    samples, actual = np.array([[[1.0], [5.0]]]), np.array([[2.0], [np.nan]])
    absolute, crps = scaled_errors(samples, actual, np.array([2.0]))
    assert absolute[0, 0] == crps[0, 0] == 0.5 and np.isnan(absolute[1, 0]) and np.isnan(crps[1, 0])


def test_seasonal_error_skips_missing_pairs_and_channel_mean_weighs_channels_alike():
    history = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, np.nan], [8.0, 50.0]])
    np.testing.assert_allclose(seasonal_error(history, 2), [(3 + 6) / 2, 30.0])
    assert channel_mean([np.array([[1.0, 3.0]]), np.array([[np.nan, 5.0]])]) == pytest.approx((1 + 4) / 2)
    with pytest.raises(ValueError, match="no full season"):
        seasonal_error(history, 4)
