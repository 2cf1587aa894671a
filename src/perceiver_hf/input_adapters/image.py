"""Images in, input array out: pixels, a 1x1 convolution or a conv stem, plus learned or Fourier positions.

Covers DeepMind's three ImageNet models: learned positions on conv1x1 features, Fourier positions on raw
pixels, and a conv stem (7x7/2 conv, batch norm, ReLU, 3x3/2 max-pool) with Fourier positions.
Images come channels-first, `(batch, channels, height, width)`, as transformers' image processors give them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..input_array import InputArray
from ..position import FourierPositionEncoding, TrainablePositionEncoding, build_position_encoding
from .base import InputAdapter, positioned_channels


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding for one dimension: the odd pixel goes at the end."""
    out = _ceil_div(size, stride)
    total = (out - 1) * stride + kernel - size
    if kernel < stride:  # otherwise the total is at least kernel - stride: no max() on symbolic sizes
        total = max(total, 0)
    return total // 2, total - total // 2


class ChannelsLastConv1x1(nn.Conv2d):
    """A 1x1 convolution applied to channels-last features, i.e. a linear map over channels.

    It keeps `nn.Conv2d`'s parameter shapes (so transformers' `convnet_1x1` weights load unchanged) but
    avoids the layout copies of a channels-first convolution on 50,176-pixel images.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(features, self.weight.flatten(1), self.bias)


class ConvStem(nn.Module):
    """DeepMind's `Conv2DDownsample`: downsamples 4x with a strided conv and a strided max-pool.

    `padding="tf_same"` pads as Haiku/TensorFlow's SAME does (asymmetric when the size requires it; the pool
    pads with -inf): DeepMind's checkpoints need it. `padding="transformers"` reproduces transformers'
    `PerceiverForImageClassificationConvProcessing`, which pads the conv by 3 on every side and the pool not
    at all (55x55 instead of 56x56 features for 224x224 images), so its checkpoints keep their outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "tf_same", use_batchnorm: bool = True):
        super().__init__()
        if padding not in ("tf_same", "transformers"):
            raise ValueError(f"conv padding must be 'tf_same' or 'transformers', got {padding!r}.")
        self.padding = padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, bias=False)
        self.batchnorm = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1) if use_batchnorm else nn.Identity()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if self.padding == "tf_same":
            return _ceil_div(_ceil_div(height, 2), 2), _ceil_div(_ceil_div(width, 2), 2)
        conv = ((height + 6 - 7) // 2 + 1, (width + 6 - 7) // 2 + 1)
        return (conv[0] - 3) // 2 + 1, (conv[1] - 3) // 2 + 1

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.padding == "tf_same":
            top, bottom = _tf_same_padding(pixel_values.shape[-2], 7, 2)
            left, right = _tf_same_padding(pixel_values.shape[-1], 7, 2)
            hidden = self.conv(nn.functional.pad(pixel_values, (left, right, top, bottom)))
        else:
            hidden = self.conv(nn.functional.pad(pixel_values, (3, 3, 3, 3)))
        hidden = torch.relu(self.batchnorm(hidden))
        if self.padding == "tf_same":
            top, bottom = _tf_same_padding(hidden.shape[-2], 3, 2)
            left, right = _tf_same_padding(hidden.shape[-1], 3, 2)
            hidden = nn.functional.pad(hidden, (left, right, top, bottom), value=float("-inf"))
        return nn.functional.max_pool2d(hidden, kernel_size=3, stride=2)


class ImageInputAdapter(InputAdapter):
    """Pixels, 1x1-conv features or conv-stem features of an image, with position encodings.

    Args:
        prep_type: `"pixels"`, `"conv1x1"` or `"conv"`.
        in_channels: channels of the input images.
        out_channels: channels after the 1x1 convolution or the conv stem.
        spatial_downsample: stride of the pixel subsampling / of the 1x1 convolution.
        position_encoding: config dict of the position encoding (see `perceiver_hf.position`).
        project_pos_dim: when positive, positions are linearly projected to this many channels.
        concat_or_add_pos: `"concat"` positions as extra channels or `"add"` them to the features.
        conv_padding, conv_use_batchnorm: conv-stem options (see `ConvStem`).
    """

    def __init__(
        self,
        prep_type: str = "conv",
        in_channels: int = 3,
        out_channels: int = 64,
        spatial_downsample: int = 1,
        position_encoding: dict | None = None,
        project_pos_dim: int = -1,
        concat_or_add_pos: str = "concat",
        conv_padding: str = "tf_same",
        conv_use_batchnorm: bool = True,
    ):
        super().__init__()
        if prep_type not in ("pixels", "conv1x1", "conv"):
            raise ValueError(f"Image prep_type must be 'pixels', 'conv1x1' or 'conv', got {prep_type!r}.")
        if prep_type == "conv" and spatial_downsample != 1:
            raise ValueError("The conv stem always downsamples by 4; set spatial_downsample=1 with prep_type='conv'.")
        self.prep_type = prep_type
        self.in_channels = in_channels
        self.spatial_downsample = spatial_downsample
        self.concat_or_add_pos = concat_or_add_pos

        if prep_type == "conv1x1":
            self.conv1x1 = ChannelsLastConv1x1(in_channels, out_channels)
        elif prep_type == "conv":
            self.conv_stem = ConvStem(in_channels, out_channels, conv_padding, conv_use_batchnorm)
        self.content_channels = in_channels if prep_type == "pixels" else out_channels

        if position_encoding is None:
            raise ValueError("An image input adapter needs a `position_encoding` config.")
        self.position_encoding = build_position_encoding(position_encoding)
        position_channels = self.position_encoding.num_channels
        if project_pos_dim and project_pos_dim > 0:
            self.position_projection = nn.Linear(position_channels, project_pos_dim)
            position_channels = project_pos_dim
        else:
            self.position_projection = None
        self.position_channels = position_channels
        self._num_channels = positioned_channels(self.content_channels, position_channels, concat_or_add_pos)

    @property
    def num_channels(self) -> int:
        return self._num_channels

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the feature map (and of the position grid) for an image of `height x width`."""
        if self.prep_type == "conv":
            return self.conv_stem.output_size(height, width)
        return _ceil_div(height, self.spatial_downsample), _ceil_div(width, self.spatial_downsample)

    def _check(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool) -> None:
        expected = f"(batch, {self.in_channels}, height, width)"
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"Expected pixel_values as a torch.Tensor of shape {expected}, got {type(pixel_values)}.")
        if pixel_values.ndim != 4:
            raise ValueError(
                f"Expected pixel_values of shape {expected}, got a rank-{pixel_values.ndim} tensor of shape "
                f"{tuple(pixel_values.shape)}."
            )
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"Expected floating-point pixel_values (normalised by the image processor), got dtype "
                f"{pixel_values.dtype} with shape {tuple(pixel_values.shape)}."
            )
        if pixel_values.shape[1] != self.in_channels:
            hint = " Images look channels-last: permute them to (batch, channels, height, width)." if (
                pixel_values.shape[-1] == self.in_channels
            ) else ""
            raise ValueError(
                f"Expected pixel_values of shape {expected} with {self.in_channels} channels, got shape "
                f"{tuple(pixel_values.shape)}.{hint}"
            )
        if min(pixel_values.shape[-2:]) < 1:
            raise ValueError(f"Expected images of at least 1x1 pixels, got pixel_values of shape {tuple(pixel_values.shape)}.")
        if isinstance(self.position_encoding, TrainablePositionEncoding) and not interpolate_pos_encoding:
            height, width = pixel_values.shape[-2:]
            if self.feature_size(height, width) != self.position_encoding.index_dims:
                trained = tuple(d * self.spatial_downsample for d in self.position_encoding.index_dims)
                raise ValueError(
                    f"This model's learned position encodings expect {trained[0]}x{trained[1]} images, got "
                    f"{height}x{width} (pixel_values shape {tuple(pixel_values.shape)}). Resize the images, or pass "
                    "`interpolate_pos_encoding=True` to interpolate the position encodings to the new size."
                )

    def forward(
        self,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs,
    ) -> InputArray:
        self._check(pixel_values, interpolate_pos_encoding)
        if self.prep_type == "conv":
            features = self.conv_stem(pixel_values).permute(0, 2, 3, 1)
        else:
            step = self.spatial_downsample
            features = pixel_values[:, :, ::step, ::step].permute(0, 2, 3, 1)
        batch_size, height, width, channels = features.shape
        content = features.reshape(batch_size, height * width, channels)
        # The 1x1 convolution runs on each block of rows as the encoder reads it: at 224x224 its 256-channel
        # output would be the largest tensor of the input side.
        projection = self.conv1x1 if self.prep_type == "conv1x1" else None

        if isinstance(self.position_encoding, FourierPositionEncoding):
            positions = self.position_encoding((height, width), device=content.device, dtype=content.dtype)
        else:
            positions = self.position_encoding((height, width), interpolate=interpolate_pos_encoding)
        if self.position_projection is not None:
            positions = self.position_projection(positions)
        return InputArray(
            content,
            positions[None].to(content.dtype),
            combine=self.concat_or_add_pos,
            attention_mask=attention_mask,
            content_projection=projection,
        )
