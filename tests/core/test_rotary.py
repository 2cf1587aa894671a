"""Rotary position embeddings: adjacent pairs turned, partial rotation, scores that depend on distances only."""

from __future__ import annotations

import math

import pytest
import torch

from perceiver_hf.rotary import RotaryEmbedding, inverse_frequencies


def test_adjacent_pairs_turn_by_position_times_frequency():
    rotary = RotaryEmbedding(rotated_channels=4)
    states = torch.tensor([1.0, 0.0, 1.0, 0.0, 5.0, 6.0]).view(1, 1, 1, 6)  # two pairs turn, two channels pass
    cos, sin = rotary.angles(torch.tensor([[3]]))
    turned = RotaryEmbedding.rotate(states, cos, sin).flatten().tolist()
    slow = 3 * 10000 ** (-2 / 4)
    expected = [math.cos(3), math.sin(3), math.cos(slow), math.sin(slow), 5.0, 6.0]
    assert turned == pytest.approx(expected, abs=1e-6)
    assert inverse_frequencies(4).tolist() == pytest.approx([1.0, 0.01])


def test_scores_depend_only_on_the_distance_between_query_and_key():
    torch.manual_seed(0)
    rotary = RotaryEmbedding(rotated_channels=8)
    query, key = torch.randn(2, 1, 1, 1, 12, dtype=torch.float64).unbind(0)

    def score(query_position: int, key_position: int) -> float:
        q = RotaryEmbedding.rotate(query, *[a.double() for a in rotary.angles(torch.tensor([[query_position]]))])
        k = RotaryEmbedding.rotate(key, *[a.double() for a in rotary.angles(torch.tensor([[key_position]]))])
        return (q * k).sum().item()

    # Angles are float32 (as in krasserm/perceiver-io): equal up to their rounding.
    assert score(7, 3) == pytest.approx(score(104, 100), rel=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 4), rel=1e-3)


def test_odd_rotated_channels_are_rejected():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(rotated_channels=3)
