"""Masked language modelling (official language-perceiver size, 2048 bytes, same weights): perceiver_hf vs transformers.

    python benchmarks/bench_masked_lm.py [--batch-sizes 1 4] [--repeats 3] [--length 2048]

Builds transformers' PerceiverForMaskedLM with random weights (deepmind/language-perceiver's configuration),
converts the same weights to perceiver_hf, then measures each model in its own process: median forward latency
and peak memory, fp32, CPU. Both models see the same byte ids, `length` bytes per sequence; at 2048 bytes both
decode 2048 positions, at shorter lengths transformers still decodes all 2048 while perceiver_hf decodes only
the input's positions.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    Case,
    benchmark_parser,
    compare_with_transformers,
    load_perceiver_hf,
    load_transformers,
    save_same_weights,
    shared_weights,
    worker_main,
)

OFFICIAL = dict(
    num_latents=256,
    d_latents=1280,
    d_model=768,
    num_blocks=1,
    num_self_attends_per_block=26,
    num_self_attention_heads=8,
    num_cross_attention_heads=8,
    qk_channels=256,
    v_channels=1280,
    max_position_embeddings=2048,
    attention_probs_dropout_prob=0.0,
)


@functools.cache
def byte_batch(batch_size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random byte ids (6..261, past the special tokens) and a full attention mask."""
    input_ids = torch.randint(6, 262, (batch_size, length), generator=torch.Generator().manual_seed(batch_size))
    return input_ids, torch.ones_like(input_ids)


def cases(folder: Path, length: int) -> dict[str, Case]:
    def run(model, batch_size):
        input_ids, attention_mask = byte_batch(batch_size, length)
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    return {
        "transformers": Case("transformers", lambda: load_transformers(folder, "PerceiverForMaskedLM"), run),
        "perceiver_hf": Case("perceiver_hf", lambda: load_perceiver_hf(folder, "PerceiverIOForMaskedLM"), run),
    }


def prepare_weights(folder: Path) -> None:
    save_same_weights(folder, "PerceiverForMaskedLM", "PerceiverIOForMaskedLM", OFFICIAL)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--length", type=int, default=2048, help="bytes per sequence (at most 2048)")
    args, _ = parser.parse_known_args()
    if "--worker" in sys.argv:
        worker_main(cases(args.folder, args.length), sys.argv[1:])
        return
    with shared_weights(prepare_weights) as folder:
        rows = compare_with_transformers(
            Path(__file__),
            args,
            folder,
            title=f"Masked LM, {args.length} bytes, official size, fp32, CPU ({torch.get_num_threads()} threads)",
            extra=["--length", str(args.length)],
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
