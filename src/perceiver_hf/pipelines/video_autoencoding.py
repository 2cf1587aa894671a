"""`pipeline("video-autoencoding", model=DIR)`: a clip in, its reconstruction (frames, audio, class scores) out.

    pipe = pipeline("video-autoencoding", model="path/to/perceiver-io-video-autoencoding")
    result = pipe("clip.gif", save=True)   # writes clip.reconstruction.gif (input | reconstruction) beside it
    result["labels"]                       # top-k classes, named when the config has names (Kinetics-700)

The input is a video file (animated GIF/WebP/PNG through Pillow; other formats through `imageio` when it is
installed), a `(frames, height, width, 3)` array, a list of PIL images, or a dict `{"video": ..., "audio": ...}`
with a waveform. The model's frame count is read from `start_frame` on; frames are center-cropped and resized.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageSequence
from transformers import Pipeline

from ..model_folder import write_file_atomically
from ..processing.video import PerceiverIOVideoAutoencodingProcessor

_PILLOW_ANIMATIONS = {".gif", ".webp", ".png", ".apng", ".tif", ".tiff"}
_PILLOW_WRITES = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG", ".apng": "PNG"}
_DEFAULT_FPS = 25.0  # Kinetics clips, as DeepMind's model saw them
# Video containers written through imageio's PyAV plugin, each with a codec FFmpeg builds always include.
_VIDEO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
                 ".avi": "mpeg4"}


def read_video(path: str | Path) -> tuple[list[np.ndarray], float | None]:
    """RGB frames of a video file and its frame rate (`None` when the file does not say)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Video file {path} does not exist.")
    if path.suffix.lower() in _PILLOW_ANIMATIONS:
        with Image.open(path) as image:
            frames, durations = [], []
            for frame in ImageSequence.Iterator(image):
                frames.append(np.asarray(frame.convert("RGB")))
                durations.append(frame.info.get("duration"))
        known = [d for d in durations if d]
        return frames, (1000.0 / (sum(known) / len(known)) if known else None)
    iio, plugin = _video_backend(path, "Reading")
    frames = [np.asarray(frame)[..., :3] for frame in iio.imiter(path, plugin=plugin)]
    fps = iio.immeta(path, plugin=plugin).get("fps")
    return frames, (float(fps) if fps else None)


def _video_backend(path: Path, action: str):
    """imageio and its PyAV plugin, or a `ValueError` naming what to install. Without a video plugin imageio falls
    back to its TIFF plugin, which fails on `fps` or writes a TIFF under a video's name."""
    try:
        import imageio.v3 as iio
    except ImportError:
        iio = None
    try:
        import av  # imageio's "pyav" plugin
    except ImportError:
        av = None
    if iio is None or av is None:
        missing = " and ".join(name for name, module in (("imageio", iio), ("av", av)) if module is None)
        raise ValueError(
            f"{action} {path.suffix} videos needs imageio with its PyAV plugin: `pip install {missing.replace(' and ', ' ')}` "
            f"(missing: {missing}). Animated GIF, WebP and PNG files need neither (Pillow)."
        )
    return iio, "pyav"


