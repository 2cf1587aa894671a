"""Video frames and an audio waveform in, `PerceiverIOForMultimodalAutoencoding` inputs out (and back).

DeepMind's video autoencoder reads 16 RGB frames of 224x224 in [0, 1] (its colab center-crops each frame to a
square and resizes it) and 30,720 mono audio samples in [-1, 1] (1,920 per frame: 48 kHz audio at 25 fps); the
label input is all zeros, since the model always masks it. `PerceiverIOVideoAutoencodingProcessor` does that
packing, checks what it is given, and turns the model's outputs back into frames and a waveform.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from ..configuration import PerceiverIOConfig

_RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


class PerceiverIOVideoAutoencodingProcessor(FeatureExtractionMixin):
    r"""
    Packs video frames and audio into the `inputs` dict of `PerceiverIOForMultimodalAutoencoding`.

    Args:
        num_frames (`int`, defaults to 16): frames per clip.
        frame_size (`dict`, defaults to `{"height": 224, "width": 224}`): frame size the model takes.
        audio_samples_per_frame (`int`, defaults to 1920): audio samples per video frame.
        sampling_rate (`int`, defaults to 48000): the audio sampling rate the model was trained with.
        num_labels (`int`, defaults to 700): length of the (always zero) label input.
        do_resize (`bool`, defaults to `True`): center-crop frames to the model's aspect ratio and resize them (as
            DeepMind's colab does). With `False`, frames must already have `frame_size`.
        resample (`str`, defaults to `"bilinear"`): PIL filter for resizing (`nearest`, `bilinear`, `bicubic`,
            `lanczos`). DeepMind's colab uses OpenCV's bilinear `cv2.resize`, which does not antialias.
    """

    model_input_names = ["inputs"]

    def __init__(
        self,
        num_frames: int = 16,
        frame_size: dict[str, int] | None = None,
        audio_samples_per_frame: int = 1920,
        sampling_rate: int = 48000,
        num_labels: int = 700,
        do_resize: bool = True,
        resample: str = "bilinear",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_frames = int(num_frames)
        self.frame_size = dict(frame_size or {"height": 224, "width": 224})
        self.audio_samples_per_frame = int(audio_samples_per_frame)
        self.sampling_rate = int(sampling_rate)
        self.num_labels = int(num_labels)
        self.do_resize = bool(do_resize)
        if resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(_RESAMPLE)}, got {resample!r}.")
        self.resample = resample

    @classmethod
    def from_model_config(cls, config: PerceiverIOConfig, **kwargs) -> PerceiverIOVideoAutoencodingProcessor:
        """The processor matching a multimodal autoencoding config (frames, frame size, audio length, labels)."""
        modalities = (config.query_decoder or {}).get("query", {}).get("modalities", {})
        outputs = (config.output_adapter or {}).get("modalities", {})
        if "image" not in modalities or "audio" not in modalities:
            raise ValueError("The config is not a video+audio autoencoder: its decoder has no image and audio queries.")
        frames, height, width = modalities["image"]["index_dims"]
        audio_patches = math.prod(modalities["audio"]["index_dims"])
        samples = audio_patches * outputs["audio"]["samples_per_patch"]
        kwargs.setdefault("num_labels", config.num_labels)
        return cls(
            num_frames=frames,
            frame_size={"height": height, "width": width},
            audio_samples_per_frame=samples // frames,
            **kwargs,
        )

    @property
    def num_audio_samples(self) -> int:
        return self.num_frames * self.audio_samples_per_frame

    # -- inputs ------------------------------------------------------------------------------------------------

    def __call__(self, videos, audio=None, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """Pack one clip or a batch of clips.

        Args:
            videos: a clip, or a list of clips. A clip is a list of PIL images, or an array / tensor of frames
                `(frames, height, width, channels)` (channels-first `(frames, channels, height, width)` is
                recognised too), uint8 in [0, 255] or floats in [0, 1]. A 5-D array is a batch.
            audio: per clip a waveform `(samples,)` or `(samples, channels)` (the first channel is used), floats in
                [-1, 1] or int16; `None` gives silence.
        Returns:
            `BatchFeature` with `inputs = {"image": (batch, frames, 3, H, W), "audio": (batch, samples, 1),
            "label": zeros (batch, num_labels)}`, ready for `model(**features)`.
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(f"Only PyTorch tensors are supported (return_tensors='pt'), got {return_tensors!r}.")
        clips = _as_clip_list(videos)
        if audio is None:
            waveforms = [None] * len(clips)
        else:
            waveforms = [audio] if len(clips) == 1 else list(audio)
        if len(waveforms) != len(clips):
            raise ValueError(f"Got {len(clips)} clips but {len(waveforms)} audio waveforms: give one per clip.")
        images = torch.stack([self._frames(clip, i) for i, clip in enumerate(clips)])
        sounds = torch.stack([self._waveform(waveform, i) for i, waveform in enumerate(waveforms)])
        labels = torch.zeros(len(clips), self.num_labels)
        return BatchFeature(data={"inputs": {"image": images, "audio": sounds, "label": labels}})

    def _frames(self, clip, index: int) -> torch.Tensor:
        where = f"clip {index}: " if index else ""
        frames = [_frame_array(frame, where) for frame in clip] if isinstance(clip, (list, tuple)) else _video_array(clip, where)
        if len(frames) != self.num_frames:
            raise ValueError(
                f"{where}the model reconstructs clips of exactly {self.num_frames} frames, got {len(frames)}. Pass "
                f"{self.num_frames} consecutive frames (e.g. frames[:{self.num_frames}])."
            )
        sizes = {frame.shape[:2] for frame in frames}
        if len(sizes) != 1:
            raise ValueError(f"{where}all frames must have the same size, got sizes {sorted(sizes)}.")
        height, width = self.frame_size["height"], self.frame_size["width"]
        if not self.do_resize and sizes != {(height, width)}:
            (size,) = sizes
            raise ValueError(
                f"{where}frames are {size[0]}x{size[1]} but the model takes {height}x{width}; resize them, or keep "
                "do_resize=True to center-crop and resize."
            )
        if self.do_resize:
            frames = [self._resize(frame) for frame in frames]
        video = np.stack(frames).astype(np.float32)  # (T, H, W, 3) in [0, 1]
        return torch.from_numpy(video).permute(0, 3, 1, 2).contiguous()

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        height, width = self.frame_size["height"], self.frame_size["width"]
        if frame.shape[:2] == (height, width):
            return frame
        # Center crop to the target aspect ratio (a square for 224x224, as the colab does), then resize.
        rows, cols = frame.shape[:2]
        crop_rows, crop_cols = min(rows, round(cols * height / width)), min(cols, round(rows * width / height))
        top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
        crop = frame[top : top + crop_rows, left : left + crop_cols]
        channels = [
            np.asarray(Image.fromarray(crop[..., c], mode="F").resize((width, height), _RESAMPLE[self.resample]))
            for c in range(3)
        ]
        return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)

    def _waveform(self, waveform, index: int) -> torch.Tensor:
        where = f"clip {index}: " if index else ""
        expected = self.num_audio_samples
        if waveform is None:
            return torch.zeros(expected, 1)
        samples = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
        if samples.ndim == 2:
            samples = samples[:, 0]  # the first channel, as DeepMind's colab does
        if samples.ndim != 1:
            raise ValueError(f"{where}expected a waveform of shape (samples,) or (samples, channels), got {samples.shape}.")
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 2**15
        elif not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"{where}audio samples must be floats in [-1, 1] or int16, got dtype {samples.dtype}.")
        if samples.size and np.abs(samples).max() > 1.0 + 1e-6:
            raise ValueError(f"{where}float audio samples must lie in [-1, 1], got a peak of {np.abs(samples).max():.3g}.")
        if samples.shape[0] != expected:
            seconds = expected / self.sampling_rate
            raise ValueError(
                f"{where}the model takes {expected} audio samples ({self.num_frames} frames x "
                f"{self.audio_samples_per_frame}, {seconds:.2f} s at {self.sampling_rate} Hz), got {samples.shape[0]}. "
                f"Trim or zero-pad the waveform to {expected} samples (resample it first if its rate differs)."
            )
        return torch.from_numpy(samples.astype(np.float32)).reshape(expected, 1)

    # -- outputs -----------------------------------------------------------------------------------------------

    def post_process(self, reconstruction: dict[str, torch.Tensor]) -> dict[str, Any]:
        """`model.reconstruct(...)` outputs -> `video` uint8 `(batch, frames, H, W, 3)`, `audio` float32
        `(batch, samples)` clipped to [-1, 1], and `label_logits` `(batch, num_labels)`."""
        image = reconstruction["image"]
        if image.ndim != 5:
            raise ValueError(
                f"Expected reconstructed frames (batch, frames, 3, height, width) from model.reconstruct(...), got shape "
                f"{tuple(image.shape)}."
            )
        video = image.float().clamp(0, 1).permute(0, 1, 3, 4, 2)
        return {
            "video": (video * 255).round().to(torch.uint8).cpu().numpy(),
            "audio": reconstruction["audio"].float().clamp(-1, 1).flatten(1).cpu().numpy(),
            "label_logits": reconstruction["label"].float().cpu(),
        }


