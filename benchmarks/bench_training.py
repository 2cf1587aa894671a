"""Training memory levers (ImageNet learned-position model, same weights): perceiver_hf vs transformers.

    python benchmarks/bench_training.py [--batch-size 2] [--image-size 224] [--steps 2] [--num-blocks 8]

One training step = forward with labels, backward, AdamW step. Each case runs in its own process (one
warm-up step that also creates the optimizer state, then `--steps` timed steps); measured: median step time
and the peak resident memory of the process, and the peak above the loaded model ("step memory": gradients,
optimizer state and activations). Cases:

- transformers: transformers' Perceiver, attention dropout 0 (the peer);
- perceiver_hf: ours, attention dropout 0 (fused SDPA kernel; folded key/value projections in the encoder);
- perceiver_hf + dropout 0.1: transformers' default attention dropout, which rules out the fused kernel and
  the folding;
- perceiver_hf + gradient checkpointing: layer activations recomputed in the backward pass;
- perceiver_hf + bf16 autocast: matrix products in bfloat16 (weights and optimizer stay fp32). Fast only on
  CPUs with native bf16 (AVX512-BF16 / AMX) or GPUs; elsewhere PyTorch emulates it, many times slower.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import torch
from bench_image_classification import OFFICIAL
from harness import measure_steps, run_in_subprocess, save_same_weights

BASELINE = "perceiver_hf"
CASES = {
    "transformers": {},
    "perceiver_hf": {},
    "perceiver_hf + dropout 0.1": {"attention_dropout": 0.1},
    "perceiver_hf + gradient checkpointing": {"checkpointing": True},
    "perceiver_hf + bf16 autocast": {"bf16": True},
}


def build(case: str, folder: Path):
    options = CASES[case]
    if case == "transformers":
        from transformers import PerceiverForImageClassificationLearned

        return PerceiverForImageClassificationLearned.from_pretrained(folder / "transformers")
    from perceiver_hf import PerceiverIOForImageClassification

    model = PerceiverIOForImageClassification.from_pretrained(
        folder / "perceiver_hf", attn_implementation="sdpa",
        attention_probs_dropout_prob=options.get("attention_dropout", 0.0),
    )
    if options.get("checkpointing"):
        model.activation_checkpointing_enable()  # transformers v5 name of gradient_checkpointing_enable
    return model


def measure_training(case: str, folder: Path, batch_size: int, image_size: int, steps: int) -> dict:
    model = build(case, folder).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(batch_size, 3, image_size, image_size, generator=generator)
    labels = torch.randint(0, OFFICIAL["num_labels"], (batch_size,), generator=generator)
    inputs = {"inputs" if case == "transformers" else "pixel_values": pixel_values, "labels": labels}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if CASES[case].get("bf16") else contextlib.nullcontext()

    def step():
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return measure_steps(case, batch_size, step, repeats=steps, warmup=1)  # the warm-up creates AdamW's state


def prepare_weights(folder: Path, image_size: int, num_blocks: int) -> None:
    config = {**OFFICIAL, "image_size": image_size, "num_blocks": num_blocks}
    save_same_weights(folder, "PerceiverForImageClassificationLearned", "PerceiverIOForImageClassification", config)


def print_table(rows: list[dict], title: str) -> None:
    base = next(row for row in rows if row["case"] == BASELINE)
    print(f"\n{title}")
    print("| case | step time (s) | vs perceiver_hf | peak memory (GiB) | step memory (GiB) | vs perceiver_hf |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['case']} | {row['latency_s']:.2f} | {row['latency_s'] / base['latency_s']:.2f} "
            f"| {row['peak_gib']:.2f} | {row['activation_gib']:.2f} "
            f"| {row['activation_gib'] / base['activation_gib']:.2f} |"
        )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--num-blocks", type=int, default=OFFICIAL["num_blocks"],
                        help="latent blocks (official: 8); fewer for a quick run on a small machine")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--folder", type=Path, help="weights folder (internal, for worker processes)")
    parser.add_argument("--worker", help="case to measure (internal)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args, _ = parser.parse_known_args()

    if args.worker:
        result = measure_training(args.worker, args.folder, args.batch_size, args.image_size, args.steps)
        print("RESULT " + json.dumps(result), flush=True)
        return
    cases = list(dict.fromkeys([BASELINE, *args.cases]))
    with tempfile.TemporaryDirectory(prefix="perceiver_bench_training_") as folder:
        folder = Path(folder)
        print("Preparing weights ...", file=sys.stderr, flush=True)
        prepare_weights(folder, args.image_size, args.num_blocks)
        rows = []
        for case in cases:
            print(f"  measuring {case} ...", file=sys.stderr, flush=True)
            extra = ["--folder", str(folder), "--image-size", str(args.image_size), "--steps", str(args.steps)]
            rows.append(run_in_subprocess(Path(__file__), case, args.batch_size, 0, 0, extra))
            print("  " + json.dumps(rows[-1]), file=sys.stderr, flush=True)  # survives an interrupted run
    print_table(
        rows,
        f"Training step (forward, backward, AdamW), learned positions, {args.image_size}x{args.image_size}, "
        f"batch {args.batch_size}, {args.num_blocks} latent block(s) x {OFFICIAL['num_self_attends_per_block']} "
        f"self-attention layers, CPU ({torch.get_num_threads()} threads)",
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
