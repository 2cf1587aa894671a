"""Right-aligned causal masks with left padding, and their additive form for SDPA."""

from __future__ import annotations

import torch

from perceiver_hf.causal_mask import additive_mask, causal_mask


def test_queries_are_the_last_keys():
    mask = causal_mask(2, 4)[0, 0]
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_left_padding_hides_keys_of_its_row_only():
    padding = torch.tensor([[0, 1, 1], [1, 1, 1]])
    mask = causal_mask(1, 3, padding)
    assert mask.shape == (2, 1, 1, 3)
    assert mask[:, 0, 0].tolist() == [[False, True, True], [True, True, True]]


def test_rows_without_keys_average_all_values_as_eager_attention_does():
    mask = causal_mask(3, 3, torch.tensor([[0, 0, 1]]))  # the first two queries see only padding
    scores = torch.randn(1, 1, 3, 3) + additive_mask(mask, torch.float32)
    weights = scores.softmax(-1)[0, 0]
    assert torch.equal(weights[0], torch.full((3,), 1 / 3))
    assert weights[2].tolist() == [0.0, 0.0, 1.0]
