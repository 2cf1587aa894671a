"""Draw where a Perceiver IO model's latents look: the encoder's cross-attention per latent, over the input.

    python examples/attention_maps.py MODEL_DIR --image photo.jpg --output attention.png
    python examples/attention_maps.py MODEL_DIR --digits 0 1 2 --output digits.png    # `perceiver-hf demo`'s model
    python examples/attention_maps.py MODEL_DIR --text "Returns the graph." --output attention.html

Images go through the image processor saved with the model; `--digits` takes held-out digits of scikit-learn's
set (the demo's data, never trained on), one grid row per digit; text goes through `PerceiverTokenizer`. The
latents drawn are `--latents`, or the ones whose attention is most concentrated on the first input (the most
peaked distributions, lowest entropy), which are usually the most telling; every row shows the same latents.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, PerceiverTokenizer

import perceiver_hf
from perceiver_hf.visualization import attention_maps, encoder_attention


def most_concentrated(model, inputs, count: int) -> list[int]:
    """The `count` latents with the lowest attention entropy."""
    weights, _ = encoder_attention(model, inputs)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)
    return entropy.argsort()[:count].tolist()


def stack_vertically(paths: list[Path], output: Path) -> Path:
    sheets = [Image.open(path).convert("RGB") for path in paths]
    stacked = Image.new("RGB", (max(s.width for s in sheets), sum(s.height for s in sheets)), "white")
    top = 0
    for sheet in sheets:
        stacked.paste(sheet, (0, top))
        top += sheet.height
    temporary = output.with_name(f".{output.name}.partial.png")
    stacked.save(temporary, format="PNG")
    temporary.replace(output)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a perceiver_hf model folder (or transformers' Perceiver checkpoint)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="an image file")
    source.add_argument("--digits", type=int, nargs="+", help="indices of held-out scikit-learn digits")
    source.add_argument("--text", help="a text, for byte-level models")
    parser.add_argument("--latents", type=int, nargs="+", help="latents to draw (default: the most concentrated)")
    parser.add_argument("--count", type=int, default=6, help="how many latents to draw without --latents")
    parser.add_argument("--output", type=Path, required=True, help=".png for images, .html for text")
    args = parser.parse_args(argv)

    # The model class its folder names (transformers' Perceiver checkpoints: the encoder, converted on the fly).
    architecture = (AutoConfig.from_pretrained(args.model).architectures or ["PerceiverIOModel"])[0]
    model = getattr(perceiver_hf, architecture, perceiver_hf.PerceiverIOModel).from_pretrained(args.model).eval()
    if args.text is not None:
        adapter = getattr(model, "perceiver", model).input_adapter
        tokenizer = PerceiverTokenizer(model_max_length=adapter.max_position_embeddings)
        input_ids = tokenizer(args.text, truncation=True, return_tensors="pt")["input_ids"]
        latents = args.latents or most_concentrated(model, input_ids, args.count)
        print(attention_maps(model, input_ids=input_ids, latents=latents, output=args.output))
        return

    processor = AutoImageProcessor.from_pretrained(args.model)
    if args.image is not None:
        if not args.image.is_file():
            raise SystemExit(f"error: no image file at {args.image}")
        images = [Image.open(args.image).convert("RGB")]
    else:
        from perceiver_hf.demo.digits import split_digits

        held_out = split_digits().held_out_images
        if not all(0 <= index < len(held_out) for index in args.digits):
            raise SystemExit(f"error: --digits are indices into the {len(held_out)} held-out digits, got {args.digits}")
        images = [held_out[index].convert("RGB") for index in args.digits]

    rows, latents = [], args.latents
    with tempfile.TemporaryDirectory() as folder:
        for number, image in enumerate(images):
            pixel_values = processor(image, return_tensors="pt")["pixel_values"]
            # The same latents in every row, chosen on the first image, show what each one looks for.
            latents = latents or most_concentrated(model, pixel_values, args.count)
            rows.append(attention_maps(model, pixel_values, latents=latents, output=Path(folder) / f"{number}.png",
                                       columns=len(latents) + 1))  # fmt: skip
        print(stack_vertically(rows, args.output))


if __name__ == "__main__":
    torch.manual_seed(0)
    np.random.seed(0)
    main()
