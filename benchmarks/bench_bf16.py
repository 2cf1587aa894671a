"""What bfloat16 costs in accuracy and gives in speed: perceiver_hf in bf16 weights and under bf16 autocast vs fp32.

    python benchmarks/bench_bf16.py [--models image-learned image-fourier image-conv masked-lm optical-flow]
                                    [--batch-size 4] [--repeats 1] [--no-fixtures]

Accuracy, on two kinds of model:
* DeepMind's reference fixtures (`../shared/fixtures/deepmind`), converted with `conversion/convert_deepmind.py`:
  small models with random weights, run on the fixtures' own inputs (all six tasks);
* transformers-parity models: the official architectures with transformers' random initialisation, converted to
  perceiver_hf (the models the side-by-side benchmarks run), on random inputs of `--batch-size`.
For each output: top-1 agreement with fp32 where the output is a class (or byte) distribution, and the max
relative error, max |bf16 - fp32| / max |fp32|.

Speed: median latency of the transformers-parity models in fp32, bf16 weights and autocast, in this process after a
warm-up, and the bf16 GEMM and attention rates next to fp32's. The CPU line says whether bf16 is native (AMX or
AVX-512 BF16) or emulated.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_image_classification
import bench_masked_lm
import bench_optical_flow
import numpy as np
import torch
from ceiling import machine_report, measure_ceilings
from harness import load_perceiver_hf, save_same_weights

import perceiver_hf

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "deepmind"
MODES = ("bf16 weights", "autocast")


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    return ((actual.double() - reference.double()).abs().max() / reference.double().abs().max()).item()


def top1_agreement(actual: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    agree = actual.argmax(-1) == reference.argmax(-1)
    return agree[mask.bool()].float().mean().item() if mask is not None else agree.float().mean().item()


def run_modes(model: torch.nn.Module, call: Callable, repeats: int = 0) -> dict[str, tuple[dict, float | None]]:
    """Outputs (a dict of tensors) and median latency of `call(model)` in fp32, bf16 weights and bf16 autocast."""
    results = {}
    for mode in ("fp32", "autocast", "bf16 weights"):  # casting the weights to bf16 last: it rounds them
        subject = model.to(torch.bfloat16) if mode == "bf16 weights" else model
        context = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "autocast" else torch.autocast("cpu", enabled=False)
        with torch.no_grad(), context:
            outputs = call(subject)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call(subject)
                times.append(time.perf_counter() - start)
        results[mode] = ({k: v.float() for k, v in outputs.items()}, statistics.median(times) if times else None)
    return results


def accuracy_rows(name: str, results: dict, classes: dict[str, torch.Tensor | None]) -> list[str]:
    """One table row per mode: top-1 agreement of the class outputs, max relative error of every output."""
    reference = results["fp32"][0]
    rows = []
    for mode in MODES:
        outputs = results[mode][0]
        top1 = ", ".join(f"{key} {top1_agreement(outputs[key], reference[key], mask):.1%}" for key, mask in classes.items())
        errors = ", ".join(f"{key} {relative_error(outputs[key], reference[key]):.2e}" for key in reference)
        rows.append(f"| {name} | {mode} | {top1 or '-'} | {errors} |")
    return rows


# DeepMind fixtures ----------------------------------------------------------------------------------------------


def convert_fixture(task: str, folder: str, checkpoint: str, output: Path):
    """The fixture converted by the documented command (`conversion/convert_deepmind.py`), and its inputs."""
    fixture = FIXTURES / folder
    command = [sys.executable, str(REPO / "conversion" / "convert_deepmind.py"), "--task", task, "--checkpoint",
               str(fixture / checkpoint), "--deepmind-config", str(fixture / "config.json"), "--output", str(output)]
    subprocess.run(command, check=True, capture_output=True)
    head = getattr(perceiver_hf, (perceiver_hf.PerceiverIOConfig.from_pretrained(output).architectures or [""])[0])
    return head.from_pretrained(output).eval(), np.load(fixture / "io.npz")


def fixture_runs(workspace: Path):
    """(task, model, call, class outputs) per fixture: the converted model and its fixture inputs."""
    for task, folder in (("imagenet-learned", "imagenet_learned_position_encoding"),
                         ("imagenet-fourier", "imagenet_fourier_position_encoding"),
                         ("imagenet-conv", "imagenet_conv_preprocessing")):
        model, io = convert_fixture(task, folder, "checkpoint.pystate", workspace / task)
        pixels = torch.from_numpy(io["images"]).permute(0, 3, 1, 2)
        yield task, model, lambda m, x=pixels: {"logits": m(pixel_values=x).logits}, {"logits": None}
    model, io = convert_fixture("language", "language_perceiver_io_bytes", "checkpoint.pickle", workspace / "language")
    ids, mask = torch.from_numpy(io["inputs"]).long(), torch.from_numpy(io["input_mask"]).long()
    yield "language", model, lambda m: {"logits": m(input_ids=ids, attention_mask=mask).logits}, {"logits": mask}
    model, io = convert_fixture("optical-flow", "optical_flow", "checkpoint.pystate", workspace / "flow")
    patches = torch.from_numpy(io["patches"]).permute(0, 1, 4, 2, 3)
    yield "optical-flow", model, lambda m: {"flow": m(inputs=patches).logits}, {}
    model, io = convert_fixture("video-autoencoding", "video_autoencoding", "checkpoint.pystate", workspace / "video")
    clip = {"image": torch.from_numpy(io["images"]).permute(0, 1, 4, 2, 3), "audio": torch.from_numpy(io["audio"]),
            "label": torch.from_numpy(io["label_input"])}
    yield "video-autoencoding", model, lambda m: m.reconstruct(clip), {"label": None}


# transformers-parity models at the official sizes ----------------------------------------------------------------

IMAGE = bench_image_classification.OFFICIAL
PARITY = {
    "image-learned": ("PerceiverForImageClassificationLearned", "PerceiverIOForImageClassification", IMAGE),
    "image-fourier": ("PerceiverForImageClassificationFourier", "PerceiverIOForImageClassification", IMAGE),
    "image-conv": ("PerceiverForImageClassificationConvProcessing", "PerceiverIOForImageClassification", IMAGE),
    "masked-lm": ("PerceiverForMaskedLM", "PerceiverIOForMaskedLM", bench_masked_lm.OFFICIAL),
    "optical-flow": ("PerceiverForOpticalFlow", "PerceiverIOForOpticalFlow", bench_optical_flow.OFFICIAL),
}


def parity_call(name: str, batch_size: int) -> tuple[Callable, dict]:
    generator = torch.Generator().manual_seed(0)
    if name.startswith("image"):
        pixels = torch.randn(batch_size, 3, 224, 224, generator=generator)
        return (lambda m: {"logits": m(pixel_values=pixels).logits}), {"logits": None}
    if name == "masked-lm":
        ids = torch.randint(6, 262, (batch_size, 2048), generator=generator)
        return (lambda m: {"logits": m(input_ids=ids).logits}), {"logits": None}
    frames = torch.rand(batch_size, 2, 27, 368, 496, generator=generator) * 2 - 1
    return (lambda m: {"flow": m(inputs=frames).logits}), {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["image-learned", "image-fourier", "image-conv", "masked-lm"],
                        choices=sorted(PARITY), help="transformers-parity models to run at the official size")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per forward (masked LM and flow: 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed forwards per mode after the warm-up")
    parser.add_argument("--no-fixtures", action="store_true", help="skip the DeepMind fixtures")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    fp32, bf16 = measure_ceilings(torch.float32), measure_ceilings(torch.bfloat16)
    print(machine_report(fp32))
    print(f"measured now: bf16 GEMM {bf16['gemm_gflops']:.0f} GFLOP/s ({bf16['gemm_gflops'] / fp32['gemm_gflops']:.2f}x fp32), "
          f"bf16 fused attention {bf16['attention_gflops']:.0f} GFLOP/s "
          f"({bf16['attention_gflops'] / fp32['attention_gflops']:.2f}x fp32)")

    header = "| model | bf16 | top-1 agreement with fp32 | max relative error |\n|---|---|---|---|"
    if not args.no_fixtures and FIXTURES.is_dir():
        print(f"\nDeepMind fixtures (converted; their own inputs)\n{header}")
        with tempfile.TemporaryDirectory(prefix="perceiver_bf16_") as workspace:
            for task, model, call, classes in fixture_runs(Path(workspace)):
                print("\n".join(accuracy_rows(task, run_modes(model, call), classes)), flush=True)

    speed = []
    print(f"\ntransformers-parity models, official size, random weights (batch {args.batch_size} images; 1 text, 1 frame pair)")
    print(header)
    for name in args.models:
        transformers_class, ours, config = PARITY[name]
        with tempfile.TemporaryDirectory(prefix="perceiver_bf16_") as folder:
            save_same_weights(Path(folder), transformers_class, ours, config)
            model = load_perceiver_hf(Path(folder), ours)
        call, classes = parity_call(name, args.batch_size if name.startswith("image") else 1)
        results = run_modes(model, call, args.repeats)
        print("\n".join(accuracy_rows(name, results, classes)), flush=True)
        speed.append((name, {mode: latency for mode, (_, latency) in results.items()}))
        del model

    print("\n| model | fp32 (s) | bf16 weights (s) | speed-up | autocast (s) | speed-up |\n|---|---|---|---|---|---|")
    for name, latency in speed:
        base = latency["fp32"]
        print(f"| {name} | {base:.2f} | {latency['bf16 weights']:.2f} | {base / latency['bf16 weights']:.2f}x "
              f"| {latency['autocast']:.2f} | {base / latency['autocast']:.2f}x |")


if __name__ == "__main__":
    main()
