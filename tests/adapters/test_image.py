"""The image input adapter: DeepMind's three preprocessings, and clear errors for bad images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perceiver_hf import PerceiverIOConfig, PerceiverIOForImageClassification
from perceiver_hf.input_adapters.image import ChannelsLastConv1x1, ConvStem, ImageInputAdapter
from perceiver_hf.presets import imagenet_adapter_config
from tests.helpers import perturb_


def adapter(variant: str, image_size=(224, 224)) -> ImageInputAdapter:
    spec = imagenet_adapter_config(variant, image_size)
    spec.pop("type")
    return ImageInputAdapter(**spec).eval()


@pytest.mark.parametrize("variant, channels", [("learned", 512), ("fourier", 261), ("conv", 322)])
def test_official_adapters_have_deepmind_channel_counts(variant, channels):
    assert adapter(variant).num_channels == channels  # the C_in of DeepMind's ImageNet models


@pytest.mark.parametrize("size, tf_same, transformers", [((224, 224), (56, 56), (55, 55)), ((16, 18), (4, 5), (3, 4))])
def test_conv_stem_padding(size, tf_same, transformers):
    pixels = torch.randn(1, 3, *size)
    for padding, expected in (("tf_same", tf_same), ("transformers", transformers)):
        stem = ConvStem(3, 8, padding=padding).eval()
        assert stem(pixels).shape[-2:] == expected == stem.output_size(*size)


def test_tf_same_padding_puts_the_odd_pixel_at_the_end():
    stem = ConvStem(1, 1, padding="tf_same", use_batchnorm=False).eval()
    with torch.no_grad():
        stem.conv.weight.zero_()
        stem.conv.weight[0, 0, 0, 0] = 1.0  # the output picks the top-left tap of each 7x7 window
    image = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 1, 16, 16)
    # 16 -> 8 with stride 2 needs 5 pixels of padding: 2 before, 3 after, so window 0 starts at -2.
    conv = stem.conv(torch.nn.functional.pad(image, (2, 3, 2, 3)))
    assert conv[0, 0, 1, 1] == image[0, 0, 0, 0]


def test_channels_last_conv1x1_equals_a_convolution():
    layer = perturb_(ChannelsLastConv1x1(3, 5))
    pixels = torch.randn(2, 3, 6, 7)
    expected = torch.nn.functional.conv2d(pixels, layer.weight, layer.bias)
    torch.testing.assert_close(layer(pixels.permute(0, 2, 3, 1)), expected.permute(0, 2, 3, 1))


def test_positions_are_kept_apart_from_the_pixels():
    array = adapter("fourier", (8, 10))(torch.randn(2, 3, 8, 10))
    assert array.content.shape == (2, 80, 3) and array.positions.shape == (1, 80, 258)
    assert array.materialize().shape == (2, 80, 261)


@pytest.fixture(scope="module")
def learned_model():
    config = PerceiverIOConfig.for_image_classification(
        "learned", image_size=16, num_labels=3, num_latents=4, d_latents=16, num_blocks=1,
        num_self_attends_per_block=1, num_self_attention_heads=2,
    )
    return PerceiverIOForImageClassification(config).eval()


@pytest.mark.parametrize(
    "pixel_values, message",
    [
        (torch.randn(2, 1, 16, 16), r"with 3 channels, got shape \(2, 1, 16, 16\)"),
        (torch.randn(2, 16, 16, 3), r"got shape \(2, 16, 16, 3\)\. Images look channels-last"),
        (torch.randn(3, 16, 16), r"shape \(batch, 3, height, width\), got a rank-3 tensor of shape \(3, 16, 16\)"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), r"floating-point pixel_values .* got dtype torch.uint8"),
        (torch.randn(2, 3, 20, 24), r"expect 16x16 images, got 20x24 .*interpolate_pos_encoding=True"),
        (np.zeros((2, 3, 16, 16), dtype=np.float32), r"as a torch.Tensor of shape \(batch, 3, height, width\)"),
    ],
)
def test_bad_images_get_a_clear_error(learned_model, pixel_values, message):
    with pytest.raises(ValueError, match=message):
        learned_model(pixel_values=pixel_values)


def test_inputs_and_pixel_values_are_exclusive(learned_model):
    with pytest.raises(ValueError, match="You cannot use both `inputs` and `pixel_values`"):
        learned_model(inputs=torch.randn(1, 3, 16, 16), pixel_values=torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="You have to specify `pixel_values`"):
        learned_model()
