"""PerceiverIOFlowProcessor: frame pairs -> 3x3 patches as DeepMind's colab makes them, tiling geometry, flow pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from perceiver_hf import PerceiverIOFlowProcessor
from perceiver_hf.processing.flow import tile_grid, tile_weights
from perceiver_hf.processing.flow_visualization import color_wheel, flow_to_color, flow_to_image
from tests.helpers import FIXTURES_DIR, requires_fixtures


@requires_fixtures
def test_patches_match_deepmind_patches_for_flow():
    io = np.load(FIXTURES_DIR / "optical_flow" / "io.npz")
    processor = PerceiverIOFlowProcessor(tile_size=(6, 8), min_overlap=2)
    frames = io["frames_uint8"]  # (batch, 2, H, W, 3) uint8
    inputs = processor(frames)["inputs"]
    expected = torch.from_numpy(io["patches"]).permute(0, 1, 4, 2, 3)  # DeepMind is channels-last
    assert inputs.shape == (2, 2, 27, 6, 8)
    torch.testing.assert_close(inputs, expected, rtol=0, atol=1e-6)
    # The same pairs as lists of PIL images and as channels-first arrays.
    as_pil = [[Image.fromarray(frame) for frame in pair] for pair in frames]
    torch.testing.assert_close(processor(as_pil)["inputs"], expected, rtol=0, atol=1e-6)
    channels_first = [[frame.transpose(2, 0, 1) for frame in pair] for pair in frames]
    torch.testing.assert_close(processor(channels_first)["inputs"], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(processor.normalize_pair(frames[0]).permute(0, 2, 3, 1), torch.from_numpy(io["images"][0]))


def test_single_pair_gets_a_batch_dimension_and_numpy_output():
    pair = [np.zeros((5, 7, 3), np.uint8), np.full((5, 7, 3), 255, np.uint8)]
    inputs = PerceiverIOFlowProcessor()(pair)["inputs"]
    assert inputs.shape == (1, 2, 27, 5, 7)
    # The centre of each patch is the pixel itself; patches reaching over the border see zeros (mid-grey).
    assert inputs[0, 0, 13].eq(-1).all() and inputs[0, 1, 13].eq(1).all()
    assert inputs[0, 1, 0, 0, 0] == 0 and inputs[0, 1, 0, 1, 1] == 1
    as_numpy = PerceiverIOFlowProcessor()(pair, return_tensors="np")["inputs"]
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (1, 2, 27, 5, 7)


def test_processor_saves_and_loads_with_a_model_folder(tmp_path):
    PerceiverIOFlowProcessor(tile_size=(32, 48), min_overlap=8, pad_mode="constant").save_pretrained(tmp_path)
    loaded = PerceiverIOFlowProcessor.from_pretrained(tmp_path)
    assert (loaded.tile_size, loaded.min_overlap, loaded.pad_mode, loaded.patch_size) == ([32, 48], 8, "constant", 3)


@pytest.mark.parametrize(
    "frames, message",
    [
        ([np.zeros((6, 8, 3), np.uint8)], "exactly two frames"),
        ([np.zeros((6, 8, 3), np.uint8)] * 3, "exactly two frames"),
        (np.zeros((6, 8, 3), np.uint8), "pair of frames"),
        ([np.zeros((6, 8, 3), np.uint8), np.zeros((6, 9, 3), np.uint8)], "same size"),
        ([np.zeros((8,), np.uint8)] * 2, "shape \\(8,\\)"),
        ([np.zeros((6, 8, 4), np.uint8)] * 2, "4 channel"),
        ([np.zeros((6, 8, 1), np.uint8)] * 2, "1 channel"),
        ([Image.new("RGBA", (8, 6))] * 2, "RGBA"),
        (["frame_1.png", "frame_2.png"], "str"),
    ],
)
def test_bad_frames_raise_clear_errors(frames, message):
    with pytest.raises(ValueError, match=message):
        PerceiverIOFlowProcessor()(frames)


def test_batches_of_different_sizes_are_refused():
    pairs = [[np.zeros((6, 8, 3), np.uint8)] * 2, [np.zeros((7, 8, 3), np.uint8)] * 2]
    with pytest.raises(ValueError, match="one size"):
        PerceiverIOFlowProcessor()(pairs)


def test_grayscale_pil_frames_become_rgb():
    pair = [Image.new("L", (8, 6), 255), Image.new("L", (8, 6), 0)]
    inputs = PerceiverIOFlowProcessor()(pair)["inputs"]
    assert inputs[0, 0, 13].eq(1).all() and inputs[0, 1, 13].eq(-1).all()


def test_grayscale_arrays_are_taken_as_grayscale_pil_images_are():
    gray = np.random.default_rng(0).integers(0, 256, (2, 6, 8), dtype=np.uint8)
    as_images = PerceiverIOFlowProcessor()([Image.fromarray(frame, mode="L") for frame in gray])["inputs"]
    as_arrays = PerceiverIOFlowProcessor()(list(gray))["inputs"]
    as_tensors = PerceiverIOFlowProcessor()([torch.from_numpy(frame) for frame in gray])["inputs"]
    torch.testing.assert_close(as_arrays, as_images, rtol=0, atol=0)
    torch.testing.assert_close(as_tensors, as_images, rtol=0, atol=0)


def colab_grid_indices(image_shape, patch_size, min_overlap):
    """DeepMind's `compute_grid_indices`, as the colab writes it (duplicates included)."""
    ys = list(range(0, image_shape[0], patch_size[0] - min_overlap))
    xs = list(range(0, image_shape[1], patch_size[1] - min_overlap))
    ys[-1] = image_shape[0] - patch_size[0]
    xs[-1] = image_shape[1] - patch_size[1]
    return [(y, x) for y in ys for x in xs]


