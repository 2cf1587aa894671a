"""Forecast four real series with seasonal naive, transformers' PatchTST and Perceiver IO, and compare them.

    python examples/forecast.py [--series taylor co2 elnino macrodata] [--steps 600] [--batch-size 32]
                                [--plot forecast.png] [--json results.json]

Rolling-origin evaluation (`perceiver_hf.forecasting`): each model trains once on the part of a series before its
first forecast origin, with the same budget (steps, batch, context) and optimizer, then forecasts from every
origin of the last part of the series; nothing is tuned on those windows. Printed per series: MASE (of the
median forecast) and CRPS (of 100 samples), both divided by the seasonal-naive in-sample error, so that the
seasonal-naive forecast's CRPS equals its MASE. The data sets ship inside pmdarima and statsmodels:
`pip install -e ".[timeseries]"`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from perceiver_hf.forecasting import (
    TASKS,
    PatchTSTForecaster,
    PerceiverIOForecaster,
    SeasonalNaive,
    TrainingBudget,
    Windows,
    evaluate,
    load_task,
    train,
)
from perceiver_hf.model_folder import write_file_atomically
from perceiver_hf.processing.forecast_plot import save_forecast_plot
from perceiver_hf.processing.time_series import SeriesInput

FORECASTERS = {"PatchTST": PatchTSTForecaster, "Perceiver IO": PerceiverIOForecaster}


def run_series(name: str, budget: TrainingBudget, progress: bool = True) -> tuple[dict, dict]:
    """Scores of every forecaster on series `name`, and the trained forecasters."""
    task = load_task(name)
    scores = {"seasonal naive": {**evaluate(SeasonalNaive(task.season_length), task), "seconds": 0.0}}
    trained = {}
    for label, forecaster_class in FORECASTERS.items():
        torch.manual_seed(budget.seed)
        forecaster = forecaster_class(task)
        start = time.perf_counter()
        losses = train(forecaster, task, budget, progress=progress)
        seconds = time.perf_counter() - start
        parameters = sum(p.numel() for p in forecaster.model.parameters())
        scores[label] = {**evaluate(forecaster, task), "seconds": seconds, "parameters": parameters,
                         "first_loss": float(np.mean(losses[:10])), "last_loss": float(np.mean(losses[-10:]))}
        trained[label] = forecaster
    return scores, trained


def print_table(results: dict[str, dict], budget: TrainingBudget) -> None:
    print(f"\nRolling-origin evaluation, {budget.steps} steps of batch {budget.batch_size} per model (lower is better)")
    print("| series | horizon x origins | MASE naive / PatchTST / ours | CRPS naive / PatchTST / ours | train s PatchTST / ours |")
    print("|---|---|---|---|---|")
    for name, scores in results.items():
        task = load_task(name)
        cells = [scores[label] for label in ("seasonal naive", "PatchTST", "Perceiver IO")]
        mase, crps = (" / ".join(f"{cell[metric]:.3f}" for cell in cells) for metric in ("mase", "crps"))
        seconds = f"{cells[1]['seconds']:.0f} / {cells[2]['seconds']:.0f}"
        print(f"| {name} | {task.prediction_length} x {task.num_origins} | {mase} | {crps} | {seconds} |")


def plot_last_origin(name: str, forecaster, path: Path) -> None:
    """The last origin's forecast of `forecaster` on series `name`, with the actual values, as a PNG."""
    task = load_task(name)
    origin = task.origins[-1]
    batch = Windows(task).at([origin])
    samples = np.asarray(forecaster.sample(batch, 100))[0]
    history = SeriesInput(task.values[:origin], task.timestamps[:origin], task.channel_names)
    future = task.timestamps[origin : origin + task.prediction_length]
    save_forecast_plot(
        path, history, np.median(samples, axis=0), np.quantile(samples, [0.1, 0.9], axis=0), future,
        actual=task.values[origin : origin + task.prediction_length], history_steps=7 * task.prediction_length,
        title=f"{name}: {forecaster.name} forecast from the last origin (median, 10-90% band) and the actual values",
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per model and series")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--plot", type=Path, help="PNG of Perceiver IO's forecast of the first series' last origin")
    parser.add_argument("--json", type=Path, help="also write the scores to this file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be positive")
    if args.plot and args.plot.suffix.lower() != ".png":
        parser.error(f"--plot writes a PNG: give a path ending in .png, got {str(args.plot)!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = TrainingBudget(args.steps, args.batch_size, args.learning_rate, seed=args.seed)
    results = {}
    for index, name in enumerate(args.series):
        results[name], trained = run_series(name, budget, progress=not args.no_progress)
        print(f"{name}: " + json.dumps(results[name]), flush=True)
        if index == 0 and args.plot:
            plot_last_origin(name, trained["Perceiver IO"], args.plot)
            print(f"wrote {args.plot}")
    print_table(results, budget)
    if args.json:
        write_file_atomically(args.json, lambda target: target.write_text(json.dumps(results, indent=2)))
    return results


if __name__ == "__main__":
    main()
