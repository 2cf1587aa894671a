"""The demo's data: scikit-learn's real handwritten digits as PIL images, a fixed split, and tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from perceiver_hf.demo.digits import (
    ImageClassificationDataset,
    digits_image_processor,
    load_digit_images,
    split_digits,
)


def test_all_digits_load_as_greyscale_images():
    images, labels = load_digit_images()
    assert len(images) == len(labels) == 1797
    assert {image.size for image in images} == {(8, 8)} and {image.mode for image in images} == {"L"}
    assert sorted(set(labels.tolist())) == list(range(10))
    pixels = np.stack([np.asarray(image) for image in images])
    assert pixels.min() == 0 and pixels.max() == 255  # 16 grey levels stretched to the full range


def test_held_out_split_is_fixed_balanced_and_disjoint():
    split = split_digits()
    assert len(split.train_images) == 1437 and len(split.held_out_images) == 360
    assert set(np.bincount(split.held_out_labels).tolist()) <= {35, 36, 37}  # stratified by class
    train = {np.asarray(image).tobytes() for image in split.train_images}
    held_out = [np.asarray(image).tobytes() for image in split_digits().held_out_images]
    assert held_out == [np.asarray(image).tobytes() for image in split.held_out_images]  # same split every run
    # A handful of scans are exact duplicates in the UCI data; the split itself never shares an index.
    assert sum(image in train for image in held_out) <= 5


def test_dataset_gives_normalised_rgb_pixels_and_labels():
    split = split_digits()
    dataset = ImageClassificationDataset(split.train_images[:4], split.train_labels[:4], digits_image_processor())
    example = dataset[2]
    assert example["pixel_values"].shape == (3, 8, 8) and example["pixel_values"].dtype == torch.float32
    assert -1 <= example["pixel_values"].min() and example["pixel_values"].max() <= 1
    assert torch.equal(example["pixel_values"][0], example["pixel_values"][1])  # grey: equal channels
    expected = torch.from_numpy(np.asarray(split.train_images[2], dtype=np.float32)) / 255 * 2 - 1
    torch.testing.assert_close(example["pixel_values"][0], expected)
    assert example["labels"] == int(split.train_labels[2])


def test_large_images_are_processed_on_access_not_cached():
    images = [Image.new("L", (8, 8), 255)] * 3
    dataset = ImageClassificationDataset(images, [1, 2, 3], digits_image_processor((32, 32)), max_cached_bytes=1000)
    assert dataset.pixel_values is None
    assert dataset[1]["pixel_values"].shape == (3, 32, 32) and dataset[1]["labels"] == 2


def test_images_and_labels_must_pair_up():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ImageClassificationDataset([Image.new("L", (8, 8))] * 3, [0, 1], digits_image_processor())
