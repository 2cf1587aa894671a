"""Optical flow between two frames with perceiver_hf, saved as a colour-coded PNG (and the raw flow as .npy).

    python examples/optical_flow.py MODEL_DIR frame_1.png frame_2.png --output flow.png
    python examples/optical_flow.py MODEL_DIR --motorcycle --output flow.png   # scikit-image's stereo pair

MODEL_DIR is a perceiver_hf optical-flow folder (e.g. converted with `python -m conversion.convert_deepmind --task
optical-flow`) or a transformers `PerceiverForOpticalFlow` checkpoint. Frames may have any size: larger ones
are tiled at the model's training size, smaller ones padded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from transformers import pipeline

import perceiver_hf  # noqa: F401  (registers the "optical-flow" pipeline)

MANY_TILES = 500


def tile_plan(estimator, size: tuple[int, int]) -> str:
    """What the pipeline is about to do for frames of `size`, said before it starts: one forward pass per tile."""
    processor = estimator.image_processor
    tiles = len(processor.tiles(size))
    (height, width), (tile_height, tile_width) = size, processor.tile_size
    plan = f"{height}x{width} frames, model trained at {tile_height}x{tile_width}: {tiles:,} tile(s), one forward pass each."
    if tiles >= MANY_TILES:
        plan += (
            f" That many tiles takes long (the progress bar counts them): the model was trained on small "
            f"{tile_height}x{tile_width} crops. A model trained at a larger size (DeepMind's: 368x496) or smaller "
            "frames need far fewer."
        )
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="perceiver_hf optical-flow folder or Hub id")
    parser.add_argument("frames", nargs="*", type=Path, help="the first and the second frame (image files)")
    parser.add_argument("--motorcycle", action="store_true", help="use scikit-image's stereo motorcycle pair")
    parser.add_argument("--output", type=Path, default=Path("flow.png"), help="PNG to write (default: flow.png)")
    parser.add_argument("--max-flow", type=float, help="speed in pixels drawn fully saturated (default: the largest)")
    args = parser.parse_args(argv)

    if args.motorcycle == bool(args.frames):
        parser.error("give two frame files, or --motorcycle")
    if args.motorcycle:
        from skimage.data import stereo_motorcycle

        first, second, _ = stereo_motorcycle()
    else:
        if len(args.frames) != 2:
            parser.error(f"optical flow needs two frames, got {len(args.frames)}")
        first, second = (Image.open(path).convert("RGB") for path in args.frames)

    estimator = pipeline("optical-flow", model=args.model)
    print(tile_plan(estimator, np.asarray(first).shape[:2]))
    result = estimator([first, second], max_flow=args.max_flow)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result["flow_image"].save(args.output)
    np.save(args.output.with_suffix(".npy"), result["flow"])
    speed = np.hypot(result["flow"][..., 0], result["flow"][..., 1])
    print(f"Wrote {args.output} and {args.output.with_suffix('.npy')} (flow {result['flow'].shape}, max {speed.max():.2f} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
