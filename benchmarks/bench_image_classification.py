"""Image classification (learned positions, official ImageNet size, same weights): perceiver_hf vs transformers.

    python benchmarks/bench_image_classification.py [--batch-sizes 1 4] [--repeats 3]

Builds transformers' PerceiverForImageClassificationLearned with random weights, converts the same weights to
perceiver_hf, then measures each model in its own process: median forward latency and peak memory, fp32, CPU, with
the FLOPs each computes and the share of the machine's measured ceiling it reaches (see `ceiling.py`). Our model is
also exported to ONNX (`perceiver-hf export`'s graph) and run by onnxruntime (`--no-onnxruntime` skips that).
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
    compare_onnxruntime,
    compare_with_transformers,
    export_perceiver_hf,
    load_perceiver_hf,
    load_transformers,
    onnxruntime_case,
    save_same_weights,
    shared_weights,
    worker_main,
)

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
    return {
        "transformers": Case(
            "transformers",
            lambda: load_transformers(folder, "PerceiverForImageClassificationLearned"),
            lambda m, b: m(inputs=pixel_values(b)).logits,
        ),
        "perceiver_hf": Case(
            "perceiver_hf",
            lambda: load_perceiver_hf(folder, "PerceiverIOForImageClassification"),
            lambda m, b: m(pixel_values=pixel_values(b)).logits,
        ),
        "onnxruntime": onnxruntime_case(folder, lambda b: {"pixel_values": pixel_values(b).numpy()}),
    }


def prepare_weights(folder: Path, onnx: bool = True) -> None:
    save_same_weights(folder, "PerceiverForImageClassificationLearned", "PerceiverIOForImageClassification", OFFICIAL)
    if onnx:
        export_perceiver_hf(folder, "PerceiverIOForImageClassification")


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--no-onnxruntime", action="store_true", help="skip the ONNX export and onnxruntime")
    args, _ = parser.parse_known_args()
    if "--worker" in sys.argv:
        worker_main(cases(args.folder), sys.argv[1:])
        return
    with shared_weights(functools.partial(prepare_weights, onnx=not args.no_onnxruntime)) as folder:
        rows = compare_with_transformers(
            Path(__file__),
            args,
            folder,
            title=f"Image classification, learned positions, 224x224, fp32, CPU ({torch.get_num_threads()} threads)",
        )
        if not args.no_onnxruntime:
            compare_onnxruntime(Path(__file__), args, folder, rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
