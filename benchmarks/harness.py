"""Side-by-side measurement of perceiver_hf against transformers' Perceiver, each run in its own process.

A benchmark script describes cases (how to build a model, make a batch, run it); `compare` runs every
(case, batch size) in a fresh subprocess of that same script, so that one model's memory never counts
against the other, and prints a table with ours/theirs ratios.

Measured per process: median forward latency over `repeats` timed runs after warm-up, the resident memory
after loading, and the peak resident memory during the forward passes (Linux's VmHWM, reset after
loading). "Activation memory" is peak minus after-load. The first run (a warm-up, or the first timed run when
there is none) also counts the FLOPs each side computes, and each worker measures the machine's GEMM and fused
attention rates just before it loads its model, so the share of that ceiling each side reaches compares it with
the machine as it was at that moment (see `ceiling.py`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from ceiling import ceiling_seconds, count_flops, machine_report, measure_ceilings

GIB = 2**30


@dataclass
class Case:
    """One side of a comparison: `build()` returns the model, `run(model, batch_size)` does one forward."""

    name: str
    build: Callable[[], object]
    run: Callable[[object, int], object]


def cpu_description() -> str:
    """The CPU model, its vector extensions and native bf16 (what the figures depend on), and the core count."""
    from perceiver_hf.cpu import cpu_info

    return f"{cpu_info().describe()}; {os.cpu_count()} cores"


# How the C allocator treats freed memory, set for every worker process (glibc reads these at start-up). glibc's
# defaults return large freed blocks to the system (blocks above its mmap threshold, and the heap's top beyond its
# trim threshold, both adjusted as the process runs), so a forward that frees and allocates tensors of a few MiB
# takes them back page by page: minor page faults, each zeroing a page in the kernel (0.4 to 2 million per
# ImageNet forward at batch 4). "retain" keeps freed memory for reuse, as jemalloc or tcmalloc would.
ALLOCATORS = {
    "glibc": {},
    "retain": {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**32)},
}


def use_allocator(name: str) -> None:
    """Start every later worker process with the `ALLOCATORS[name]` settings."""
    for variable in ALLOCATORS["retain"]:
        os.environ.pop(variable, None)
    os.environ.update(ALLOCATORS[name])


def allocator_description() -> str:
    settings = [f"{variable}={os.environ[variable]}" for variable in ALLOCATORS["retain"] if variable in os.environ]
    return "glibc, keeping freed memory (" + ", ".join(settings) + ")" if settings else "glibc defaults"


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_memory() -> None:
    # Writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current one.
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def measure_steps(name: str, batch_size: int, step: Callable[[], object], repeats: int, warmup: int) -> dict:
    """Median time of `step()` over `repeats` runs after `warmup` runs, and the process's memory: resident after
    loading (now) and at its peak while stepping, and the minor page faults of a timed step (memory the allocator
    handed back to the system and took again: see `ALLOCATORS`)."""
    gc.collect()
    after_load = _status_kib("VmRSS") * 1024
    _reset_peak_memory()
    for _ in range(warmup):
        step()
    times = []
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    peak = _status_kib("VmHWM") * 1024
    return {
        "case": name,
        "batch_size": batch_size,
        "latency_s": statistics.median(times),
        "after_load_gib": after_load / GIB,
        "peak_gib": peak / GIB,
        "activation_gib": (peak - after_load) / GIB,
        "threads": torch.get_num_threads(),
        "page_faults_per_step": faults / max(repeats, 1),
    }


def measure(case: Case, batch_size: int, repeats: int, warmup: int) -> dict:
    """`measure_steps` of one forward, plus the FLOPs it computes (counted in the first run) and the machine's
    ceiling rates measured just before."""
    torch.set_grad_enabled(False)
    ceilings = measure_ceilings()
    model = case.build()
    flops = {}

    def step():
        if flops:
            return case.run(model, batch_size)
        flops.update(count_flops(lambda: case.run(model, batch_size)))

    return {**measure_steps(case.name, batch_size, step, repeats, warmup), **flops, **ceilings}


def worker_main(cases: dict[str, Case], argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args, _ = parser.parse_known_args(argv)
    result = measure(cases[args.worker], args.batch_size, args.repeats, args.warmup)
    print("RESULT " + json.dumps(result), flush=True)


def run_in_subprocess(
    script: Path, case: str, batch_size: int, repeats: int, warmup: int, extra: list[str], python: str | None = None
) -> dict:
    """Run `script --worker case ...` (with `python`, e.g. another virtual environment's, default this one)."""
    command = [python or sys.executable, str(script), "--worker", case, "--batch-size", str(batch_size)]
    command += ["--repeats", str(repeats), "--warmup", str(warmup), *extra]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"benchmark worker {case} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")


