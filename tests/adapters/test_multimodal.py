"""Audio patches, video patches, one-hot labels, and their packing into one multimodal input array."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf.input_adapters import (
    AudioInputAdapter,
    MultimodalInputAdapter,
    OneHotInputAdapter,
    VideoPatchesInputAdapter,
    space_to_depth,
)
from perceiver_hf.position import FourierPositionEncoding
from perceiver_hf.presets import fourier_position_encoding


def video_adapter(bands: int = 3) -> VideoPatchesInputAdapter:
    return VideoPatchesInputAdapter(3, 4, 1, fourier_position_encoding(bands, (2, 3, 3)))


def audio_adapter(bands: int = 5) -> AudioInputAdapter:
    return AudioInputAdapter(4, fourier_position_encoding(bands, (24,)))


def test_space_to_depth_orders_block_channels_as_deepmind():
    # DeepMind: b (t dt) (h dh) (w dw) c -> b t h w (dt dh dw c), on channels-last frames.
    frames = torch.arange(2 * 4 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 4, 3, 4, 6)  # (B, T, C, H, W)
    patches = space_to_depth(frames, temporal_block_size=2, spatial_block_size=2)
    assert patches.shape == (2, 2, 2, 3, 2 * 2 * 2 * 3)
    channels_last = frames.permute(0, 1, 3, 4, 2)
    b, t, h, w = 1, 1, 0, 2
    expected = channels_last[b, 2 * t : 2 * t + 2, 2 * h : 2 * h + 2, 2 * w : 2 * w + 2].reshape(-1)
    torch.testing.assert_close(patches[b, t, h, w], expected)


def test_video_patches_with_grid_positions():
    adapter = video_adapter()
    video = torch.rand(2, 2, 3, 12, 12)
    array = adapter(video)
    assert array.length == 2 * 3 * 3 and array.num_channels == adapter.num_channels == 48 + 21
    rows = array.materialize()
    torch.testing.assert_close(rows[:, :, :48], space_to_depth(video, 1, 4).reshape(2, 18, 48))
    grid = FourierPositionEncoding(3, (2, 3, 3))((2, 3, 3))
    torch.testing.assert_close(rows[1, :, 48:], grid)


def test_audio_patches_with_positions():
    adapter = audio_adapter()
    audio = torch.rand(2, 24, 1)
    rows = adapter(audio).materialize()
    assert rows.shape == (2, 6, 4 + 11)
    torch.testing.assert_close(rows[:, :, :4], audio.reshape(2, 6, 4))
    torch.testing.assert_close(adapter(audio[..., 0]).materialize(), rows)  # (batch, samples) is accepted too


def multimodal_adapter(**kwargs) -> MultimodalInputAdapter:
    modalities = {"label": OneHotInputAdapter(5), "image": video_adapter(), "audio": audio_adapter()}
    return MultimodalInputAdapter(modalities, **{"min_padding_size": 4, **kwargs})


def test_modalities_are_padded_and_stacked_in_sorted_order():
    adapter = multimodal_adapter(mask_probs={"label": 1.0})
    inputs = {"image": torch.rand(2, 2, 3, 12, 12), "audio": torch.rand(2, 24, 1), "label": torch.ones(2, 5)}
    array = adapter(inputs)
    assert list(array.modality_sizes.items()) == [("audio", 6), ("image", 18), ("label", 1)]
    assert adapter.num_channels == max(15, 69, 5) + 4
    rows = array.materialize()
    audio, image, label = rows[:, :6], rows[:, 6:24], rows[:, 24:]
    torch.testing.assert_close(audio[..., :15], adapter.modalities["audio"](inputs["audio"]).materialize())
    torch.testing.assert_close(audio[..., 15:], adapter.padding["audio"]().expand(2, 6, -1))
    torch.testing.assert_close(image[..., 69:], adapter.padding["image"]().expand(2, 18, -1))
    # The label is always masked: its row is the mask token, whatever the label input says.
    torch.testing.assert_close(label, adapter.mask_tokens["label"]().expand(2, 1, -1))


def test_partial_masking_replaces_rows_by_the_mask_token():
    adapter = multimodal_adapter(mask_probs={"image": 0.5, "label": 0.0})
    inputs = {"image": torch.rand(4, 2, 3, 12, 12), "audio": torch.rand(4, 24, 1), "label": torch.zeros(4, 5)}
    image = adapter(inputs).materialize()[:, 6:24]
    is_mask = torch.isclose(image, adapter.mask_tokens["image"]().expand_as(image)).all(-1)
    assert 0 < is_mask.float().mean() < 1
    unmasked = adapter(inputs).materialize()  # another draw: rows that differ are masked in one of the draws
    assert not torch.equal(unmasked[:, 6:24], image)


def test_every_parameter_gets_a_gradient_even_unused_mask_tokens():
    # DeepMind's masking: audio and image never (probability 0), the label always. The unused tokens still get a
    # (zero) gradient, so DDP runs with find_unused_parameters=False; the packed array is unchanged by them.
    adapter = multimodal_adapter(mask_probs={"audio": 0.0, "image": 0.0, "label": 1.0})
    inputs = {"image": torch.rand(2, 2, 3, 12, 12), "audio": torch.rand(2, 24, 1), "label": torch.zeros(2, 5)}
    array = adapter(inputs).materialize()
    array.square().sum().backward()
    assert all(p.grad is not None for p in adapter.parameters())
    assert not adapter.mask_tokens["audio"].position_embeddings.grad.any()
    torch.testing.assert_close(array[:, :6, :15], adapter.modalities["audio"](inputs["audio"]).materialize(), rtol=0, atol=0)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (torch.rand(2, 3), "dict of modalities"),
        ({"image": torch.rand(2, 2, 3, 12, 12), "audio": torch.rand(2, 24, 1)}, r"modalities \['audio', 'image', 'label'\]"),
        ({"image": torch.rand(2, 2, 12, 12, 3), "audio": torch.rand(2, 24, 1), "label": torch.zeros(2, 5)}, "channels-last"),
        ({"image": torch.rand(2, 2, 3, 13, 12), "audio": torch.rand(2, 24, 1), "label": torch.zeros(2, 5)}, "not divisible by the 4x4"),
        ({"image": torch.rand(2, 2, 3, 12, 12), "audio": torch.rand(2, 23, 1), "label": torch.zeros(2, 5)}, "multiple of samples_per_patch"),
        ({"image": torch.rand(2, 2, 3, 12, 12), "audio": torch.rand(2, 24, 2), "label": torch.zeros(2, 5)}, "mono waveform"),
        ({"image": torch.rand(2, 2, 3, 12, 12), "audio": torch.rand(2, 24, 1), "label": torch.zeros(2, 7)}, r"\(batch, 5\)"),
        ({"image": torch.rand(3, 2, 3, 12, 12), "audio": torch.rand(2, 24, 1), "label": torch.zeros(2, 5)}, "same batch size"),
    ],
)
def test_bad_inputs_are_named(inputs, message):
    with pytest.raises(ValueError, match=message):
        multimodal_adapter()(inputs)


def test_mask_probabilities_are_checked():
    with pytest.raises(ValueError, match="not among"):
        multimodal_adapter(mask_probs={"video": 1.0})
    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        multimodal_adapter(mask_probs={"label": 2.0})