def _as_clip_list(videos) -> list:
    """One clip or a batch of clips -> a list of clips."""
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim == 4:
            return [videos]
        raise ValueError(f"Expected a clip of shape (frames, height, width, channels), got shape {tuple(videos.shape)}.")
    if isinstance(videos, (list, tuple)) and videos:
        first = videos[0]
        if isinstance(first, Image.Image) or (isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim in (2, 3)):
            return [videos]
        return list(videos)
    raise ValueError(
        f"Expected video frames as a list of PIL images or a (frames, height, width, channels) array, got "
        f"{type(videos).__name__}{' (empty)' if isinstance(videos, (list, tuple)) else ''}."
    )


def _video_array(video, where: str) -> list[np.ndarray]:
    array = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if array.ndim != 4:
        raise ValueError(f"{where}expected frames of shape (frames, height, width, channels), got {array.shape}.")
    return [_frame_array(frame, where) for frame in array]


def _frame_array(frame, where: str) -> np.ndarray:
    """One frame as a float32 `(H, W, 3)` array in [0, 1]."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"), dtype=np.float32) / 255
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels-first
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{where}expected frames (height, width, 3), RGB, got a frame of shape {array.shape}.")
    array = np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]  # grey -> RGB, drop alpha
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{where}frames must be uint8 in [0, 255] or floats in [0, 1], got dtype {array.dtype}.")
    if array.size and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise ValueError(
            f"{where}float frames must lie in [0, 1], got values in [{array.min():.3g}, {array.max():.3g}]; pass uint8 "
            "frames or divide by 255."
        )
    return array.astype(np.float32)


__all__ = ["PerceiverIOVideoAutoencodingProcessor"]
