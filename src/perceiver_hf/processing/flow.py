"""Two RGB frames in, optical-flow model inputs out, as DeepMind's optical-flow colab prepares them.

Frames are normalised to [-1, 1] (`x / 255 * 2 - 1`), zero-padded by one pixel and cut into a 3x3 patch around
every pixel, channels ordered `(patch row, patch column, RGB)`: `(batch, 2, 27, height, width)`, the layout of
transformers' `PerceiverForOpticalFlow`. The model was trained on 368x496 crops; frames of other sizes are
covered with overlapping tiles of that size (`tile_grid`) whose flows are blended with `tile_weights`, as the
colab does, or padded when smaller (see the `optical-flow` pipeline).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_base import ImageProcessingMixin


def _frame_to_tensor(frame, index: int) -> torch.Tensor:
    """One frame (PIL image, `(H, W, 3)` or `(3, H, W)` RGB or `(H, W)` grayscale array/tensor, values in [0, 255])
    -> `(3, H, W)` float. Grayscale repeats its one channel three times, as PIL's `convert("RGB")` does."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(frame, Image.Image):
        if frame.mode not in ("RGB", "L", "P", "RGBA"):
            raise ValueError(f"Frame {index} is a PIL image in mode {frame.mode!r}; convert it to RGB.")
        if frame.mode == "RGBA":
            raise ValueError(f"Frame {index} is an RGBA image (4 channels); expected RGB. Use `image.convert('RGB')`.")
        frame = np.asarray(frame.convert("RGB"))
    if isinstance(frame, np.ndarray):
        frame = torch.from_numpy(np.require(frame, requirements=["C", "W"]))  # a copy only when read-only or strided
    if not isinstance(frame, torch.Tensor):
        raise ValueError(
            f"Frame {index} is a {type(frame).__name__}; expected a PIL image or an (height, width, 3) array."
        )
    if frame.ndim == 2:
        frame = frame[:, :, None].expand(-1, -1, 3)
    if frame.ndim != 3:
        raise ValueError(
            f"Frame {index} has shape {tuple(frame.shape)}; expected one RGB image of shape (height, width, 3) "
            "(or (3, height, width)) or a grayscale one of shape (height, width). A batch of frame pairs goes in as "
            "a list of pairs."
        )
    if frame.shape[-1] == 3:
        frame = frame.permute(2, 0, 1)
    elif frame.shape[0] != 3:
        channels = frame.shape[-1] if frame.shape[-1] <= 4 else frame.shape[0]
        raise ValueError(
            f"Frame {index} has shape {tuple(frame.shape)}: {channels} channel(s), expected 3 (RGB) as (height, width, "
            "3) or (3, height, width), or a grayscale (height, width) array. Convert RGBA frames to RGB first."
        )
    if frame.dtype == torch.bool or frame.is_complex():
        raise ValueError(f"Frame {index} has dtype {frame.dtype}; expected uint8 or float pixel values in [0, 255].")
    return frame.float()


def _is_frame(item) -> bool:
    return not isinstance(item, (list, tuple)) and not (
        isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 4
    )


def tile_grid(size: Sequence[int], tile_size: Sequence[int], min_overlap: int = 20) -> Counter:
    """Top-left corners of the tiles covering a `size` frame, each with how often DeepMind's colab visits it.

    Tiles start every `tile - min_overlap` pixels and the last one is moved flush with the border, as the colab's
    `compute_grid_indices` does; that can list a corner twice (always for a frame exactly the tile size), which
    doubles its weight in the blend. The counts keep that weighting while each distinct tile runs once.
    Where the colab's next-to-last tile would reach past the border (sizes just above a multiple of the stride,
    e.g. widths of 953 to 971 pixels, on which the colab fails), it is moved flush with the border too.
    """
    height, width = size
    tile_height, tile_width = tile_size
    if min_overlap >= tile_height or min_overlap >= tile_width:
        raise ValueError(f"min_overlap ({min_overlap}) must be smaller than the tile size {tuple(tile_size)}.")
    if height < tile_height or width < tile_width:
        raise ValueError(f"A {height}x{width} frame is smaller than the {tile_height}x{tile_width} tiles; pad it first.")
    ys = list(range(0, height, tile_height - min_overlap))
    xs = list(range(0, width, tile_width - min_overlap))
    ys = [min(y, height - tile_height) for y in ys[:-1]] + [height - tile_height]
    xs = [min(x, width - tile_width) for x in xs[:-1]] + [width - tile_width]
    return Counter((y, x) for y in ys for x in xs)


def tile_weights(tile_size: Sequence[int]) -> torch.Tensor:
    """Blending weights `min(x + 1, W - x, y + 1, H - y)` of a tile: highest in the middle, 1 at the border."""
    height, width = tile_size
    ys = torch.arange(height, dtype=torch.float32)
    xs = torch.arange(width, dtype=torch.float32)
    weight_y = torch.minimum(ys + 1, height - ys)[:, None]
    weight_x = torch.minimum(xs + 1, width - xs)[None, :]
    return torch.minimum(weight_y, weight_x)


