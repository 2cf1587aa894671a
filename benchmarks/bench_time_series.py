"""Forecasting speed and memory at long contexts: Perceiver IO against transformers' PatchTST.

    python benchmarks/bench_time_series.py [--contexts 512 2048 8192] [--batch-size 32] [--horizon 48]

Both models as the forecasting evaluation builds them (`perceiver_hf.forecasting`), at the same width (128) and
depth (3 layers): PatchTST with patches of 16 steps at stride 8, 16 heads and a flattening head, Perceiver IO with
the preset's 64 latents. Per context length, each case runs in its own process: a training step (forward with the
loss, backward, AdamW) on a batch of windows, and a forecast (`generate`, 100 samples) of the same batch; median
time after a warm-up, and the peak resident memory above the loaded model ("step memory"). Printed as ratios
ours / PatchTST, and how each grows from one context length to the next.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from harness import cpu_description, measure_steps, run_in_subprocess

from perceiver_hf.forecasting import ForecastTask, PatchTSTForecaster, PerceiverIOForecaster, Windows

MODELS = {"perceiver_hf": PerceiverIOForecaster, "PatchTST": PatchTSTForecaster}
ACTIONS = ("train", "forecast")


def random_walk_task(context_length: int, horizon: int, batch_size: int) -> ForecastTask:
    """A univariate series long enough for `batch_size` windows; its values do not change the cost."""
    length = context_length + horizon + batch_size
    values = np.cumsum(np.random.default_rng(0).normal(size=(length, 1)), axis=0).astype(np.float32)
    timestamps = pd.date_range("2000-01-01", periods=length, freq="30min")
    return ForecastTask("random walk", values, timestamps, season_length=48, context_length=context_length,
                        prediction_length=horizon, num_origins=batch_size, origin_stride=1)


def measure(case: str, context_length: int, horizon: int, batch_size: int, repeats: int) -> dict:
    model_name, action = case.split(":")
    task = random_walk_task(context_length, horizon, batch_size)
    torch.manual_seed(0)
    forecaster = MODELS[model_name](task)
    batch = Windows(task).at(task.origins)
    if action == "train":
        forecaster.model.train()
        optimizer = torch.optim.AdamW(forecaster.model.parameters(), lr=1e-4)

        def step():
            forecaster.loss(batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    else:
        forecaster.model.eval()

        def step():
            with torch.no_grad():
                forecaster.sample(batch, 100)

    result = measure_steps(case, batch_size, step, repeats=repeats, warmup=1)  # the warm-up makes AdamW's state
    result["parameters"] = sum(p.numel() for p in forecaster.model.parameters())
    return result


def print_tables(rows: dict, contexts: list[int], batch_size: int, horizon: int) -> None:
    print(f"\nForecasting models at context lengths {contexts}, horizon {horizon}, batch {batch_size}, fp32, CPU "
          f"({torch.get_num_threads()} threads)\nCPU: {cpu_description()}")
    print("| context | action | time ours / PatchTST (s) | ratio | step memory ours / PatchTST (GiB) | ratio "
          "| parameters ours / PatchTST |")
    print("|---|---|---|---|---|---|---|")
    for context in contexts:
        for action in ACTIONS:
            ours, theirs = rows[(context, f"perceiver_hf:{action}")], rows[(context, f"PatchTST:{action}")]
            print(
                f"| {context} | {action} | {ours['latency_s']:.3f} / {theirs['latency_s']:.3f} "
                f"| {ours['latency_s'] / theirs['latency_s']:.2f} | {ours['activation_gib']:.2f} / "
                f"{theirs['activation_gib']:.2f} | {ours['activation_gib'] / max(theirs['activation_gib'], 1e-3):.2f} "
                f"| {ours['parameters'] / 1e6:.2f}M / {theirs['parameters'] / 1e6:.2f}M |"
            )
    print("\nGrowth from one context length to the next (time, step memory):")
    for a, b in zip(contexts, contexts[1:]):
        for case in [f"{model}:{action}" for model in MODELS for action in ACTIONS]:
            first, second = rows[(a, case)], rows[(b, case)]
            memory_growth = second["activation_gib"] / max(first["activation_gib"], 1e-3)
            print(f"  {case:>22} {a} -> {b} (x{b / a:g}): time x{second['latency_s'] / first['latency_s']:.2f}, "
                  f"memory x{memory_growth:.2f}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help="case to measure (internal)")
    parser.add_argument("--context", type=int, help="context length of the worker's case (internal)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args, _ = parser.parse_known_args()
    if args.worker:
        result = measure(args.worker, args.context, args.horizon, args.batch_size, args.repeats)
        print("RESULT " + json.dumps(result), flush=True)
        return
    rows = {}
    for context in args.contexts:
        for case in [f"{model}:{action}" for action in ACTIONS for model in reversed(MODELS)]:
            print(f"  measuring {case} at context {context} ...", file=sys.stderr, flush=True)
            extra = ["--context", str(context), "--horizon", str(args.horizon)]
            rows[(context, case)] = run_in_subprocess(Path(__file__), case, args.batch_size, args.repeats, 0, extra)
            print("  " + json.dumps(rows[(context, case)]), file=sys.stderr, flush=True)
    print_tables(rows, args.contexts, args.batch_size, args.horizon)
    if args.json:
        args.json.write_text(json.dumps([{"context": c, **row} for (c, _), row in rows.items()], indent=2))


if __name__ == "__main__":
    main()