def compare(
    script: Path,
    ours: str,
    theirs: str,
    batch_sizes: list[int],
    repeats: int,
    warmup: int,
    extra: list[str] | None = None,
    title: str = "",
) -> list[dict]:
    """Measure `ours` and `theirs` at each batch size (alternating, each in a new process); print ratios."""
    rows = []
    for batch_size in batch_sizes:
        measured = {}
        for case in (theirs, ours):
            print(f"  measuring {case} at batch {batch_size} ...", file=sys.stderr, flush=True)
            measured[case] = run_in_subprocess(script, case, batch_size, repeats, warmup, extra or [])
        a, b = measured[ours], measured[theirs]
        rows.append(
            {
                "batch_size": batch_size,
                "ours": a,
                "theirs": b,
                "latency_ratio": a["latency_s"] / b["latency_s"],
                "peak_ratio": a["peak_gib"] / b["peak_gib"],
                "activation_ratio": a["activation_gib"] / max(b["activation_gib"], 1e-9),
            }
        )
    print_table(rows, title)
    return rows


def ceiling_share(side: dict, rates: dict | None = None) -> float:
    """The share of the machine's ceiling a measured side reaches: its FLOPs at `rates` (default: those its
    worker measured), over its latency."""
    return ceiling_seconds(side, rates or side) / side["latency_s"]


def print_table(rows: list[dict], title: str = "") -> None:
    if title:
        print(f"\n{title}\n{machine_report()}; allocator: {allocator_description()}")
    header = (
        "| batch | latency ours / theirs (s) | ratio | peak ours / theirs (GiB) | ratio "
        "| activation ours / theirs (GiB) | ratio | GFLOP ours / theirs | share of ceiling ours / theirs |"
    )
    print(header)
    print("|" + "---|" * 9)
    for row in rows:
        a, b = row["ours"], row["theirs"]
        print(
            f"| {row['batch_size']} | {a['latency_s']:.2f} / {b['latency_s']:.2f} | {row['latency_ratio']:.2f} "
            f"| {a['peak_gib']:.2f} / {b['peak_gib']:.2f} | {row['peak_ratio']:.2f} "
            f"| {a['activation_gib']:.2f} / {b['activation_gib']:.2f} | {row['activation_ratio']:.2f} "
            f"| {_gflop(a):.0f} / {_gflop(b):.0f} | {ceiling_share(a):.0%} / {ceiling_share(b):.0%} |"
        )
    for row in rows:
        print(f"ceilings measured by the batch-{row['batch_size']} workers: ours {_rates(row['ours'])}; "
              f"theirs {_rates(row['theirs'])}; minor page faults per forward: ours "
              f"{row['ours']['page_faults_per_step']:,.0f}, theirs {row['theirs']['page_faults_per_step']:,.0f}")
    sys.stdout.flush()


def _gflop(side: dict) -> float:
    return side["gemm_gflop"] + side["attention_gflop"]


def _rates(side: dict) -> str:
    return f"GEMM {side['gemm_gflops']:.0f}, attention {side['attention_gflops']:.0f} GFLOP/s"


def benchmark_parser(description: str, batch_sizes=(1, 4), repeats: int = 3, warmup: int = 1) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes; scripts add their own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(batch_sizes))
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--folder", type=Path, help="weights folder (internal, for worker processes)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument(
        "--allocator",
        choices=sorted(ALLOCATORS),
        default="glibc",
        help="glibc: its defaults (what a user gets); retain: both sides' workers keep freed memory (see ALLOCATORS)",
    )
    return parser


def save_same_weights(folder: Path, transformers_class: str, perceiver_hf_class: str, config: dict) -> None:
    """transformers' model with seeded random weights in `folder/transformers`, the same weights converted by
    perceiver_hf's `from_pretrained` in `folder/perceiver_hf`."""
    import transformers

    import perceiver_hf

    torch.manual_seed(0)
    reference = getattr(transformers, transformers_class)(transformers.PerceiverConfig(**config))
    reference.save_pretrained(folder / "transformers")
    getattr(perceiver_hf, perceiver_hf_class).from_pretrained(folder / "transformers").save_pretrained(folder / "perceiver_hf")