def save_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 `(frames, H, W, 3)` as an animated image (GIF, WebP, PNG: Pillow) or a video (imageio)."""
    path = Path(path)
    extension = path.suffix.lower()
    if extension in _PILLOW_WRITES:
        images = [Image.fromarray(frame) for frame in frames]
        duration = max(1, round(1000 / fps))

        def write(target: Path) -> None:
            kind = _PILLOW_WRITES[extension]
            images[0].save(target, format=kind, save_all=True, append_images=images[1:], duration=duration, loop=0)

        return write_file_atomically(path, write)
    if extension not in _VIDEO_CODECS:
        raise ValueError(
            f"Cannot write a video as {path.name!r}: use one of {', '.join(sorted(_PILLOW_WRITES))} (Pillow) or "
            f"{', '.join(sorted(_VIDEO_CODECS))} (imageio with PyAV)."
        )
    iio, plugin = _video_backend(path, "Writing")

    def write(target: Path) -> None:
        iio.imwrite(target, frames, plugin=plugin, extension=path.suffix, codec=_VIDEO_CODECS[extension], fps=fps)

    return write_file_atomically(path, write)


def save_wav(path: str | Path, samples: np.ndarray, sampling_rate: int) -> Path:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1, 1) * 32767).round().astype("<i2")

    def write(target: Path) -> None:
        with wave.open(str(target), "wb") as file:
            file.setnchannels(1)
            file.setsampwidth(2)
            file.setframerate(int(sampling_rate))
            file.writeframes(pcm.tobytes())

    return write_file_atomically(Path(path), write)


def load_processor(model) -> PerceiverIOVideoAutoencodingProcessor:
    """The processor saved with the model, or one derived from its config."""
    source = getattr(model, "name_or_path", None) or model.config.name_or_path
    if source and (Path(source) / "preprocessor_config.json").is_file():
        config = PerceiverIOVideoAutoencodingProcessor.get_feature_extractor_dict(source)[0]
        if config.get("feature_extractor_type") == PerceiverIOVideoAutoencodingProcessor.__name__:
            return PerceiverIOVideoAutoencodingProcessor.from_pretrained(source)
    return PerceiverIOVideoAutoencodingProcessor.from_model_config(model.config)


class VideoAutoencodingPipeline(Pipeline):
    """Reconstructs a clip with `PerceiverIOForMultimodalAutoencoding` (see the module docstring).

    Call arguments: `audio` (waveform for the clip; silence by default), `start_frame` (0), `top_k` (5),
    `save` (`True`: `<input>.reconstruction.gif` beside an input file; or a path, whose extension picks the
    format), `comparison` (`True`: saved frames show the input and its reconstruction side by side), `fps`
    (frame rate of the saved file; default the input's, else 25), `progress` (`True`: a progress bar over the
    decoded chunks), `chunk_size` (queries decoded at a time).

    Returns a dict: `video` (uint8 `(frames, H, W, 3)`), `audio` (float32 samples), `labels` (top-k
    `{"label", "score"}`), `label_logits`, and `saved` (paths written, when saving).
    """

    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_processor = False
    _load_video_processor = False

    def __init__(self, *args, feature_extractor: PerceiverIOVideoAutoencodingProcessor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.feature_extractor = feature_extractor or load_processor(self.model)

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise ValueError("No clip given: pass a video file, a list of frames or an array (frames, height, width, 3).")
        # One clip given as a list of frames is one input, not a batch of inputs.
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (Image.Image, np.ndarray)):
            if isinstance(inputs[0], Image.Image) or inputs[0].ndim in (2, 3):
                inputs = {"video": list(inputs)}
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(
        self,
        audio=None,
        start_frame: int | None = None,
        top_k: int | None = None,
        save: bool | str | Path | None = None,
        comparison: bool | None = None,
        fps: float | None = None,
        progress: bool | None = None,
        chunk_size: int | None = None,
    ):
        preprocess = {k: v for k, v in {"audio": audio, "start_frame": start_frame}.items() if v is not None}
        forward = {k: v for k, v in {"progress": progress, "chunk_size": chunk_size}.items() if v is not None}
        postprocess = {
            k: v for k, v in {"top_k": top_k, "save": save, "comparison": comparison, "fps": fps}.items() if v is not None
        }
        return preprocess, forward, postprocess

    def preprocess(self, inputs, audio=None, start_frame: int = 0) -> dict[str, Any]:
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {"video", "audio"})
            if unknown or "video" not in inputs:
                raise ValueError(f"A dict input needs a 'video' (and optionally an 'audio') entry, got keys {sorted(inputs)}.")
            audio = inputs.get("audio", audio)
            inputs = inputs["video"]
        source, fps = None, None
        if isinstance(inputs, (str, Path)):
            source = Path(inputs)
            frames, fps = read_video(source)
        elif isinstance(inputs, (np.ndarray, torch.Tensor)):
            frames = list(inputs)
        elif isinstance(inputs, (list, tuple)):
            frames = list(inputs)
        else:
            raise ValueError(
                f"Expected a video file path, a (frames, height, width, 3) array, a list of frames or a dict with "
                f"'video', got {type(inputs).__name__}."
            )
        needed = self.feature_extractor.num_frames
        if start_frame < 0 or start_frame + needed > len(frames):
            raise ValueError(
                f"The model reconstructs {needed} frames; the clip has {len(frames)}, so start_frame must lie in "
                f"[0, {max(len(frames) - needed, 0)}] (got {start_frame})."
                + (" The clip is too short: pass a longer clip." if len(frames) < needed else "")
            )
        features = self.feature_extractor(frames[start_frame : start_frame + needed], audio=audio)
        return {"inputs": features["inputs"], "source": source, "fps": fps, "has_audio": audio is not None}

    def _forward(self, model_inputs: dict[str, Any], progress: bool = True, chunk_size: int | None = None):
        reconstruction = self.model.reconstruct(model_inputs["inputs"], chunk_size=chunk_size, progress=progress)
        return {**model_inputs, "reconstruction": reconstruction}

    def postprocess(self, model_outputs, top_k: int = 5, save=False, comparison: bool = True, fps: float | None = None):
        processor = self.feature_extractor
        decoded = processor.post_process(model_outputs["reconstruction"])
        video, audio, logits = decoded["video"][0], decoded["audio"][0], decoded["label_logits"][0]
        scores = logits.softmax(-1)
        top = scores.topk(min(top_k, scores.numel()))
        id2label = self.model.config.id2label
        result = {
            "video": video,
            "audio": audio,
            "labels": [{"label": id2label[int(i)], "score": float(s)} for s, i in zip(top.values, top.indices)],
            "label_logits": logits,
        }
        if save:
            result["saved"] = self._save(model_outputs, video, audio, save, comparison, fps)
        return result

    def _save(self, model_outputs, video, audio, save, comparison: bool, fps: float | None) -> list[Path]:
        source = model_outputs["source"]
        if save is True:
            if source is None:
                raise ValueError("save=True writes beside the input file; for array inputs pass save='path/out.gif'.")
            target = source.with_name(f"{source.stem}.reconstruction.gif")
        else:
            target = Path(save)
        frames = video
        if comparison:  # input | reconstruction, side by side
            inputs = model_outputs["inputs"]["image"][0].permute(0, 2, 3, 1).clamp(0, 1)
            inputs = (inputs * 255).round().to(torch.uint8).cpu().numpy()
            frames = np.concatenate([inputs, video], axis=2)
        saved = [save_video(target, frames, fps or model_outputs["fps"] or _DEFAULT_FPS)]
        if model_outputs["has_audio"]:
            saved.append(save_wav(target.with_suffix(".wav"), audio, self.feature_extractor.sampling_rate))
        return saved


__all__ = ["VideoAutoencodingPipeline", "read_video", "save_video", "save_wav"]