class PerceiverIOFlowProcessor(ImageProcessingMixin):
    r"""
    Turns pairs of RGB frames into the inputs of `PerceiverIOForOpticalFlow` (and transformers'
    `PerceiverForOpticalFlow`).

    Args:
        patch_size (`int`, defaults to 3): side of the square patch extracted around every pixel.
        tile_size (`tuple[int, int]`, defaults to `(368, 496)`): the training resolution; the `optical-flow`
            pipeline covers larger frames with tiles of this size and pads smaller ones to it.
        min_overlap (`int`, defaults to 20): minimum overlap between neighbouring tiles.
        pad_mode (`str`, defaults to `"replicate"`): how frames smaller than a tile are padded (`"replicate"`,
            `"reflect"` or `"constant"`, i.e. mid-grey).
    """

    model_input_names = ["inputs"]

    def __init__(
        self,
        patch_size: int = 3,
        tile_size: Sequence[int] = (368, 496),
        min_overlap: int = 20,
        pad_mode: str = "replicate",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd number, got {patch_size}.")
        if pad_mode not in ("replicate", "reflect", "constant"):
            raise ValueError(f"pad_mode must be 'replicate', 'reflect' or 'constant', got {pad_mode!r}.")
        self.patch_size = int(patch_size)
        self.tile_size = [int(d) for d in tile_size]
        self.min_overlap = int(min_overlap)
        self.pad_mode = pad_mode
        tile_grid(self.tile_size, self.tile_size, self.min_overlap)  # validates the overlap

    def normalize_pair(self, frames) -> torch.Tensor:
        """Two frames (PIL images or arrays, values in [0, 255]) -> `(2, 3, height, width)` in [-1, 1]."""
        if isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim == 4:
            frames = list(frames)
        if not isinstance(frames, (list, tuple)) or not all(_is_frame(frame) for frame in frames):
            raise ValueError(
                f"Expected a pair of frames (a list or tuple of two images, or an array of shape (2, height, width, "
                f"3)), got {type(frames).__name__}."
            )
        if len(frames) != 2:
            raise ValueError(
                f"Optical flow needs exactly two frames (first, second), got {len(frames)}. Pass [frame_1, frame_2]."
            )
        first, second = (_frame_to_tensor(frame, index) for index, frame in enumerate(frames))
        if first.shape != second.shape:
            raise ValueError(
                f"Both frames must have the same size, got {tuple(first.shape[1:])} and {tuple(second.shape[1:])} "
                "(height, width). Resize or crop them to a common size."
            )
        if min(first.shape[-2:]) < 1:
            raise ValueError(f"Frames must have at least 1x1 pixels, got frames of {tuple(first.shape[-2:])} (height, width).")
        return torch.stack([first, second]) / 255.0 * 2 - 1

    def extract_patches(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames `(..., 3, H, W)` -> the `patch_size**2 * 3` values around every pixel, `(..., 27, H, W)`.

        Borders are zero-padded; channels are ordered `(patch row, patch column, colour)`, as DeepMind's
        `patches_for_flow` orders them.
        """
        leading, (channels, height, width) = frames.shape[:-3], frames.shape[-3:]
        size = self.patch_size
        patches = torch.nn.functional.unfold(
            frames.reshape(-1, channels, height, width), kernel_size=size, padding=size // 2
        )  # (N, channels * size * size, H * W), ordered (c, ph, pw)
        patches = patches.view(-1, channels, size * size, height, width).transpose(1, 2)  # -> (ph, pw, c)
        return patches.reshape(*leading, size * size * channels, height, width)

    def pad_to_tile(self, frames: torch.Tensor) -> torch.Tensor:
        """Pad normalised frames `(..., 3, H, W)` at the bottom and right up to at least the tile size."""
        height, width = frames.shape[-2:]
        pad_height = max(self.tile_size[0] - height, 0)
        pad_width = max(self.tile_size[1] - width, 0)
        if not pad_height and not pad_width:
            return frames
        leading = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        if self.pad_mode == "reflect" and (pad_height >= height or pad_width >= width):
            raise ValueError(
                f"Reflect padding cannot grow a {height}x{width} frame to {self.tile_size}; use pad_mode='replicate'."
            )
        padded = torch.nn.functional.pad(flat, (0, pad_width, 0, pad_height), mode=self.pad_mode)
        return padded.reshape(*leading, *padded.shape[-3:])

    def tiles(self, size: Sequence[int], min_overlap: int | None = None) -> Counter:
        """The tiles the `optical-flow` pipeline runs the model on for frames of `size` (height, width): `tile_grid`
        over the frames padded up to the tile size. Each distinct tile is one forward pass."""
        padded = [max(int(dim), tile) for dim, tile in zip(size, self.tile_size)]
        return tile_grid(padded, self.tile_size, self.min_overlap if min_overlap is None else min_overlap)

    def __call__(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """`images`: one pair of frames or a list of pairs (all of one size). Returns `BatchFeature` with `inputs`
        of shape `(batch, 2, 27, height, width)`."""
        return self.preprocess(images, return_tensors=return_tensors)

    def preprocess(self, images, return_tensors: str | None = "pt") -> BatchFeature:
        is_batch = isinstance(images, (list, tuple)) and len(images) > 0 and not _is_frame(images[0])
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 5:
            pairs, is_batch = list(images), True
        else:
            pairs = list(images) if is_batch else [images]
        normalized = [self.normalize_pair(pair) for pair in pairs]
        sizes = {tuple(pair.shape[-2:]) for pair in normalized}
        if len(sizes) > 1:
            raise ValueError(f"All frame pairs of a batch must have one size, got sizes {sorted(sizes)}.")
        inputs = self.extract_patches(torch.stack(normalized))
        data = {"inputs": inputs if return_tensors == "pt" else inputs.numpy()}
        return BatchFeature(data=data, tensor_type=None)


__all__ = ["PerceiverIOFlowProcessor", "tile_grid", "tile_weights"]
