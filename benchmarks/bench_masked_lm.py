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
from pathlib import Path

import harness
import torch

from perceiver_hf.presets import LANGUAGE_CORE, transformers_sizes

# transformers' deepmind/language-perceiver (values of the latents' width, as DeepMind's).
OFFICIAL = transformers_sizes(
    LANGUAGE_CORE, v_channels=LANGUAGE_CORE["d_latents"], max_position_embeddings=2048, attention_probs_dropout_prob=0.0
)


@functools.cache
def byte_batch(batch_size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random byte ids (6..261, past the special tokens) and a full attention mask."""
    input_ids = torch.randint(6, 262, (batch_size, length), generator=torch.Generator().manual_seed(batch_size))
    return input_ids, torch.ones_like(input_ids)


def cases(folder: Path, length: int) -> dict[str, harness.Case]:
    def run(model, batch_size):
        input_ids, attention_mask = byte_batch(batch_size, length)
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    return harness.perceiver_hf_and_transformers(folder, "PerceiverIOForMaskedLM", "PerceiverForMaskedLM", run)


def prepare_weights(folder: Path) -> None:
    harness.save_same_weights(folder, "PerceiverForMaskedLM", "PerceiverIOForMaskedLM", OFFICIAL)


if __name__ == "__main__":
    parser = harness.benchmark_parser(__doc__)
    parser.add_argument("--length", type=int, default=2048, help="bytes per sequence (at most 2048)")
    args, _ = parser.parse_known_args()
    title = f"Masked LM, {args.length} bytes, official size, fp32, CPU ({torch.get_num_threads()} threads)"
    harness.main(args, lambda folder: cases(folder, args.length), prepare_weights, title, ["--length", str(args.length)])
