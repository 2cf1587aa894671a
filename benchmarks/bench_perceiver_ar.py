"""Perceiver AR's speed and memory next to GPT-2 and to krasserm/perceiver-io's own model, as ratios, in one run.

    python benchmarks/bench_perceiver_ar.py [--krasserm-python /path/to/venv/bin/python]

Against transformers' `GPT2LMHeadModel` (hidden size 512, 8 heads, 6 layers, vocabulary 262, context 4096, SDPA)
and a Perceiver AR of the same width, heads and self-attention layers (plus its cross-attention) with 512 latents:
a training step (forward + backward, batch 1) at context 4096, and cached greedy generation of 256 tokens after a
3,840-token prompt (time per new token, prefill excluded). Prefix dropout is off, so the training step covers
the whole prefix (with the paper's 0.5 it would be cheaper still).

With `--krasserm-python`, the python of a virtual environment where krasserm/perceiver-io 0.11.0 is installed (see
README), the same weights (a folder that library writes) also run there: a forward at context 4096, a training
step and cached generation, each compared with ours.

Every measurement runs in a fresh process: time is the median over `--repeats` runs after a warm-up; memory is
the peak resident memory above the memory after loading (Linux's VmHWM).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import GIB, _reset_peak_memory, _status_kib, cpu_description, run_in_subprocess

SCRIPT = Path(__file__).resolve()
SIZES = {"vocab_size": 262, "hidden_size": 512, "heads": 8, "layers": 6, "context": 4096, "latents": 512}


# ---------------------------------------------------------------------------------------------- models (workers)


def perceiver_ar(folder: Path | None):
    from perceiver_hf import PerceiverARConfig, PerceiverARForCausalLM

    if folder is not None:  # krasserm's folder, converted on the fly
        return PerceiverARForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    torch.manual_seed(0)
    config = PerceiverARConfig(
        vocab_size=SIZES["vocab_size"],
        max_position_embeddings=SIZES["context"],
        num_latents=SIZES["latents"],
        hidden_size=SIZES["hidden_size"],
        num_attention_heads=SIZES["heads"],
        num_hidden_layers=SIZES["layers"],
        prefix_dropout=0.0,
    )
    return PerceiverARForCausalLM._from_config(config, attn_implementation="sdpa")


def gpt2(_folder: Path | None):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=SIZES["vocab_size"],
        n_positions=SIZES["context"],
        n_embd=SIZES["hidden_size"],
        n_layer=SIZES["layers"],
        n_head=SIZES["heads"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


def krasserm(folder: Path):
    from perceiver.model.text.clm import PerceiverCausalLanguageModel

    return PerceiverCausalLanguageModel.from_pretrained(folder)


def write_krasserm_folder(folder: str) -> None:
    """krasserm's model with seeded random weights, saved as that library saves it (run in its environment)."""
    from perceiver.model.text.clm import (
        CausalLanguageModelConfig,
        PerceiverCausalLanguageModel,
        PerceiverCausalLanguageModelConfig,
    )

    torch.manual_seed(0)
    backend = CausalLanguageModelConfig(
        vocab_size=SIZES["vocab_size"],
        max_seq_len=SIZES["context"],
        max_latents=SIZES["latents"],
        num_channels=SIZES["hidden_size"],
        num_heads=SIZES["heads"],
        num_self_attention_layers=SIZES["layers"],
        cross_attention_dropout=0.0,
    )
    config = PerceiverCausalLanguageModelConfig(backend)
    config.is_decoder = True
    PerceiverCausalLanguageModel(config).save_pretrained(folder)


def tokens(length: int) -> torch.Tensor:
    return torch.randint(6, SIZES["vocab_size"], (1, length), generator=torch.Generator().manual_seed(1))


def training_step(kind: str, model) -> None:
    input_ids = tokens(SIZES["context"])
    prefix_len = SIZES["context"] - SIZES["latents"]
    if kind == "krasserm":  # its wrapper takes no labels: the same loss, computed here
        logits = model(input_ids, prefix_len=prefix_len).logits
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], input_ids[0, prefix_len + 1 :])
    else:
        loss = model(input_ids, labels=input_ids, use_cache=False).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def forward(kind: str, model) -> None:
    extra = {"use_cache": False} if kind == "ours" else {}  # krasserm's returns no cache either
    with torch.no_grad():
        model(tokens(SIZES["context"]), prefix_len=SIZES["context"] - SIZES["latents"], **extra)


def generation(kind: str, model, new_tokens: int) -> None:
    prompt = tokens(SIZES["context"] - 256)
    extra = {} if kind == "gpt2" else {"num_latents": SIZES["latents"]}
    model.generate(
        prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True, **extra
    )


