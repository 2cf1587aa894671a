"""Optical flow at the official 368x496 size (same weights): perceiver_hf vs transformers' PerceiverForOpticalFlow.

    python benchmarks/bench_optical_flow.py [--batch-sizes 1] [--repeats 1] [--chunk-size 16384] [--check]

One forward pass on a frame pair of 3x3 patches, `(batch, 2, 27, 368, 496)`, fp32, CPU. Each side runs in its own
process (see `harness.py`): median latency, resident memory after loading, peak resident memory; activation
memory is peak minus after-load. transformers materialises the 2048 x 182,528 decoder attention scores (and the
16 x 2048 x 2048 scores of every self-attention layer) in eager attention; perceiver_hf runs SDPA, folds the
encoder's key/value projections, decodes `--chunk-size` pixel queries at a time and absorbs the decoder's
query/output projections into the latents' keys/values. `--check` also compares both outputs (in this process).
"""

from __future__ import annotations

from pathlib import Path

import harness
import torch

from perceiver_hf.presets import OPTICAL_FLOW_CORE, OPTICAL_FLOW_TRAIN_SIZE, transformers_sizes

TRAIN_SIZE = OPTICAL_FLOW_TRAIN_SIZE
# transformers' deepmind/optical-flow-perceiver (322 query channels: 64 of patch features, 258 of positions).
OFFICIAL = transformers_sizes(
    OPTICAL_FLOW_CORE, d_model=322, train_size=list(TRAIN_SIZE), attention_probs_dropout_prob=0.0
)


def frame_pair(batch_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch_size)
    return torch.rand(batch_size, 2, 27, *TRAIN_SIZE, generator=generator) * 2 - 1


def cases(folder: Path, chunk_size: int | None) -> dict[str, harness.Case]:
    def run(model, batch_size):
        return model(inputs=frame_pair(batch_size)).logits

    def load_ours():
        model = harness.load_perceiver_hf(folder, "PerceiverIOForOpticalFlow")
        model.decoder.chunk_size = chunk_size or model.decoder.chunk_size
        return model

    both = harness.perceiver_hf_and_transformers(folder, "PerceiverIOForOpticalFlow", "PerceiverForOpticalFlow", run)
    return {**both, "perceiver_hf": harness.Case("perceiver_hf", load_ours, run)}


def prepare_weights(folder: Path) -> None:
    harness.save_same_weights(folder, "PerceiverForOpticalFlow", "PerceiverIOForOpticalFlow", OFFICIAL)


@torch.no_grad()
def check(folder: Path, chunk_size: int | None) -> float:
    """Max relative difference between our flow and transformers' on one frame pair."""
    built = cases(folder, chunk_size)
    ours = built["perceiver_hf"].build()
    actual = ours(inputs=frame_pair(1)).logits
    del ours
    theirs = built["transformers"].build()
    expected = theirs(inputs=frame_pair(1)).logits
    return ((actual - expected).abs().max() / max(1.0, expected.abs().max().item())).item()


if __name__ == "__main__":
    parser = harness.benchmark_parser(__doc__, batch_sizes=(1,), repeats=1, warmup=0)
    parser.add_argument("--chunk-size", type=int, help="pixel queries decoded at a time (default: the config's)")
    parser.add_argument("--check", action="store_true", help="also compare the two outputs")
    args, _ = parser.parse_known_args()

    def report(folder: Path, rows: list[dict]) -> None:
        for row in rows:
            print(f"speed-up at batch {row['batch_size']}: {1 / row['latency_ratio']:.1f}x")
        if args.check:
            print(f"max relative difference to transformers: {check(folder, args.chunk_size):.2e}")

    harness.main(
        args,
        lambda folder: cases(folder, args.chunk_size),
        prepare_weights,
        f"Optical flow, 368x496 frame pair, fp32, CPU ({torch.get_num_threads()} threads)",
        extra=[] if args.chunk_size is None else ["--chunk-size", str(args.chunk_size)],
        then=report,
    )
