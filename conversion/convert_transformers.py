"""Convert a transformers Perceiver checkpoint into a perceiver_hf folder (safetensors), checking the result.

    python conversion/convert_transformers.py deepmind/vision-perceiver-learned --output ./vision-perceiver-learned

SRC is a local folder or a Hub repository id (with HF_HUB_OFFLINE=1, the local Hub cache). Processor files
(`preprocessor_config.json`, tokenizer files) are copied along, so pipelines work on the output folder. The
converted model is reloaded from DIR and its outputs compared with transformers' on a random input; the
folder is written to a temporary sibling first and moved into place only when that check passes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file (`python conversion/convert_transformers.py`): run it as the package module it is, from the checkout root,
    # exactly as `python conversion/convert_transformers.py` would.
    import runpy

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    runpy.run_module("conversion.convert_transformers", run_name="__main__", alter_sys=True)
    sys.exit()

import torch

import perceiver_hf  # registers the Auto classes
from perceiver_hf.from_transformers import ARCHITECTURES, source_architecture
from perceiver_hf.input_adapters import FlowInputAdapter, ImageInputAdapter, TextInputAdapter
from perceiver_hf.model_folder import staged_output_folder
from perceiver_hf.processing import PerceiverIOFlowProcessor

from .sources import parse_converter_arguments

PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.json",
)


def example_inputs(model) -> dict[str, torch.Tensor]:
    """A random input of the shape the converted model takes (transformers' heads call it `inputs`)."""
    adapter = model.perceiver.input_adapter
    if isinstance(adapter, ImageInputAdapter):
        # Learned positions fix the image size; Fourier positions take any, 64x64 keeps the check quick.
        height, width = getattr(adapter.position_encoding, "index_dims", (64, 64))
        step = adapter.spatial_downsample
        return {"inputs": torch.randn(1, adapter.in_channels, height * step, width * step)}
    if isinstance(adapter, FlowInputAdapter):
        # transformers reshapes its flow to the training size, so only inputs of that size run through it.
        height, width = model.config.output_adapter["train_size"]
        return {"inputs": torch.randn(1, adapter.num_frames, adapter.in_channels, height, width)}
    if isinstance(adapter, TextInputAdapter):
        # Two byte strings, the second one padded, so that the attention mask is checked as well.
        length = min(48, adapter.max_position_embeddings)
        input_ids = torch.randint(6, adapter.vocab_size, (2, length))
        attention_mask = torch.ones_like(input_ids)
        attention_mask[1, length * 2 // 3 :] = 0
        input_ids[1, length * 2 // 3 :] = 0  # [PAD]
        return {"inputs": input_ids, "attention_mask": attention_mask}
    raise ValueError(f"No example input for {type(adapter).__name__}.")


def main(argv: list[str] | None = None) -> int:
    parser, args, config_dict = parse_converter_arguments(
        __doc__,
        source_help="transformers Perceiver checkpoint: folder or Hub repository id",
        tolerance_help="max relative output difference accepted",
        argv=argv,
        prog="python conversion/convert_transformers.py",
    )
    if config_dict is None:
        parser.error(f"{args.source} has no config.json: it is not a transformers checkpoint folder.")
    try:
        architecture = source_architecture(config_dict)
    except ValueError as error:
        parser.error(str(error))
    head_name = ARCHITECTURES[architecture][0]
    head = getattr(perceiver_hf, head_name)

    print(f"Converting {architecture} from {args.source} into {head_name} ...")
    model = head.from_pretrained(args.source).eval()
    inputs = example_inputs(model)

    import transformers

    reference = getattr(transformers, architecture).from_pretrained(args.source).eval()
    try:
        with staged_output_folder(args.output) as staging:  # moved to DIR only if the block completes
            model.save_pretrained(staging)
            for name in PROCESSOR_FILES:
                source_file = Path(args.source) / name
                if source_file.is_file():
                    shutil.copy(source_file, staging / name)
            if isinstance(model.perceiver.input_adapter, FlowInputAdapter):
                # transformers has no processor for flow inputs; ours makes frame pairs into them.
                train_size = model.config.output_adapter["train_size"]
                processor = PerceiverIOFlowProcessor(tile_size=train_size, min_overlap=min(20, min(train_size) // 2))
                processor.save_pretrained(staging)
            reloaded = head.from_pretrained(staging).eval()
            with torch.no_grad():
                ours = reloaded(**inputs).logits
                # transformers' masked LM decodes every position it has, whatever the input length: compare the input's.
                theirs = reference(**inputs).logits[:, : ours.shape[1]]
            error = ((ours - theirs).abs().max() / max(1.0, theirs.abs().max().item())).item()
            print(f"max relative difference to transformers: {error:.2e}")
            if error > args.tolerance:
                raise ValueError(f"the converted model differs from transformers' by {error:.2e} > {args.tolerance}")
    except ValueError as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