BUILDERS = {"ours": perceiver_ar, "gpt2": gpt2, "krasserm": krasserm}
TASKS = ("forward", "train", "generate")


def worker(kind: str, task: str, folder: Path | None, repeats: int) -> dict:
    torch.manual_seed(0)
    model = BUILDERS[kind](folder)
    model.train(task == "train")
    gc.collect()
    after_load = _status_kib("VmRSS") * 1024
    _reset_peak_memory()
    if task == "generate":
        with torch.no_grad():
            generation(kind, model, 4)  # warm-up
            times = {}
            for new_tokens in (1, 256):
                start = time.perf_counter()
                generation(kind, model, new_tokens)
                times[new_tokens] = time.perf_counter() - start
        seconds = (times[256] - times[1]) / 255  # per new token, the prompt's prefill excluded
    else:
        run = training_step if task == "train" else forward
        run(kind, model)  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(kind, model)
            samples.append(time.perf_counter() - start)
        seconds = statistics.median(samples)
    peak = _status_kib("VmHWM") * 1024
    return {"seconds": seconds, "activation_gib": (peak - after_load) / GIB, "peak_gib": peak / GIB}


# ---------------------------------------------------------------------------------------------- driver


def measure(kind: str, task: str, args, folder: Path | None = None, python: str | None = None) -> dict:
    print(f"  {kind}: {task} ...", file=sys.stderr, flush=True)
    extra = ["--task", task] + (["--folder", str(folder)] if folder else []) + (["--small"] if args.small else [])
    extra += ["--threads", str(args.threads)] if args.threads else []
    return run_in_subprocess(SCRIPT, kind, 1, args.repeats, 0, extra, python=python)


def row(label: str, ours: dict, theirs: dict, unit: str) -> dict:
    scale = 1000.0 if unit == "ms" else 1.0
    print(
        f"| {label} | {ours['seconds'] * scale:.1f} / {theirs['seconds'] * scale:.1f} {unit} "
        f"| {ours['seconds'] / theirs['seconds']:.2f} | {ours['activation_gib']:.3f} / {theirs['activation_gib']:.3f} "
        f"| {ours['activation_gib'] / max(theirs['activation_gib'], 1e-6):.2f} |",
        flush=True,
    )
    return {"case": label, "ours": ours, "theirs": theirs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--krasserm-python", help="python of a virtual environment with perceiver-io 0.11.0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--small", action="store_true", help="an eighth of the sizes: a quick check that all runs")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, help="what to measure")
    parser.add_argument("--threads", type=int, help="torch threads in every measuring process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write-krasserm-folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.small:
        SIZES.update(context=512, latents=64, layers=2, hidden_size=128)
    if args.write_krasserm_folder:
        write_krasserm_folder(args.write_krasserm_folder)
        return 0
    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        print("RESULT " + json.dumps(worker(args.worker, args.task, args.folder, args.repeats)), flush=True)
        return 0
    if args.krasserm_python and not Path(args.krasserm_python).is_file():
        parser.error(f"--krasserm-python {args.krasserm_python} is not a file: give the python of its environment")

    threads = args.threads or torch.get_num_threads()
    print(f"CPU: {cpu_description()}; {threads} threads measuring, fp32, batch 1, torch {torch.__version__}")
    header = (
        "| case | time ours / theirs | ratio | activation memory ours / theirs (GiB) | ratio |\n|---|---|---|---|---|"
    )
    labels = {"forward": ("forward", "s"), "train": ("training step", "s"), "generate": ("generation per token", "ms")}
    rows = []
    print(f"\nPerceiver AR ({SIZES['latents']} latents) vs GPT-2, context {SIZES['context']}\n{header}")
    for task in [task for task in args.tasks if task != "forward"]:
        label, unit = labels[task]
        rows.append(row(f"{label}, GPT-2", measure("ours", task, args), measure("gpt2", task, args), unit))
    if args.krasserm_python:
        with tempfile.TemporaryDirectory(prefix="perceiver_ar_bench_") as folder:
            small = ["--small"] if args.small else []
            subprocess.run([args.krasserm_python, str(SCRIPT), "--write-krasserm-folder", folder, *small], check=True)
            print(f"\nPerceiver AR vs krasserm/perceiver-io 0.11.0 on the same weights\n{header}")
            for task in args.tasks:
                label, unit = labels[task]
                ours = measure("ours", task, args, Path(folder))
                theirs = measure("krasserm", task, args, Path(folder), python=args.krasserm_python)
                rows.append(row(f"{label}, krasserm", ours, theirs, unit))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_description(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
