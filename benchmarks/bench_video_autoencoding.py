"""Full video reconstruction (official size, same weights): perceiver_hf's one call vs transformers' documented loop.

    python benchmarks/bench_video_autoencoding.py [--chunks 8] [--all-chunks] [--check]

transformers' `PerceiverForMultimodalAutoencoding` decodes only subsampled outputs; its documentation
reconstructs a clip (16 frames of 224x224 + 30,720 audio samples) by calling the whole model once for each of
128 chunks of output indices. perceiver_hf reconstructs everything in one call (`model(inputs=...)`, encoding
once and decoding all 804,737 queries in chunks internally).

Each side runs in its own process (see `harness.py`): latency of one full reconstruction, resident memory after
loading and peak resident memory, fp32, CPU. Every transformers chunk costs the same (a full encoder pass and
6,288 queries), so by default the loop runs `--chunks` evenly spaced chunks of the 128 and its latency is scaled
to 128 chunks (the table says so); `--all-chunks` runs all of them. `--check` also verifies, in this process,
that our reconstruction equals transformers' output for two of the chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

import harness
import torch

from perceiver_hf.presets import VIDEO_AUTOENCODING_CORE, transformers_sizes

# transformers' deepmind/multimodal-perceiver configuration.
OFFICIAL = transformers_sizes(VIDEO_AUTOENCODING_CORE, num_labels=700, attention_probs_dropout_prob=0.0)
FRAMES, SIZE, SAMPLES, SAMPLES_PER_PATCH, NUM_CHUNKS = 16, 224, 30720, 16, 128


def clip(batch_size: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch_size)
    return {
        "image": torch.rand(batch_size, FRAMES, 3, SIZE, SIZE, generator=generator),
        "audio": torch.rand(batch_size, SAMPLES, 1, generator=generator) * 2 - 1,
        "label": torch.zeros(batch_size, 700),
    }


def chunk_points(index: int) -> dict[str, torch.Tensor | None]:
    """The documented loop's chunk `index` of 128: contiguous flat output indices."""
    pixels = FRAMES * SIZE * SIZE // NUM_CHUNKS
    patches = SAMPLES // SAMPLES_PER_PATCH // NUM_CHUNKS
    return {
        "image": torch.arange(pixels * index, pixels * (index + 1)),
        "audio": torch.arange(patches * index, patches * (index + 1)),
        "label": None,
    }


def sampled_chunks(count: int) -> list[int]:
    return sorted({round(i * (NUM_CHUNKS - 1) / max(count - 1, 1)) for i in range(count)})


def cases(folder: Path, chunks: list[int]) -> dict[str, harness.Case]:
    def run_transformers(model, batch_size):
        inputs = clip(batch_size)
        return [model(inputs=inputs, subsampled_output_points=chunk_points(i)).logits for i in chunks]

    return harness.perceiver_hf_and_transformers(
        folder,
        "PerceiverIOForMultimodalAutoencoding",
        "PerceiverForMultimodalAutoencoding",
        lambda model, batch_size: model(inputs=clip(batch_size)).logits,
        run_transformers,
    )


def prepare_weights(folder: Path) -> None:
    harness.save_same_weights(
        folder, "PerceiverForMultimodalAutoencoding", "PerceiverIOForMultimodalAutoencoding", OFFICIAL
    )


@torch.no_grad()
def check(folder: Path, chunks: list[int]) -> float:
    """Max relative difference between our one-call reconstruction and transformers' chunks."""
    ours = harness.load_perceiver_hf(folder, "PerceiverIOForMultimodalAutoencoding")
    reconstruction = ours(inputs=clip(1)).logits
    del ours
    theirs = harness.load_transformers(folder, "PerceiverForMultimodalAutoencoding")
    worst = 0.0
    for index in chunks:
        points = chunk_points(index)
        expected = theirs(inputs=clip(1), subsampled_output_points=points).logits
        audio = slice(int(points["audio"][0]) * SAMPLES_PER_PATCH, (int(points["audio"][-1]) + 1) * SAMPLES_PER_PATCH)
        for name, actual in (("image", reconstruction["image"][:, points["image"]]), ("audio", reconstruction["audio"][:, audio]), ("label", reconstruction["label"])):
            scale = max(1.0, expected[name].abs().max().item())
            worst = max(worst, (actual - expected[name]).abs().max().item() / scale)
    return worst


if __name__ == "__main__":
    parser = harness.benchmark_parser(__doc__, batch_sizes=(1,), repeats=1, warmup=0)
    parser.add_argument("--chunks", type=int, default=8, help="transformers chunks to run (of 128), scaled to 128")
    parser.add_argument("--all-chunks", action="store_true", help="run transformers' whole 128-chunk loop")
    parser.add_argument("--check", action="store_true", help="also check our reconstruction against two chunks")
    parser.add_argument("--chunk-list", type=str, help="chunks the transformers worker runs (internal)")
    args, _ = parser.parse_known_args()
    chunks = list(range(NUM_CHUNKS)) if args.all_chunks else sampled_chunks(args.chunks)

    def report(folder: Path, rows: list[dict]) -> None:
        # Every chunk re-runs the whole model on the same input sizes: the loop's time scales with the chunk count.
        scale = NUM_CHUNKS / len(chunks)
        for row in rows:
            for measured in ("latency_s", "gemm_gflop", "attention_gflop"):
                row["theirs"][measured] *= scale
            row["latency_ratio"] = row["ours"]["latency_s"] / row["theirs"]["latency_s"]
            row["transformers_chunks_run"] = len(chunks)
        ran = f", {len(chunks)} chunks run and scaled to 128" if scale != 1 else ""
        harness.print_table(
            rows,
            "Full reconstruction (16x224x224 video + 30,720 audio samples), fp32, CPU "
            f"({torch.get_num_threads()} threads); transformers: documented 128-chunk loop{ran}",
        )
        for row in rows:
            print(f"speed-up at batch {row['batch_size']}: {1 / row['latency_ratio']:.1f}x")
        if args.check:
            difference = check(folder, [chunks[0], chunks[-1]])
            print(f"max relative difference to transformers on chunks {chunks[0]} and {chunks[-1]}: {difference:.2e}")

    worker_chunks = json.loads(args.chunk_list) if args.chunk_list else chunks
    harness.main(
        args,
        lambda folder: cases(folder, worker_chunks),
        prepare_weights,
        "(measured; transformers' time is for the chunks it ran)",
        extra=["--chunk-list", json.dumps(chunks)],
        then=report,
    )
