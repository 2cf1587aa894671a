"""`pipeline("video-autoencoding")` on a real short clip: the animated GIF that ships with scikit-image."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import perceiver_hf  # noqa: F401  (registers the task)
from perceiver_hf import PerceiverIOConfig, PerceiverIOForMultimodalAutoencoding, PerceiverIOVideoAutoencodingProcessor
from perceiver_hf.pipelines.video_autoencoding import read_video

skimage = pytest.importorskip("skimage")
CLIP = Path(skimage.__file__).parent / "data" / "no_time_for_that_tiny.gif"  # 24 frames of 25x14 pixels
CLASSES = ["waving hand", "yawning", "zumba", "yoga", "winking", "writing"]


def save_model(folder: Path, with_processor: bool = True) -> PerceiverIOForMultimodalAutoencoding:
    config = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=4,
        image_size=(16, 16),
        audio_samples_per_frame=32,
        samples_per_patch=8,
        num_latents=8,
        d_latents=32,
        num_self_attends_per_block=1,
        num_self_attention_heads=4,
        image_num_bands=4,
        audio_num_bands=4,
        label_query_channels=16,
        decoder_output_channels=16,
        decoder_chunk_size=100,
        id2label=dict(enumerate(CLASSES)),
    )
    torch.manual_seed(0)
    model = PerceiverIOForMultimodalAutoencoding(config).eval()
    model.save_pretrained(folder)
    if with_processor:
        PerceiverIOVideoAutoencodingProcessor.from_model_config(config).save_pretrained(folder)
    return model


def test_gif_is_reconstructed_end_to_end_and_saved_beside_it(tmp_path):
    model = save_model(tmp_path / "model")
    clip = shutil.copy(CLIP, tmp_path / "clip.gif")
    waveform = (0.5 * np.sin(np.arange(128) / 3)).astype(np.float32)
    autoencoder = pipeline("video-autoencoding", model=str(tmp_path / "model"))
    result = autoencoder(clip, audio=waveform, start_frame=2, top_k=3, save=True)

    assert result["video"].shape == (4, 16, 16, 3) and result["video"].dtype == np.uint8
    assert result["audio"].shape == (128,)
    assert len(result["labels"]) == 3 and {label["label"] for label in result["labels"]} <= set(CLASSES)
    assert sum(label["score"] for label in result["labels"]) <= 1.0

    # The pipeline's reconstruction is the model's, on the processor's inputs.
    frames, _ = read_video(CLIP)
    inputs = PerceiverIOVideoAutoencodingProcessor.from_pretrained(tmp_path / "model")(frames[2:6], audio=waveform)
    expected = model.reconstruct(**inputs)
    torch.testing.assert_close(result["label_logits"], expected["label"][0])
    np.testing.assert_allclose(result["audio"], expected["audio"][0, :, 0].clamp(-1, 1).numpy(), atol=1e-6)

    gif, wav = tmp_path / "clip.reconstruction.gif", tmp_path / "clip.reconstruction.wav"
    assert result["saved"] == [gif, wav]
    with Image.open(gif) as saved:
        assert saved.n_frames == 4 and saved.size == (32, 16)  # input | reconstruction
    with wave.open(str(wav)) as audio:
        assert (audio.getframerate(), audio.getnframes(), audio.getnchannels()) == (48000, 128, 1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.gif", "clip.reconstruction.gif", "clip.reconstruction.wav", "model"]


def test_frames_in_memory_and_a_folder_without_processor_file(tmp_path):
    save_model(tmp_path, with_processor=False)
    autoencoder = pipeline("video-autoencoding", model=str(tmp_path))
    frames, _ = read_video(CLIP)
    as_images = autoencoder([Image.fromarray(frame) for frame in frames[:4]], progress=False)
    as_array = autoencoder({"video": np.stack(frames[:4])}, progress=False)
    np.testing.assert_array_equal(as_images["video"], as_array["video"])
    # An animated PNG, side by side with the input (an untrained model may reconstruct identical frames, which
    # the APNG encoder merges).
    saved = autoencoder(np.stack(frames[:4]), save=tmp_path / "out" / "reconstruction.png")["saved"]
    with Image.open(saved[0]) as image:
        assert image.n_frames == 4 and image.size == (32, 16)
    saved = autoencoder(np.stack(frames[:4]), save=tmp_path / "alone.gif", comparison=False)["saved"]
    with Image.open(saved[0]) as image:
        assert image.size == (16, 16)


def test_bad_requests_are_named(tmp_path):
    save_model(tmp_path)
    autoencoder = pipeline("video-autoencoding", model=str(tmp_path))
    with pytest.raises(ValueError, match=r"start_frame must lie in \[0, 20\] \(got 22\)"):
        autoencoder(str(CLIP), start_frame=22)
    with pytest.raises(ValueError, match="too short"):
        autoencoder({"video": read_video(CLIP)[0][:3]})
    with pytest.raises(ValueError, match="save='path/out.gif'"):
        autoencoder(np.zeros((4, 16, 16, 3), np.uint8), save=True)
    with pytest.raises(ValueError, match="does not exist"):
        autoencoder(str(tmp_path / "missing.gif"))


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_saved_files_get_the_users_umask(tmp_path, umask_022):
    save_model(tmp_path / "model")
    autoencoder = pipeline("video-autoencoding", model=str(tmp_path / "model"))
    clip = shutil.copy(CLIP, tmp_path / "clip.gif")
    saved = autoencoder(clip, audio=np.zeros(128, np.float32), save=True, progress=False)["saved"]
    assert [stat.S_IMODE(path.stat().st_mode) for path in saved] == [0o644, 0o644]  # not mkstemp's 0o600


def test_a_video_extension_without_a_video_backend_names_the_package_to_install(tmp_path, monkeypatch):
    save_model(tmp_path)
    autoencoder = pipeline("video-autoencoding", model=str(tmp_path))
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed (imageio is, via scikit-image)
    with pytest.raises(ValueError, match=r"Writing \.mp4 videos needs imageio with its PyAV plugin: `pip install av`"):
        autoencoder(np.stack(read_video(CLIP)[0][:4]), save=tmp_path / "clip.mp4", progress=False)
    with pytest.raises(ValueError, match=r"Reading \.mp4 videos needs .*`pip install av`"):
        read_video(shutil.copy(CLIP, tmp_path / "renamed.mp4"))
    assert sorted(path.name for path in tmp_path.glob("*clip*")) == []  # nothing half-written
    with pytest.raises(ValueError, match=r"Cannot write a video as 'clip.xyz': use one of .*\.gif.*\.mp4"):
        autoencoder(np.stack(read_video(CLIP)[0][:4]), save=tmp_path / "clip.xyz", progress=False)


def test_an_mp4_is_written_and_read_back_through_pyav(tmp_path):
    pytest.importorskip("av")
    save_model(tmp_path / "model")
    autoencoder = pipeline("video-autoencoding", model=str(tmp_path / "model"))
    result = autoencoder(np.stack(read_video(CLIP)[0][:4]), save=tmp_path / "clip.mp4", fps=10, progress=False)
    frames, fps = read_video(result["saved"][0])
    assert len(frames) == 4 and frames[0].shape == (16, 32, 3) and fps == 10.0
    # Lossy, but the reconstruction half of the saved frames is the pipeline's video.
    error = np.abs(np.stack(frames)[:, :, 16:].astype(int) - result["video"].astype(int)).mean()
    assert error < 20, error
