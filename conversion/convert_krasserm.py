"""Convert a krasserm/perceiver-io Perceiver AR checkpoint into a perceiver_hf folder (safetensors), checking it.

    python conversion/convert_krasserm.py krasserm/perceiver-ar-clm-base --output ./perceiver-ar-clm-base

SRC is a local folder or a Hub repository id (with HF_HUB_OFFLINE=1, the local Hub cache) as that library's
`save_pretrained` writes it (`model_type "perceiver-ar-causal-language-model"`, `pytorch_model.bin`, read with
`weights_only=True`). Tokenizer files are copied along, so `pipeline("text-generation", model=DIR)` works on the
output, and a model card is written. The converted folder is reloaded and its logits compared with the converted
model's in memory; it is written to a temporary sibling first and moved into place only when that check passes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file (`python conversion/convert_krasserm.py`): run it as the package module it is, from the checkout
    # root, exactly as `python -m conversion.convert_krasserm` would.
    import runpy

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    runpy.run_module("conversion.convert_krasserm", run_name="__main__", alter_sys=True)
    sys.exit()

import torch
from transformers.utils import cached_file

import perceiver_hf
from perceiver_hf import PerceiverARForCausalLM
from perceiver_hf.model_folder import render_model_card, staged_output_folder
from perceiver_hf.perceiver_ar.from_krasserm import is_krasserm_config

from .sources import parse_converter_arguments

MODEL_CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"

TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.json",
    "spiece.model",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)


def copy_tokenizer_files(source: str, target: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        path = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
        if path is not None:
            shutil.copy(path, target / name)
            copied.append(name)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser, args, config_dict = parse_converter_arguments(
        __doc__,
        source_help="krasserm/perceiver-io Perceiver AR checkpoint: folder or Hub repository id",
        tolerance_help="max relative logit difference accepted",
        argv=argv,
    )
    if config_dict is None or not is_krasserm_config(config_dict):
        found = None if config_dict is None else config_dict.get("model_type")
        parser.error(
            f"{args.source} is not a krasserm/perceiver-io Perceiver AR checkpoint: its config.json needs model_type "
            f"'perceiver-ar-causal-language-model' (found {found!r})."
        )

    print(f"Converting {args.source} into PerceiverARForCausalLM ...")
    try:
        model = PerceiverARForCausalLM.from_pretrained(args.source).eval()
        config = model.config
        input_ids = torch.randint(0, config.vocab_size, (2, min(48, config.max_position_embeddings)))
        with staged_output_folder(args.output) as staging:  # moved to DIR only if the block completes
            model.save_pretrained(staging)
            copied = copy_tokenizer_files(str(args.source), staging)
            card = render_model_card(
                "perceiver_ar.md",
                {
                    "model_id": args.output.name,
                    "source": str(args.source),
                    "num_parameters": model.num_parameters(),
                    "config": config,
                    "perceiver_hf_version": perceiver_hf.__version__,
                    "command": f"python conversion/convert_krasserm.py {args.source} --output {args.output.name}",
                },
                MODEL_CARDS_DIR,
            )
            (staging / "README.md").write_text(card, encoding="utf-8")
            reloaded = PerceiverARForCausalLM.from_pretrained(staging).eval()
            with torch.no_grad():
                ours, theirs = reloaded(input_ids).logits, model(input_ids).logits
            error = ((ours - theirs).abs().max() / max(1.0, theirs.abs().max().item())).item()
            print(f"max relative difference after saving: {error:.2e}; tokenizer files: {copied or 'none'}")
            if error > args.tolerance:
                raise ValueError(f"the saved model differs from the converted one by {error:.2e} > {args.tolerance}")
    except (ValueError, OSError) as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
