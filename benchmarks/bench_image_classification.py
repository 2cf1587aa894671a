"""Image classification (learned positions, official ImageNet size, same weights): perceiver_hf vs transformers.

    python benchmarks/bench_image_classification.py [--batch-sizes 1 4] [--repeats 3]

Builds transformers' PerceiverForImageClassificationLearned with random weights, converts the same weights to
perceiver_hf, then measures each model in its own process: median forward latency and peak memory, fp32, CPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Case, compare, worker_main  # noqa: E402

OFFICIAL = dict(
    num_latents=512,
    d_latents=1024,
    d_model=512,
    num_blocks=8,
    num_self_attends_per_block=6,
    num_self_attention_heads=8,
    num_cross_attention_heads=1,
    num_labels=1000,
    image_size=224,
    attention_probs_dropout_prob=0.0,
)


@functools.cache
def pixel_values(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(batch_size))


def cases(folder: Path) -> dict[str, Case]:
    def build_transformers():
        from transformers import PerceiverForImageClassificationLearned

        return PerceiverForImageClassificationLearned.from_pretrained(folder / "transformers").eval()

    def build_ours():
        from perceiver_hf import PerceiverIOForImageClassification

        return PerceiverIOForImageClassification.from_pretrained(folder / "perceiver_hf", attn_implementation="sdpa").eval()

    return {
        "transformers": Case("transformers", build_transformers, lambda m, b: m(inputs=pixel_values(b)).logits),
        "perceiver_hf": Case("perceiver_hf", build_ours, lambda m, b: m(pixel_values=pixel_values(b)).logits),
    }


def prepare_weights(folder: Path) -> None:
    from transformers import PerceiverConfig, PerceiverForImageClassificationLearned

    from perceiver_hf import PerceiverIOForImageClassification

    torch.manual_seed(0)
    PerceiverForImageClassificationLearned(PerceiverConfig(**OFFICIAL)).save_pretrained(folder / "transformers")
    PerceiverIOForImageClassification.from_pretrained(folder / "transformers").save_pretrained(folder / "perceiver_hf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="weights folder (internal, for worker processes)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args, _ = parser.parse_known_args()

    if "--worker" in sys.argv:
        worker_main(cases(args.folder), sys.argv[1:])
        return
    with tempfile.TemporaryDirectory(prefix="perceiver_bench_") as folder:
        folder = Path(folder)
        print("Preparing official-size weights ...", file=sys.stderr, flush=True)
        prepare_weights(folder)
        rows = compare(
            Path(__file__),
            ours="perceiver_hf",
            theirs="transformers",
            batch_sizes=args.batch_sizes,
            repeats=args.repeats,
            warmup=args.warmup,
            extra=["--folder", str(folder)],
            title=f"Image classification, learned positions, 224x224, fp32, CPU ({torch.get_num_threads()} threads)",
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
