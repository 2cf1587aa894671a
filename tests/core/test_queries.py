"""Fourier position queries (with subsampling), multimodal query stacks, and their factored form."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf.input_array import InputArray
from perceiver_hf.position import fourier_features
from perceiver_hf.presets import fourier_position_encoding
from perceiver_hf.queries import FourierQueries, MultimodalQueries, TrainableQueries, subsampled_positions

INPUTS = InputArray(torch.zeros(2, 5, 3))  # queries only read the batch size, dtype and device


def image_queries() -> FourierQueries:
    # The video model's convention: a 12x12 output grid with Fourier frequencies of a 3x3 grid.
    return FourierQueries([2, 12, 12], fourier_position_encoding(3, (2, 3, 3)))


def stacked_queries() -> MultimodalQueries:
    audio = FourierQueries([6], fourier_position_encoding(5, (24,)))
    return MultimodalQueries({"label": TrainableQueries(1, 40), "image": image_queries(), "audio": audio})


def test_positions_exclude_the_right_end_like_deepmind_subsampling():
    positions = subsampled_positions(torch.tensor([0, 13, 287]), (2, 12, 12))
    expected = torch.tensor([[0, 0, 0], [0, 1, 1], [1, 11, 11]]) * 2 / torch.tensor([2, 12, 12]) - 1
    torch.testing.assert_close(positions, expected)


def test_fourier_queries_subsample_and_chunk_consistently():
    queries = image_queries()
    every = queries(INPUTS, 0, queries.num_queries(INPUTS))
    assert every.shape == (2, 288, 21)
    positions = subsampled_positions(torch.arange(288), (2, 12, 12))
    torch.testing.assert_close(every[0], fourier_features(positions, 3, (2, 3, 3)))
    points = torch.tensor([200, 3, 77])
    torch.testing.assert_close(queries(INPUTS, 0, 3, subsampled_points=points), every[:, points])
    torch.testing.assert_close(queries(INPUTS, 1, 3, subsampled_points=points), every[:, points[1:]])


def test_multimodal_stack_is_sorted_padded_and_chunkable():
    queries = stacked_queries()
    sizes = queries.modality_sizes(INPUTS)
    assert list(sizes.items()) == [("audio", 6), ("image", 288), ("label", 1)]
    assert queries.num_channels == 40 + 2
    stack = queries(INPUTS, 0, queries.num_queries(INPUTS))
    torch.testing.assert_close(stack[:, 6:294, 21:], queries.padding["image"]().expand(2, 288, -1))
    torch.testing.assert_close(stack[:, 294, :40], queries.modalities["label"].queries.expand(2, -1))
    # A block straddling modality boundaries is the same rows of the stack.
    torch.testing.assert_close(queries(INPUTS, 4, 295), stack[:, 4:295])


def test_multimodal_subsampling_per_modality():
    queries = stacked_queries()
    points = {"image": torch.tensor([5, 1]), "audio": torch.tensor([4])}
    assert queries.modality_sizes(INPUTS, points) == {"audio": 1, "image": 2, "label": 1}
    stack = queries(INPUTS, 0, queries.num_queries(INPUTS))
    torch.testing.assert_close(queries(INPUTS, 0, 4, points), stack[:, [4, 6 + 5, 6 + 1, 294]])
    with pytest.raises(ValueError, match=r"names \['video'\]"):
        queries.modality_sizes(INPUTS, {"video": torch.tensor([0])})


@pytest.mark.parametrize("points", [None, {"image": torch.tensor([287, 0, 100]), "audio": torch.tensor([2])}])
def test_factored_queries_reproduce_the_queries(points):
    queries = stacked_queries()
    sizes = queries.modality_sizes(INPUTS, points)
    stack = queries(INPUTS, 0, sum(sizes.values()), points)[0]
    offset = 0
    for name, size in sizes.items():
        factored = queries.factored(name, 0, size, points)
        torch.testing.assert_close(factored.materialize(), stack[offset : offset + size], rtol=0, atol=0)
        offset += size


def test_queries_carrying_the_input_rows_are_the_same_in_blocks():
    queries = TrainableQueries(7, 3, match_input_length=True, input_window=2)
    rows = InputArray(torch.randn(2, 7, 3), attention_mask=torch.tensor([[1] * 7, [1] * 5 + [0] * 2]))
    every = queries(rows, 0, 7)
    torch.testing.assert_close(torch.cat([queries(rows, 0, 3), queries(rows, 3, 6), queries(rows, 6, 7)], 1), every)
    with pytest.raises(ValueError, match="need `match_input_length`"):
        TrainableQueries(7, 3, add_inputs=True)
    with pytest.raises(ValueError, match="need the input array's 4 channels, but have 3"):
        queries(InputArray(torch.randn(2, 7, 4)), 0, 7)