@pytest.mark.parametrize("size", [(368, 496), (436, 1024), (716, 972), (369, 497), (1080, 1920), (400, 960)])
def test_tile_grid_counts_the_colabs_tiles(size):
    grid = tile_grid(size, (368, 496), 20)
    # Where the colab cuts a tile short at the border (a width of 960), that tile moves inside the frame.
    visits = [(min(y, size[0] - 368), min(x, size[1] - 496)) for y, x in colab_grid_indices(size, (368, 496), 20)]
    assert sum(grid.values()) == len(visits) and set(grid) == set(visits)
    assert all(grid[corner] == visits.count(corner) for corner in grid)
    covered = np.zeros(size, bool)
    for y, x in grid:
        covered[y : y + 368, x : x + 496] = True
    assert covered.all()


def test_tile_grid_of_a_training_size_frame_is_one_tile_visited_four_times():
    assert tile_grid((368, 496), (368, 496)) == {(0, 0): 4}


def test_tile_grid_refuses_bad_geometry():
    with pytest.raises(ValueError, match="min_overlap"):
        tile_grid((400, 500), (368, 496), 368)
    with pytest.raises(ValueError, match="pad it first"):
        tile_grid((300, 500), (368, 496), 20)
    with pytest.raises(ValueError, match="min_overlap"):
        PerceiverIOFlowProcessor(tile_size=(6, 8))  # the default overlap of 20 does not fit


def test_tile_weights_fall_off_towards_the_border():
    weights = tile_weights((5, 6))
    assert weights.shape == (5, 6)
    assert weights[0].eq(1).all() and weights[:, -1].eq(1).all()
    assert weights[2, 2] == 3 and weights[2, 3] == 3 and weights.max() == 3


def test_pad_to_tile_pads_bottom_right_only_when_needed():
    processor = PerceiverIOFlowProcessor(tile_size=(8, 10), min_overlap=2)
    frames = torch.randn(2, 3, 5, 12)
    padded = processor.pad_to_tile(frames)
    assert padded.shape == (2, 3, 8, 12)
    assert torch.equal(padded[..., :5, :], frames) and torch.equal(padded[..., 7, :], frames[..., 4, :])
    assert processor.pad_to_tile(torch.randn(2, 3, 8, 10)).shape == (2, 3, 8, 10)


def test_flow_colors_follow_the_standard_wheel():
    wheel = color_wheel()
    assert wheel.shape == (55, 3) and np.allclose(wheel[0], [1, 0, 0])
    flow = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 0.0], [0.5, 0.0], [np.nan, 0.0]]])
    colors = flow_to_color(flow).astype(int)
    assert tuple(colors[0, 0]) == (255, 0, 0)  # right: red
    assert colors[0, 1, 0] < 10 and colors[0, 1, 1] > 150 and colors[0, 1, 2] == 255  # left: cyan
    assert colors[0, 2, 0] == 255 and colors[0, 2, 1] > 200 and colors[0, 2, 2] < 10  # down: yellow
    assert colors[0, 3, 2] == 255 and colors[0, 3, 1] < 10  # up: blue-violet
    assert tuple(colors[0, 4]) == (255, 255, 255)  # still: white
    assert tuple(colors[0, 5]) == (255, 128, 128)  # half the largest speed: half saturated
    assert tuple(colors[0, 6]) == (0, 0, 0)  # unknown: black
    # With a fixed scale, faster-than-max motion is darkened rather than clipped.
    assert tuple(flow_to_color(flow, max_flow=0.5)[0, 0]) == (191, 0, 0)
    image = flow_to_image(flow)
    assert image.mode == "RGB" and image.size == (7, 1)
    with pytest.raises(ValueError, match="height, width, 2"):
        flow_to_color(np.zeros((4, 4, 3)))