def load_transformers(folder: Path, class_name: str):
    import transformers

    return getattr(transformers, class_name).from_pretrained(folder / "transformers").eval()


def load_perceiver_hf(folder: Path, class_name: str):
    import perceiver_hf

    return getattr(perceiver_hf, class_name).from_pretrained(folder / "perceiver_hf", attn_implementation="sdpa").eval()


@contextmanager
def shared_weights(prepare: Callable[[Path], None]) -> Iterator[Path]:
    """A temporary folder that `prepare` fills with both libraries' copies of the same weights."""
    with tempfile.TemporaryDirectory(prefix="perceiver_bench_") as folder:
        print("Preparing official-size weights ...", file=sys.stderr, flush=True)
        prepare(Path(folder))
        yield Path(folder)


def perceiver_hf_and_transformers(folder: Path, ours: str, theirs: str, run_ours, run_theirs=None) -> dict[str, Case]:
    """The two cases of a side-by-side run: `ours` and `theirs` (class names) loaded from `folder`, each run by
    `run(model, batch_size)` (`run_theirs` defaults to `run_ours`)."""
    return {
        "transformers": Case("transformers", lambda: load_transformers(folder, theirs), run_theirs or run_ours),
        "perceiver_hf": Case("perceiver_hf", lambda: load_perceiver_hf(folder, ours), run_ours),
    }


def main(
    args: argparse.Namespace,
    cases: Callable[[Path], dict[str, Case]],
    prepare: Callable[[Path], None],
    title: str,
    extra: list[str] | None = None,
    then: Callable[[Path, list[dict]], None] | None = None,
) -> None:
    """A benchmark script's main. As a worker (`--worker CASE`), measure that case of `cases(folder)`. Otherwise
    `prepare` both libraries' copies of the same weights, compare "perceiver_hf" with "transformers" side by
    side (each in its own process of this script, `extra` arguments passed on), run `then(folder, rows)` (checks,
    more output), and write `--json`."""
    if "--worker" in sys.argv:
        worker_main(cases(args.folder), sys.argv[1:])
        return
    script = Path(sys.argv[0]).resolve()
    use_allocator(args.allocator)
    with shared_weights(prepare) as folder:
        rows = compare(
            script,
            ours="perceiver_hf",
            theirs="transformers",
            batch_sizes=args.batch_sizes,
            repeats=args.repeats,
            warmup=args.warmup,
            extra=["--folder", str(folder), *(extra or [])],
            title=title,
        )
        if then is not None:
            then(folder, rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def export_perceiver_hf(folder: Path, class_name: str) -> None:
    """perceiver_hf's model in `folder/perceiver_hf` exported as `folder/model.onnx` (for `onnxruntime_case`)."""
    from perceiver_hf.export import export_onnx

    print("Exporting to ONNX ...", file=sys.stderr, flush=True)
    export_onnx(load_perceiver_hf(folder, class_name), folder / "model.onnx")


def onnxruntime_case(folder: Path, feeds: Callable[[int], dict]) -> Case:
    """onnxruntime running `folder/model.onnx` with as many threads as PyTorch; `feeds(batch_size)` gives its inputs
    (numpy arrays by input name)."""

    def build():
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        return onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    return Case("onnxruntime", build, lambda session, batch_size: session.run(None, feeds(batch_size)))


def compare_onnxruntime(args: argparse.Namespace, folder: Path, rows: list[dict]) -> None:
    """Measure the "onnxruntime" case at each batch size of `rows`, each in its own process, and print its latency
    beside PyTorch's (ours) and the share of the ceiling it reaches on the FLOPs PyTorch counted."""
    script = Path(sys.argv[0]).resolve()
    print("\n| batch | PyTorch, perceiver_hf (s) | onnxruntime, same graph (s) | ratio | share of ceiling PyTorch / onnxruntime |")
    print("|" + "---|" * 5)
    for row in rows:
        ours = row["ours"]
        measured = run_in_subprocess(script, "onnxruntime", row["batch_size"], args.repeats, args.warmup, ["--folder", str(folder)])
        row["onnxruntime"] = measured
        share = ceiling_share({**ours, "latency_s": measured["latency_s"]}, measured)  # our FLOPs, its moment's rates
        print(
            f"| {row['batch_size']} | {ours['latency_s']:.2f} | {measured['latency_s']:.2f} "
            f"| {measured['latency_s'] / ours['latency_s']:.2f} | {ceiling_share(ours):.0%} / {share:.0%} |"
        )
    sys.stdout.flush()
