"""scikit-learn's handwritten digits as an image-classification data set: PIL images, a fixed split, tensors.

The 1,797 digits (UCI "optical recognition of handwritten digits": 8x8 scans of 16 grey levels) ship inside
scikit-learn, so the demo trains offline on real data. They become ordinary greyscale PIL images (light ink on
a dark background, like MNIST) and go through the same image processor for training as `pipeline(...)` uses for
inference, so what the model learns is exactly what it is later asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import BaseImageProcessor
from transformers.utils import is_torchvision_available

NUM_HELD_OUT = 360
DIGIT_SIZE = (8, 8)
LABELS = {index: str(index) for index in range(10)}


def load_digit_images() -> tuple[list[Image.Image], np.ndarray]:
    """All 1,797 digits as 8x8 greyscale PIL images, and their labels 0-9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "The demo trains on the handwritten digits that ship with scikit-learn, which is not installed. "
            "It is a dependency of perceiver-hf; install it with: pip install scikit-learn"
        ) from error
    digits = load_digits()
    # Grey levels 0..16 (ink intensity) -> 0..255.
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return [Image.fromarray(image) for image in pixels], digits.target.astype(np.int64)


@dataclass
class DigitsSplit:
    train_images: list[Image.Image]
    train_labels: np.ndarray
    held_out_images: list[Image.Image]
    held_out_labels: np.ndarray


def split_digits(num_held_out: int = NUM_HELD_OUT, seed: int = 0) -> DigitsSplit:
    """A fixed split, stratified by class: `num_held_out` digits (35-37 per class by default) are never trained on."""
    images, labels = load_digit_images()
    if not 10 <= num_held_out <= len(images) - 10:
        raise ValueError(f"num_held_out must be between 10 and {len(images) - 10}, got {num_held_out}.")
    from sklearn.model_selection import train_test_split

    train, held_out = train_test_split(
        np.arange(len(images)), test_size=num_held_out, stratify=labels, random_state=seed
    )
    return DigitsSplit(
        train_images=[images[i] for i in train],
        train_labels=labels[train],
        held_out_images=[images[i] for i in held_out],
        held_out_labels=labels[held_out],
    )


def digits_image_processor(
    size: tuple[int, int] = DIGIT_SIZE,
    image_mean: Sequence[float] = (0.5, 0.5, 0.5),
    image_std: Sequence[float] = (0.5, 0.5, 0.5),
) -> BaseImageProcessor:
    """transformers' `PerceiverImageProcessor` set up for digits: no center crop (it would cut into the digit),
    a resize to the model's input size (the identity for 8x8 models), then normalisation.

    The pipeline hands images over as RGB, so the processor outputs three (equal) channels.
    """
    if is_torchvision_available():
        from transformers import PerceiverImageProcessor as processor_class
    else:  # the same processor on PIL; it saves itself as `PerceiverImageProcessor` all the same
        from transformers import PerceiverImageProcessorPil as processor_class
    return processor_class(
        do_center_crop=False,
        size={"height": int(size[0]), "width": int(size[1])},
        image_mean=list(image_mean),
        image_std=list(image_std),
    )


class ImageClassificationDataset(torch.utils.data.Dataset):
    """Labelled PIL images, turned into `{"pixel_values", "labels"}` examples by an image processor.

    Small images are processed once up front; large ones (e.g. digits resized for a 224x224 ImageNet model, 600 KB
    each) on access, so the data set never holds more than `max_cached_bytes` of pixels.
    """

    def __init__(
        self,
        images: Sequence[Image.Image],
        labels: Sequence[int],
        image_processor: BaseImageProcessor,
        max_cached_bytes: int = 256 * 2**20,
    ):
        if len(images) != len(labels):
            raise ValueError(f"Got {len(images)} images but {len(labels)} labels; they must pair up one to one.")
        self.images = [image.convert("RGB") for image in images]
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.image_processor = image_processor
        size = image_processor.size
        example_bytes = 3 * size["height"] * size["width"] * 4
        self.pixel_values = self._process(self.images) if example_bytes * len(images) <= max_cached_bytes else None

    def _process(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_processor(list(images), return_tensors="pt").pixel_values

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.pixel_values is not None:
            pixel_values = self.pixel_values[index]
        else:
            pixel_values = self._process([self.images[index]])[0]
        return {"pixel_values": pixel_values, "labels": self.labels[index]}
