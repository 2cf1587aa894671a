"""Image classification (learned positions, official ImageNet size, same weights): perceiver_hf vs transformers.

    python benchmarks/bench_image_classification.py [--batch-sizes 1 4] [--repeats 3]

Builds transformers' PerceiverForImageClassificationLearned with random weights, converts the same weights to
perceiver_hf, then measures each model in its own process: median forward latency and peak memory, fp32, CPU, with
the FLOPs each computes and the share of the machine's measured ceiling it reaches (see `ceiling.py`). Our model is
also exported to ONNX (`perceiver-hf export`'s graph) and run by onnxruntime beside it (`--no-onnxruntime` skips).
"""

from __future__ import annotations

import functools
from pathlib import Path

import harness
import torch

from perceiver_hf.presets import IMAGENET_CORE, transformers_sizes

# transformers' deepmind/vision-perceiver-learned (512 input channels: 256 of conv features, 256 of positions).
OFFICIAL = transformers_sizes(IMAGENET_CORE, d_model=512, num_labels=1000, image_size=224, attention_probs_dropout_prob=0.0)


@functools.cache
def pixel_values(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(batch_size))


def cases(folder: Path) -> dict[str, harness.Case]:
    both = harness.perceiver_hf_and_transformers(
        folder,
        "PerceiverIOForImageClassification",
        "PerceiverForImageClassificationLearned",
        lambda model, batch_size: model(pixel_values=pixel_values(batch_size)).logits,
        lambda model, batch_size: model(inputs=pixel_values(batch_size)).logits,
    )
    onnxruntime = harness.onnxruntime_case(folder, lambda batch_size: {"pixel_values": pixel_values(batch_size).numpy()})
    return {**both, "onnxruntime": onnxruntime}


def prepare_weights(folder: Path, onnx: bool = True) -> None:
    harness.save_same_weights(folder, "PerceiverForImageClassificationLearned", "PerceiverIOForImageClassification", OFFICIAL)
    if onnx:
        harness.export_perceiver_hf(folder, "PerceiverIOForImageClassification")


if __name__ == "__main__":
    parser = harness.benchmark_parser(__doc__)
    parser.add_argument("--no-onnxruntime", action="store_true", help="skip the ONNX export and onnxruntime")
    args, _ = parser.parse_known_args()
    title = f"Image classification, learned positions, 224x224, fp32, CPU ({torch.get_num_threads()} threads)"
    with_onnx = not args.no_onnxruntime
    harness.main(
        args,
        cases,
        functools.partial(prepare_weights, onnx=with_onnx),
        title,
        then=(lambda folder, rows: harness.compare_onnxruntime(args, folder, rows)) if with_onnx else None,
    )
