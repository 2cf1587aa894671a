"""Where the latents look: the encoder's cross-attention drawn over the input.

Each latent's row of the encoder cross-attention is a distribution over the input array's rows (pixels, patches,
bytes). `attention_maps` draws chosen latents' rows over the input they came from:

* images (image classifiers), optical-flow frame pairs and the autoencoder's video frames: a PNG grid of the input
  picture and, per latent, its attention as a heat map laid over the picture;
* text (byte-level models): an HTML file with, per latent, the text coloured by the attention each character gets.

```python
from perceiver_hf.visualization import attention_maps

attention_maps(model, pixel_values, latents=[0, 5, 17], output="attention.png")
attention_maps(model, input_ids=encoding["input_ids"], latents=[0, 1], output="attention.html")
```

Weights are averaged over the cross-attention heads unless `head` picks one; the first example of a batch is drawn.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .input_adapters import FlowInputAdapter, ImageInputAdapter, MultimodalInputAdapter, TextInputAdapter

# A perceptually ordered dark-to-bright colour ramp (close to matplotlib's "inferno") for the heat maps.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)
_LABEL_HEIGHT = 16


def _perceiver(model: torch.nn.Module) -> torch.nn.Module:
    perceiver = getattr(model, "perceiver", model)
    if not hasattr(perceiver, "encode") or not hasattr(perceiver, "input_adapter"):
        raise TypeError(f"Expected a perceiver_hf model (a head or PerceiverIOModel), got {type(model).__name__}.")
    return perceiver


def _first_example(inputs):
    if isinstance(inputs, Mapping):
        return {name: value[:1] for name, value in inputs.items()}
    return inputs[:1]


def encoder_attention(model: torch.nn.Module, inputs, head: int | None = None, **adapter_kwargs):
    """The first example's encoder cross-attention `(num_latents, input_rows)` (mean over heads, or `head`), and
    the input array it attends to. The encoder returns them with `output_attentions=True`, reading its input a
    block of rows at a time (`perceiver_hf.core.rewrites.blockwise_weights`)."""
    perceiver = _perceiver(model)
    with torch.no_grad():
        input_array, encoded = perceiver.encode(_first_example(inputs), output_attentions=True, **adapter_kwargs)
    weights = encoded.cross_attentions[0][0]
    if head is None:
        return weights.mean(0), input_array
    if not 0 <= head < weights.shape[0]:
        raise ValueError(f"head must be in [0, {weights.shape[0]}) (the encoder's cross-attention heads), got {head}.")
    return weights[head], input_array


def _chosen_latents(latents: Sequence[int] | None, num_latents: int) -> list[int]:
    if latents is None:
        return list(range(min(8, num_latents)))
    latents = [int(latent) for latent in latents]
    if not latents or not all(0 <= latent < num_latents for latent in latents):
        raise ValueError(
            f"latents must be indices in [0, {num_latents}) (the model has {num_latents}), got {latents}."
        )
    return latents


def _write_atomically(output: Path, write) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=output.suffix)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return output


def _picture(frame: torch.Tensor, low: float, high: float) -> np.ndarray:
    """A `(3, H, W)` frame with values in [low, high] as an `(H, W, 3)` uint8 array."""
    scaled = (frame.detach().float().cpu().clamp(low, high) - low) / (high - low)
    return (scaled.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _heat_map(picture: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The attention `(h, w)` resized to the picture, coloured, and laid over the picture's grey levels."""
    height, width = picture.shape[:2]
    values = weights / max(float(weights.max()), 1e-12)
    resized = np.asarray(Image.fromarray((values * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR))
    position = resized.astype(np.float64) / 255 * (len(_RAMP) - 1)
    lower = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    colour = _RAMP[lower] + (position - lower)[..., None] * (_RAMP[lower + 1] - _RAMP[lower])
    grey = picture.astype(np.float64).mean(axis=-1, keepdims=True)
    return (0.35 * grey + 0.65 * colour).round().clip(0, 255).astype(np.uint8)


def _grid_png(picture: np.ndarray, maps: list[np.ndarray], labels: list[str], output: Path, columns: int) -> Path:
    scale = max(1, 160 // max(picture.shape[:2]))  # small inputs (8x8 digits) are enlarged to be seen
    tiles = [picture, *[_heat_map(picture, weights) for weights in maps]]
    tiles = [
        Image.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale), Image.NEAREST) for tile in tiles
    ]
    width, height = tiles[0].size
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (width + 4) + 4, rows * (height + _LABEL_HEIGHT + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (tile, label) in enumerate(zip(tiles, ["input", *labels])):
        left = 4 + (index % columns) * (width + 4)
        top = 4 + (index // columns) * (height + _LABEL_HEIGHT + 4)
        draw.text((left, top + 2), label, fill="black")
        sheet.paste(tile, (left, top + _LABEL_HEIGHT))
    return _write_atomically(output, lambda path: sheet.save(path, format="PNG"))


def _text_html(input_ids: torch.Tensor, weights: torch.Tensor, latents: list[int], output: Path) -> Path:
    """Per latent, the text with each character's background as strong as the attention its bytes get."""
    ids = input_ids.tolist()
    pieces, row, pending = [], 0, b""  # (text, rows) per character; special tokens shown by name
    special = {0: "[PAD]", 1: "[BOS]", 2: "[EOS]", 3: "[MASK]", 4: "[CLS]", 5: "[SEP]"}
    rows: list[int] = []
    for row, token in enumerate(ids):
        if token in special:
            pieces.append((special[token], [row]))
            continue
        pending += bytes([token - 6])
        rows.append(row)
        text = pending.decode("utf-8", errors="ignore")
        if text or len(pending) >= 4:
            pieces.append((text or "\ufffd", rows))
            pending, rows = b"", []
    sections = []
    for latent in latents:
        character_weights = [float(weights[latent, rows].sum()) for _, rows in pieces]
        top = max(max(character_weights), 1e-12)
        spans = "".join(
            f'<span title="{weight:.4f}" style="background: rgba(230, 80, 20, {weight / top:.3f})">'
            f"{html.escape(text)}</span>"
            for (text, _), weight in zip(pieces, character_weights)
        )
        sections.append(f'<h3>latent {latent}</h3>\n<p class="text">{spans}</p>')
    document = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Perceiver IO encoder attention</title>\n'
        "<style>body{font-family:sans-serif} .text{font-family:monospace;white-space:pre-wrap;line-height:1.6}</style>"
        "</head><body>\n<p>Encoder cross-attention per latent: the stronger the colour, the more attention a "
        "character's bytes get (hover for the weight).</p>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    return _write_atomically(output, lambda path: Path(path).write_text(document, encoding="utf-8"))


def _image_rows(adapter: ImageInputAdapter, height: int, width: int) -> tuple[int, int]:
    if adapter.prep_type == "conv":
        return adapter.conv_stem.output_size(height, width)
    step = adapter.spatial_downsample
    return -(-height // step), -(-width // step)


def attention_maps(
    model: torch.nn.Module,
    pixel_values: torch.Tensor | None = None,
    *,
    output: str | os.PathLike,
    latents: Sequence[int] | None = None,
    input_ids: torch.Tensor | None = None,
    inputs: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
    frame: int = 0,
    head: int | None = None,
    columns: int = 5,
) -> Path:
    """Draw where chosen latents look in the encoder's cross-attention; returns the written file.

    Args:
        model: a perceiver_hf head or `PerceiverIOModel`.
        pixel_values: `(1, 3, H, W)` images for image classifiers, as the image processor makes them.
        output: a `.png` file (images, flow, video) or an `.html` file (text), written atomically.
        latents: indices of the latents to draw (default: the first 8).
        input_ids: `(1, length)` byte ids for text models (from `PerceiverTokenizer`).
        inputs: what the model's forward takes as `inputs` for optical flow (`(1, 2, 27, H, W)` patches) and the
            multimodal autoencoder (the dict of `image`, `audio`, `label`).
        frame: the video frame drawn for the autoencoder.
        head: one cross-attention head instead of the mean over heads.
        columns: tiles per row of the PNG grid.
    """
    output = Path(output)
    adapter = _perceiver(model).input_adapter
    if isinstance(adapter, TextInputAdapter):
        if input_ids is None:
            raise ValueError(
                "This is a text model: pass `input_ids` (e.g. from PerceiverTokenizer) to draw its attention."
            )
        if output.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"Text attention is written as HTML: give an output path ending in .html, got {output}.")
        weights, _ = encoder_attention(model, input_ids, head)
        return _text_html(input_ids[0], weights, _chosen_latents(latents, weights.shape[0]), output)
    if output.suffix.lower() != ".png":
        raise ValueError(
            f"Attention over images is drawn as a PNG grid: give an output path ending in .png, got {output}."
        )

    if isinstance(adapter, ImageInputAdapter):
        if pixel_values is None:
            raise ValueError(
                "This is an image model: pass `pixel_values` (1, 3, height, width) from its image processor."
            )
        weights, _ = encoder_attention(model, pixel_values, head)
        picture_frame = pixel_values[0, :3]
        picture = _picture(picture_frame, float(picture_frame.min()), float(picture_frame.max()) + 1e-6)
        grid = _image_rows(adapter, *pixel_values.shape[-2:])
        maps = weights.reshape(weights.shape[0], *grid)
    elif isinstance(adapter, FlowInputAdapter):
        if inputs is None:
            raise ValueError(
                "This is an optical-flow model: pass `inputs` (1, 2, 27, height, width) from its processor."
            )
        weights, _ = encoder_attention(model, inputs, head)
        # The first frame's pixels are the centres of its 3x3 patches: channels (row 1, column 1, RGB).
        picture = _picture(inputs[0, 0, 12:15], -1.0, 1.0)
        maps = weights.reshape(weights.shape[0], *inputs.shape[-2:])
    elif isinstance(adapter, MultimodalInputAdapter) and "image" in adapter.modalities:
        if not isinstance(inputs, Mapping) or "image" not in inputs:
            raise ValueError("This is the multimodal autoencoder: pass `inputs` as the dict of its modalities.")
        video = inputs["image"]
        if not 0 <= frame < video.shape[1]:
            raise ValueError(f"frame must be in [0, {video.shape[1]}) (the video's frames), got {frame}.")
        weights, input_array = encoder_attention(model, inputs, head)
        patches = adapter.modalities["image"]
        sizes = input_array.modality_sizes
        start = sum(size for name, size in sizes.items() if name < "image")  # modalities are packed in name order
        grid = (video.shape[-2] // patches.spatial_patch_size, video.shape[-1] // patches.spatial_patch_size)
        start += frame // patches.temporal_patch_size * grid[0] * grid[1]
        picture = _picture(video[0, frame], 0.0, 1.0)
        maps = weights[:, start : start + grid[0] * grid[1]].reshape(weights.shape[0], *grid)
    else:
        raise TypeError(f"Drawing attention over {type(adapter).__name__} inputs is not supported.")

    chosen = _chosen_latents(latents, maps.shape[0])
    return _grid_png(picture, [maps[latent].cpu().numpy() for latent in chosen], [f"latent {i}" for i in chosen],
                     output, columns)  # fmt: skip
