"""PerceiverIOVideoAutoencodingProcessor: frames and audio in every common form -> model inputs, with checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from perceiver_hf import PerceiverIOConfig, PerceiverIOVideoAutoencodingProcessor


def processor(**kwargs) -> PerceiverIOVideoAutoencodingProcessor:
    options = dict(num_frames=3, frame_size={"height": 8, "width": 12}, audio_samples_per_frame=4, num_labels=5)
    return PerceiverIOVideoAutoencodingProcessor(**{**options, **kwargs})


def test_frames_audio_and_label_are_packed():
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 8, 12, 3), dtype=np.uint8)
    audio = np.linspace(-1, 1, 12, dtype=np.float32)
    inputs = processor()(frames, audio=audio)["inputs"]
    assert inputs["image"].shape == (1, 3, 3, 8, 12) and inputs["image"].dtype == torch.float32
    torch.testing.assert_close(inputs["image"][0].permute(0, 2, 3, 1), torch.from_numpy(frames / 255).float())
    torch.testing.assert_close(inputs["audio"][0, :, 0], torch.from_numpy(audio))
    assert torch.equal(inputs["label"], torch.zeros(1, 5))


def test_every_frame_form_gives_the_same_inputs():
    frames = np.random.default_rng(1).integers(0, 256, size=(3, 8, 12, 3), dtype=np.uint8)
    reference = processor()(frames)["inputs"]["image"]
    forms = [
        [Image.fromarray(frame) for frame in frames],  # PIL images
        frames.astype(np.float32) / 255,  # floats in [0, 1]
        torch.from_numpy(frames).permute(0, 3, 1, 2),  # channels-first
        frames[None],  # a batch of one clip
    ]
    for form in forms:
        torch.testing.assert_close(processor()(form)["inputs"]["image"], reference)


def test_frames_are_center_cropped_and_resized_like_the_colab():
    # A 16x32 frame: the center 16x24 (the model's 2:3 aspect) is kept, then resized to 8x12.
    frame = np.zeros((16, 32, 3), dtype=np.uint8)
    frame[:, 4:28] = 255
    image = processor()([frame] * 3)["inputs"]["image"]
    assert image.shape == (1, 3, 3, 8, 12)
    torch.testing.assert_close(image, torch.ones_like(image))


def test_batches_and_int16_stereo_audio():
    clips = [np.zeros((3, 8, 12, 3), dtype=np.uint8), np.full((3, 8, 12, 3), 255, dtype=np.uint8)]
    stereo = np.stack([np.full(12, 16384, dtype=np.int16), np.zeros(12, dtype=np.int16)], axis=1)
    inputs = processor()(clips, audio=[stereo, None])["inputs"]
    assert inputs["image"].shape == (2, 3, 3, 8, 12)
    torch.testing.assert_close(inputs["audio"][0], torch.full((12, 1), 0.5))  # the first channel, scaled
    torch.testing.assert_close(inputs["audio"][1], torch.zeros(12, 1))  # no audio: silence


@pytest.mark.parametrize(
    "frames, audio, message",
    [
        (np.zeros((2, 8, 12, 3), np.uint8), None, r"exactly 3 frames, got 2.*frames\[:3\]"),
        ([np.zeros((8, 12, 3), np.uint8), np.zeros((9, 12, 3), np.uint8), np.zeros((8, 12, 3), np.uint8)], None, "same size"),
        (np.full((3, 8, 12, 3), 2.0, np.float32), None, r"float frames must lie in \[0, 1\]"),
        (np.zeros((3, 8, 12, 3), np.int32), None, "uint8"),
        (np.zeros((3, 8, 12, 5), np.uint8), None, "RGB"),
        (np.zeros((3, 8, 12, 3), np.uint8), np.zeros(11, np.float32), r"takes 12 audio samples.*got 11"),
        (np.zeros((3, 8, 12, 3), np.uint8), np.full(12, 3.0, np.float32), r"\[-1, 1\]"),
        ("clip.gif", None, "list of PIL images"),
    ],
)
def test_bad_clips_are_named(frames, audio, message):
    with pytest.raises(ValueError, match=message):
        processor()(frames, audio=audio)


def test_exact_size_is_required_without_resizing():
    with pytest.raises(ValueError, match="frames are 16x24 but the model takes 8x12"):
        processor(do_resize=False)(np.zeros((3, 16, 24, 3), np.uint8))


def test_saved_with_the_model_and_derived_from_its_config(tmp_path):
    config = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=3, image_size=(8, 12), audio_samples_per_frame=4, samples_per_patch=4, num_labels=5
    )
    derived = PerceiverIOVideoAutoencodingProcessor.from_model_config(config)
    assert (derived.num_frames, derived.frame_size, derived.num_audio_samples, derived.num_labels) == (
        3,
        {"height": 8, "width": 12},
        12,
        5,
    )
    derived.save_pretrained(tmp_path)
    reloaded = PerceiverIOVideoAutoencodingProcessor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == derived.to_dict()


def test_post_process_lays_out_frames_and_samples():
    reconstruction = {
        "image": torch.tensor([[[[[0.0]], [[0.5]], [[2.0]]]]]).expand(1, 3, 3, 8, 12),
        "audio": torch.full((1, 12, 1), -3.0),
        "label": torch.randn(1, 5),
    }
    decoded = processor().post_process(reconstruction)
    assert decoded["video"].shape == (1, 3, 8, 12, 3) and decoded["video"].dtype == np.uint8
    assert decoded["video"][0, 0, 0, 0].tolist() == [0, 128, 255]  # clipped to [0, 1], RGB last
    assert decoded["audio"].shape == (1, 12) and decoded["audio"].min() == -1.0
