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
    print_table,
    save_same_weights,
    shared_weights,
    worker_main,
)

# transformers' deepmind/multimodal-perceiver configuration.
OFFICIAL = dict(
    num_latents=784,
    d_latents=512,
    d_model=704,
    num_blocks=1,
    num_self_attends_per_block=8,
    num_self_attention_heads=8,
    num_cross_attention_heads=1,
    num_labels=700,
    attention_probs_dropout_prob=0.0,
)
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


def cases(folder: Path, chunks: list[int]) -> dict[str, Case]:
    def run_transformers(model, batch_size):
        inputs = clip(batch_size)
        return [model(inputs=inputs, subsampled_output_points=chunk_points(i)).logits for i in chunks]

    return {
        "transformers": Case(
            "transformers", lambda: load_transformers(folder, "PerceiverForMultimodalAutoencoding"), run_transformers
        ),
        "perceiver_hf": Case(
            "perceiver_hf",
            lambda: load_perceiver_hf(folder, "PerceiverIOForMultimodalAutoencoding"),
            lambda m, b: m(inputs=clip(b)).logits,
        ),
    }


def prepare_weights(folder: Path) -> None:
    save_same_weights(folder, "PerceiverForMultimodalAutoencoding", "PerceiverIOForMultimodalAutoencoding", OFFICIAL)


@torch.no_grad()
def check(folder: Path, chunks: list[int]) -> float:
    """Max relative difference between our one-call reconstruction and transformers' chunks."""
    ours = load_perceiver_hf(folder, "PerceiverIOForMultimodalAutoencoding")
    reconstruction = ours(inputs=clip(1)).logits
    del ours
    theirs = load_transformers(folder, "PerceiverForMultimodalAutoencoding")
    worst = 0.0
    for index in chunks:
        points = chunk_points(index)
        expected = theirs(inputs=clip(1), subsampled_output_points=points).logits
        audio = slice(int(points["audio"][0]) * SAMPLES_PER_PATCH, (int(points["audio"][-1]) + 1) * SAMPLES_PER_PATCH)
        for name, actual in (("image", reconstruction["image"][:, points["image"]]), ("audio", reconstruction["audio"][:, audio]), ("label", reconstruction["label"])):
            scale = max(1.0, expected[name].abs().max().item())
            worst = max(worst, (actual - expected[name]).abs().max().item() / scale)
    return worst


def main() -> None:
    parser = benchmark_parser(__doc__, batch_sizes=(1,), repeats=1, warmup=0)
    parser.add_argument("--chunks", type=int, default=8, help="transformers chunks to run (of 128), scaled to 128")
    parser.add_argument("--all-chunks", action="store_true", help="run transformers' whole 128-chunk loop")
    parser.add_argument("--check", action="store_true", help="also check our reconstruction against two chunks")
    parser.add_argument("--chunk-list", type=str, help="chunks the transformers worker runs (internal)")
    args, _ = parser.parse_known_args()
    if "--worker" in sys.argv:
        worker_main(cases(args.folder, json.loads(args.chunk_list)), sys.argv[1:])
        return
    chunks = list(range(NUM_CHUNKS)) if args.all_chunks else sampled_chunks(args.chunks)
    with shared_weights(prepare_weights) as folder:
        rows = compare_with_transformers(
            Path(__file__),
            args,
            folder,
            title="(measured; transformers' time is for the chunks it ran)",
            extra=["--chunk-list", json.dumps(chunks)],
        )
        difference = check(folder, [chunks[0], chunks[-1]]) if args.check else None
    # Every chunk re-runs the whole model on the same input sizes: the loop's time scales with the chunk count.
    scale = NUM_CHUNKS / len(chunks)
    for row in rows:
        row["theirs"]["latency_s"] *= scale
        row["theirs"]["gemm_gflop"] *= scale
        row["theirs"]["attention_gflop"] *= scale
        row["latency_ratio"] = row["ours"]["latency_s"] / row["theirs"]["latency_s"]
        row["transformers_chunks_run"] = len(chunks)
    print_table(
        rows,
        f"Full reconstruction (16x224x224 video + 30,720 audio samples), fp32, CPU ({torch.get_num_threads()} threads); "
        f"transformers: documented 128-chunk loop" + (f", {len(chunks)} chunks run and scaled to 128" if scale != 1 else ""),
    )
    for row in rows:
        print(f"speed-up at batch {row['batch_size']}: {1 / row['latency_ratio']:.1f}x")
    if difference is not None:
        print(f"max relative difference to transformers on chunks {chunks[0]} and {chunks[-1]}: {difference:.2e}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
