"""`pipeline("optical-flow")`: any frame size (tiled like DeepMind's colab, or padded), flow plus picture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import stereo_motorcycle
from transformers import pipeline

from perceiver_hf import OpticalFlowPipeline, PerceiverIOConfig, PerceiverIOFlowProcessor, PerceiverIOForOpticalFlow
from perceiver_hf.processing.flow_visualization import flow_to_color
from tests.helpers import REPO, perturb_

TRAIN_SIZE = (12, 16)
MIN_OVERLAP = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A small random flow model trained (nominally) at 12x16, saved with its processor."""
    torch.manual_seed(0)
    config = PerceiverIOConfig.for_optical_flow(
        train_size=TRAIN_SIZE,
        num_latents=8,
        d_latents=32,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        out_channels=16,
        num_bands=4,
    )
    model = perturb_(PerceiverIOForOpticalFlow(config).eval())
    folder = tmp_path_factory.mktemp("flow_model")
    model.save_pretrained(folder)
    PerceiverIOFlowProcessor(tile_size=TRAIN_SIZE, min_overlap=MIN_OVERLAP).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def estimator(model_dir) -> OpticalFlowPipeline:
    return pipeline("optical-flow", model=str(model_dir))


@pytest.fixture(scope="module")
def motorcycle():
    left, right, _ = stereo_motorcycle()  # a real stereo pair, 500x741
    return left, right


def model_flow(estimator, frames: torch.Tensor) -> np.ndarray:
    """The model's own flow in pixels for normalised frames `(2, 3, h, w)`."""
    inputs = estimator.image_processor.extract_patches(frames[None])
    with torch.no_grad():
        return (estimator.model(inputs=inputs).logits[0] * estimator.model.flow_scale_factor).numpy()


