"""`pipeline("optical-flow")`: two frames of any size in, their flow field and its picture out.

The model was trained on 368x496 crops. As DeepMind's colab does, larger frames are covered with overlapping
tiles of that size (at least `min_overlap` pixels apart from the border tile) and the tiles' flows are blended,
each pixel weighted by its distance to its tile's border; smaller frames are padded up to a tile and the flow
cropped back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import Pipeline
from transformers.image_utils import load_image
from transformers.utils import cached_file

from ..processing.flow import PerceiverIOFlowProcessor, tile_weights
from ..processing.flow_visualization import flow_to_image


def _load_processor(model) -> PerceiverIOFlowProcessor:
    """The processor saved beside the model, else one for the model's training size."""
    source = getattr(model.config, "name_or_path", None)
    if source:
        try:
            path = cached_file(source, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False)
        except OSError:
            path = None
        if path is not None:
            config = PerceiverIOFlowProcessor.get_image_processor_dict(source)[0]
            if config.get("image_processor_type") == PerceiverIOFlowProcessor.__name__:
                return PerceiverIOFlowProcessor.from_pretrained(source)
    train_size = (model.config.output_adapter or {}).get("train_size", (368, 496))
    return PerceiverIOFlowProcessor(tile_size=train_size, min_overlap=min(20, min(train_size) // 2))


class OpticalFlowPipeline(Pipeline):
    """Optical flow between two frames with `PerceiverIOForOpticalFlow`.

    ```python
    import perceiver_hf
    from transformers import pipeline

    flow = pipeline("optical-flow", model="path/to/optical-flow-perceiver")
    result = flow([frame_1, frame_2])  # PIL images, (height, width, 3) arrays or file paths/URLs, any size
    result["flow"]         # (height, width, 2) float32 array: (dx, dy) in pixels, frame 1 -> frame 2
    result["flow_image"]   # PIL image, the flow in the standard flow colour wheel
    ```

    Call arguments: `min_overlap` (pixels between tiles, default the processor's 20), `tile_batch_size` (tiles
    per forward pass, default 1), `max_flow` (speed drawn fully saturated in the picture, default the largest),
    `progress` (a progress bar over tiles, default on when there are several).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.image_processor is None:
            self.image_processor = _load_processor(self.model)

    def __call__(self, frames, second_frame=None, **kwargs):
        """`frames`: a pair `[frame_1, frame_2]` (or the first frame, with `second_frame`), or a list of pairs."""
        if second_frame is not None:
            frames = (frames, second_frame)
        is_batch = isinstance(frames, list) and len(frames) > 0 and isinstance(frames[0], (list, tuple))
        if is_batch:
            frames = [tuple(pair) for pair in frames]
        elif isinstance(frames, list):
            frames = tuple(frames)
        return super().__call__(frames, **kwargs)

    def _sanitize_parameters(self, min_overlap=None, tile_batch_size=None, max_flow=None, progress=None, **kwargs):
        forward_params = {}
        if min_overlap is not None:
            forward_params["min_overlap"] = min_overlap
        if tile_batch_size is not None:
            if tile_batch_size < 1:
                raise ValueError(f"tile_batch_size must be a positive integer, got {tile_batch_size}.")
            forward_params["tile_batch_size"] = tile_batch_size
        if progress is not None:
            forward_params["progress"] = progress
        postprocess_params = {"max_flow": max_flow} if max_flow is not None else {}
        return {}, forward_params, postprocess_params

    def preprocess(self, frames) -> dict[str, torch.Tensor]:
        if isinstance(frames, (list, tuple)):  # file paths and URLs, as transformers' image pipelines take them
            frames = [load_image(frame) if isinstance(frame, str) else frame for frame in frames]
        return {"frames": self.image_processor.normalize_pair(frames)}

    def _forward(
        self, model_inputs: dict[str, torch.Tensor], min_overlap: int | None = None, tile_batch_size: int = 1,
        progress: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        processor = self.image_processor
        frames = model_inputs["frames"].to(self.model.dtype)
        height, width = frames.shape[-2:]
        grid = processor.tiles((height, width), min_overlap)
        frames = processor.pad_to_tile(frames)
        tile_height, tile_width = processor.tile_size
        weights = tile_weights(processor.tile_size).to(frames.device)[..., None]  # (h, w, 1)
        scale = getattr(self.model, "flow_scale_factor", 20.0)

        flow = frames.new_zeros(frames.shape[-2], frames.shape[-1], 2)
        total_weight = frames.new_zeros(frames.shape[-2], frames.shape[-1], 1)
        tiles = list(grid.items())
        show = progress if progress is not None else len(tiles) > 1
        with tqdm(total=len(tiles), desc="optical flow tiles", unit="tile", disable=not show) as bar:
            for start in range(0, len(tiles), tile_batch_size):
                batch = tiles[start : start + tile_batch_size]
                crops = torch.stack([frames[..., y : y + tile_height, x : x + tile_width] for (y, x), _ in batch])
                tile_flows = self.model(inputs=processor.extract_patches(crops)).logits * scale
                for ((y, x), count), tile_flow in zip(batch, tile_flows):
                    flow[y : y + tile_height, x : x + tile_width] += tile_flow * weights * count
                    total_weight[y : y + tile_height, x : x + tile_width] += weights * count
                bar.update(len(batch))
        return {"flow": (flow / total_weight)[:height, :width]}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], max_flow: float | None = None) -> dict[str, Any]:
        flow = model_outputs["flow"].float().numpy().astype(np.float32)
        return {"flow": flow, "flow_image": flow_to_image(flow, max_flow)}
