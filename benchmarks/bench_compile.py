"""What `torch.compile` of the forward gives for inference: compile time and speed-up over eager perceiver_hf.

    python benchmarks/bench_compile.py [--model image-learned] [--batch-size 1] [--repeats 3] [--mode default]

Official size, random weights, fp32, CPU, one process: eager latency (median of `--repeats` after a warm-up), the
time of the first compiled call (compilation included), compiled latency, and the largest difference between the
two outputs relative to max(1, max |eager|). Inductor generates C++/OpenMP kernels for the element-wise work
(layer norms, GELU, residual additions, copies) and fuses it; matrix products and fused attention stay library
calls, so the gain is bounded by the share of time outside them (the ceiling share printed by the side-by-side
benchmarks).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_bf16 import PARITY, parity_call
from ceiling import machine_report, measure_ceilings
from harness import load_perceiver_hf, save_same_weights


def timed(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="image-learned", choices=sorted(PARITY))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", default="default", help="torch.compile mode (default, max-autotune-no-cudagraphs)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print(machine_report(measure_ceilings()))

    transformers_class, ours, config = PARITY[args.model]
    with tempfile.TemporaryDirectory(prefix="perceiver_compile_") as folder:
        save_same_weights(Path(folder), transformers_class, ours, config)
        model = load_perceiver_hf(Path(folder), ours)
    call, _ = parity_call(args.model, args.batch_size)

    eager_output = call(model)  # warm-up
    eager = timed(lambda: call(model), args.repeats)
    compiled_model = torch.compile(model, mode=args.mode)
    start = time.perf_counter()
    compiled_output = call(compiled_model)
    first_call = time.perf_counter() - start
    compiled = timed(lambda: call(compiled_model), args.repeats)
    difference = max(
        ((compiled_output[key] - eager_output[key]).abs().max() / max(1.0, eager_output[key].abs().max())).item()
        for key in eager_output
    )
    print(f"\n{args.model}, batch {args.batch_size}, fp32, torch.compile(mode={args.mode!r})")
    print("| eager (s) | first compiled call (s) | compiled (s) | speed-up | max relative difference |")
    print("|---|---|---|---|---|")
    print(f"| {eager:.2f} | {first_call:.1f} | {compiled:.2f} | {eager / compiled:.2f}x | {difference:.1e} |")


if __name__ == "__main__":
    main()