def colab_flow(estimator, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """DeepMind's `compute_optical_flow`, step by step as the colab writes it (every grid visit, NumPy padding)."""
    frames = estimator.image_processor.normalize_pair([first, second])
    height, width = first.shape[:2]
    (tile_height, tile_width), overlap = TRAIN_SIZE, MIN_OVERLAP
    ys = list(range(0, height, tile_height - overlap))
    xs = list(range(0, width, tile_width - overlap))
    ys[-1], xs[-1] = height - tile_height, width - tile_width
    flows, counts = 0, 0
    for y in ys:
        for x in xs:
            piece = model_flow(estimator, frames[..., y : y + tile_height, x : x + tile_width])
            weights_x, weights_y = np.meshgrid(np.arange(tile_width), np.arange(tile_height))
            weights_x = np.minimum(weights_x + 1, tile_width - weights_x)
            weights_y = np.minimum(weights_y + 1, tile_height - weights_y)
            weights = np.minimum(weights_x, weights_y)[:, :, None]
            padding = [(y, height - y - tile_height), (x, width - x - tile_width), (0, 0)]
            flows = flows + np.pad(piece * weights, padding)
            counts = counts + np.pad(weights, padding)
    return flows / counts


def test_a_training_size_frame_gives_the_models_flow(estimator, motorcycle):
    # Tiling consistency: at exactly the training size the pipeline is one forward pass of the model.
    first, second = (frame[200 : 200 + TRAIN_SIZE[0], 300 : 300 + TRAIN_SIZE[1]] for frame in motorcycle)
    result = estimator([first, second])
    expected = model_flow(estimator, estimator.image_processor.normalize_pair([first, second]))
    assert result["flow"].shape == (*TRAIN_SIZE, 2) and result["flow"].dtype == np.float32
    np.testing.assert_allclose(result["flow"], expected, rtol=0, atol=1e-5)


def test_larger_frames_are_tiled_and_blended_as_deepminds_colab_does(estimator, motorcycle):
    first, second = (frame[100:137, 200:253] for frame in motorcycle)  # 37x53: tiles overlap unevenly
    result = estimator(first, second, progress=False)
    np.testing.assert_allclose(result["flow"], colab_flow(estimator, first, second), rtol=0, atol=1e-5)
    batched = estimator([first, second], tile_batch_size=5)
    np.testing.assert_allclose(batched["flow"], result["flow"], rtol=0, atol=1e-5)


def test_smaller_frames_are_padded_and_cropped(estimator, motorcycle):
    first, second = (frame[50:57, 60:69] for frame in motorcycle)  # 7x9 < 12x16
    result = estimator([first, second])
    frames = estimator.image_processor.normalize_pair([first, second])
    padded = torch.nn.functional.pad(frames, (0, TRAIN_SIZE[1] - 9, 0, TRAIN_SIZE[0] - 7), mode="replicate")
    assert result["flow"].shape == (7, 9, 2)
    np.testing.assert_allclose(result["flow"], model_flow(estimator, padded)[:7, :9], rtol=0, atol=1e-5)
    # One dimension smaller, the other larger: padded in one, tiled in the other.
    wide = [frame[:8, :40] for frame in motorcycle]
    assert estimator(wide)["flow"].shape == (8, 40, 2)


def test_real_stereo_pair_at_full_size(model_dir, motorcycle):
    # A model "trained" at 192x256 tiles the 500x741 pair 3 x 4 times.
    config = PerceiverIOConfig.from_pretrained(model_dir)
    config.output_adapter["train_size"] = [192, 256]
    model = PerceiverIOForOpticalFlow.from_pretrained(model_dir, config=config)
    estimator = pipeline("optical-flow", model=model, image_processor=PerceiverIOFlowProcessor(tile_size=(192, 256)))
    result = estimator(list(motorcycle), tile_batch_size=4)
    flow, picture = result["flow"], result["flow_image"]
    assert flow.shape == (500, 741, 2) and np.isfinite(flow).all()
    assert isinstance(picture, Image.Image) and picture.mode == "RGB" and picture.size == (741, 500)
    np.testing.assert_array_equal(np.asarray(picture), flow_to_color(flow))


def test_pairs_can_be_given_as_a_list_of_pairs_or_file_paths(estimator, motorcycle, tmp_path):
    first, second = (frame[:20, :30] for frame in motorcycle)
    paths = [tmp_path / "frame_1.png", tmp_path / "frame_2.png"]
    for frame, path in zip((first, second), paths):
        Image.fromarray(frame).save(path)
    results = estimator([(first, second), [str(paths[0]), str(paths[1])]])
    assert len(results) == 2
    np.testing.assert_allclose(results[0]["flow"], results[1]["flow"], rtol=0, atol=1e-6)
    assert estimator((Image.open(paths[0]), Image.open(paths[1])), max_flow=1.0)["flow_image"].size == (30, 20)


def test_grayscale_frames_as_2d_arrays_give_the_flow_of_grayscale_images(estimator, motorcycle):
    first, second = (np.asarray(Image.fromarray(frame[:20, :30]).convert("L")) for frame in motorcycle)
    from_arrays = estimator([first, second])["flow"]
    from_images = estimator([Image.fromarray(first), Image.fromarray(second)])["flow"]
    np.testing.assert_array_equal(from_arrays, from_images)


def test_bad_frames_raise_clear_errors(estimator, motorcycle):
    first, second = motorcycle
    with pytest.raises(ValueError, match="same size"):
        estimator([first[:20, :30], second[:20, :31]])
    with pytest.raises(ValueError, match="exactly two frames"):
        estimator([first[:20, :30]])
    with pytest.raises(ValueError, match="1 channel"):
        estimator([first[:20, :30, :1], second[:20, :30, :1]])
    with pytest.raises(ValueError, match="tile_batch_size"):
        estimator([first[:20, :30], second[:20, :30]], tile_batch_size=0)


def test_pipeline_works_without_a_saved_processor(model_dir, tmp_path):
    # A folder with only the model (e.g. converted by hand): tiles come from the model's training size.
    PerceiverIOForOpticalFlow.from_pretrained(model_dir).save_pretrained(tmp_path)
    estimator = pipeline("optical-flow", model=str(tmp_path))
    assert estimator.image_processor.tile_size == list(TRAIN_SIZE)


def test_example_script_writes_the_flow_picture(model_dir, motorcycle, tmp_path):
    paths = [tmp_path / "frame_1.png", tmp_path / "frame_2.png"]
    for frame, path in zip(motorcycle, paths):
        Image.fromarray(frame[:30, :40]).save(path)
    output = tmp_path / "out" / "flow.png"
    script = REPO / "examples" / "optical_flow.py"
    completed = subprocess.run(
        [sys.executable, str(script), str(model_dir), *map(str, paths), "--output", str(output)],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert Image.open(output).size == (40, 30)
    assert np.load(output.with_suffix(".npy")).shape == (30, 40, 2)


def test_example_script_says_up_front_how_many_tiles_it_plans(model_dir):
    # The 500x741 motorcycle pair in 12x16 tiles: thousands of forward passes, announced before the first one.
    script = REPO / "examples" / "optical_flow.py"
    process = subprocess.Popen(
        [sys.executable, "-u", str(script), str(model_dir), "--motorcycle", "--output", "unused.png"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
    finally:
        process.kill()
        process.wait()
    processor = PerceiverIOFlowProcessor.from_pretrained(model_dir)
    tiles = len(processor.tiles((500, 741)))
    assert tiles > 3000
    assert first_line.startswith(f"500x741 frames, model trained at 12x16: {tiles:,} tile(s), one forward pass each.")
    assert "takes long" in first_line and "368x496" in first_line
