"""Train a byte-level Perceiver AR on the Python standard library's sources and compare it with GPT-2.

    python examples/train_perceiver_ar.py --output ./perceiver-ar-stdlib

Offline: the text is the `.py` files of the standard library of the Python running this script (every machine has
it), split into training and held-out data by file, tokenized by transformers' byte-level `PerceiverTokenizer`.
Three models of the same width, depth and (up to position tables) parameter count train for the same steps on the
same windows, each in its own way:

* `perceiver-ar`: windows of `--context` bytes; the last `--latents` are latents, the rest a prefix that only the
  cross-attention reads (with the paper's prefix dropout);
* `gpt2-long`: transformers' `GPT2LMHeadModel` on the same windows of `--context` bytes;
* `gpt2-short`: the same GPT-2 on the last `--latents` bytes of each window only.

Each is evaluated on held-out windows by the bits per byte of the same targets: the last `--latents - 1` bytes of
each window, predicted from all bytes before them that the model can see. A long prefix should help Perceiver AR
beat the short GPT-2 at a similar step time, while the long GPT-2 pays for its context in every layer.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import sysconfig
import time
import zlib
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PerceiverTokenizer

from perceiver_hf import PerceiverARConfig, PerceiverARForCausalLM

MODELS = ("perceiver-ar", "gpt2-long", "gpt2-short")


def stdlib_sources(held_out: bool, max_bytes: int) -> list[str]:
    """`.py` files of the standard library (no site-packages), about every tenth file held out, up to `max_bytes`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if "site-packages" in relative or (zlib.crc32(relative.encode()) % 10 == 0) != held_out:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        total += len(text.encode("utf-8"))
        if total >= max_bytes:
            break
    if not texts:
        raise ValueError(f"No Python sources found under {root}: this example needs the standard library's sources.")
    return texts


def token_stream(texts: list[str], tokenizer: PerceiverTokenizer) -> torch.Tensor:
    ids = tokenizer("\n".join(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def windows(stream: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    return torch.stack([stream[start : start + length] for start in starts.tolist()])


def build_models(args: argparse.Namespace, vocab_size: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(args.seed)
    ar = PerceiverARForCausalLM(
        PerceiverARConfig(
            vocab_size=vocab_size, max_position_embeddings=args.context, num_latents=args.latents,
            hidden_size=args.hidden, num_attention_heads=args.heads, num_hidden_layers=args.layers,
            prefix_dropout=args.prefix_dropout,
        )
    )

    def gpt2(context: int) -> GPT2LMHeadModel:
        # Depth: Perceiver AR's cross-attention layer plus its self-attention layers.
        config = GPT2Config(
            vocab_size=vocab_size, n_positions=context, n_embd=args.hidden, n_layer=args.layers + 1,
            n_head=args.heads, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=None, eos_token_id=None,
        )
        torch.manual_seed(args.seed)
        return GPT2LMHeadModel(config)

    return {"perceiver-ar": ar, "gpt2-long": gpt2(args.context), "gpt2-short": gpt2(args.latents)}


def target_logits(name: str, model: torch.nn.Module, batch: torch.Tensor, latents: int) -> torch.Tensor:
    """Logits predicting the window's last `latents - 1` bytes."""
    if name == "perceiver-ar":
        return model(batch, use_cache=False).logits[:, :-1]
    if name == "gpt2-long":
        return model(batch, use_cache=False).logits[:, -latents:-1]
    return model(batch[:, -latents:], use_cache=False).logits[:, :-1]


def train_one(name, model, args, train_stream, held_out_batches) -> dict[str, float]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / args.warmup))
    generator = torch.Generator().manual_seed(args.seed)  # the same windows for every model
    losses, times = [], []
    for _ in tqdm(range(args.steps), desc=name, file=sys.stderr):
        starts = torch.randint(0, len(train_stream) - args.context, (args.batch_size,), generator=generator)
        batch = windows(train_stream, starts, args.context)
        if name == "gpt2-short":
            batch = batch[:, -args.latents :]
        began = time.perf_counter()
        loss = model(batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
        losses.append(loss.item())
    model.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for batch in held_out_batches:
            logits = target_logits(name, model, batch, args.latents)
            targets = batch[:, -args.latents + 1 :]
            nll += torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
            count += targets.numel()
    steady = times[len(times) // 5 :] or times  # the first steps warm up allocators and kernels
    return {
        "held_out_bits_per_byte": nll / count / math.log(2),
        "step_seconds": sum(steady) / len(steady),
        "first_losses": losses[: max(1, len(losses) // 4)],
        "last_losses": losses[-max(1, len(losses) // 4) :],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, help="folder for results.json and the trained Perceiver AR")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--latents", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=3, help="self-attention layers (GPT-2 gets one more)")
    parser.add_argument("--prefix-dropout", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--eval-windows", type=int, default=64)
    parser.add_argument("--train-bytes", type=int, default=4_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or not names:
        parser.error(f"--models takes names from {MODELS}, got {args.models!r}")
    if not 0 < args.latents < args.context:
        parser.error(f"--latents ({args.latents}) must lie between 0 and --context ({args.context})")
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        parser.error(f"--output {args.output} is a file; give a folder")

    tokenizer = PerceiverTokenizer(padding_side="left")  # left: Perceiver AR's latents are the last positions
    train_stream = token_stream(stdlib_sources(False, args.train_bytes), tokenizer)
    held_out_stream = token_stream(stdlib_sources(True, max(args.train_bytes // 8, 4 * args.context)), tokenizer)
    if len(held_out_stream) <= args.context or len(train_stream) <= args.context:
        parser.error(f"Not enough text for windows of {args.context} bytes; lower --context or raise --train-bytes")
    offsets = torch.linspace(0, len(held_out_stream) - args.context - 1, args.eval_windows).long()
    held_out = [windows(held_out_stream, chunk, args.context) for chunk in offsets.split(args.batch_size)]

    models = build_models(args, tokenizer.vocab_size)
    results = {name: train_one(name, models[name], args, train_stream, held_out) for name in names}
    print(f"context {args.context}, latents {args.latents}, width {args.hidden}, {args.steps} steps of {args.batch_size}")
    print(f"{'model':<14}{'bits/byte':>10}{'step s':>9}{'params':>10}")
    for name, result in results.items():
        row = f"{name:<14}{result['held_out_bits_per_byte']:>10.3f}{result['step_seconds']:>9.3f}"
        print(f"{row}{result['parameters']:>10,}")
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        summary = {"arguments": {k: str(v) for k, v in vars(args).items()}, "results": results}
        temporary = args.output / "results.json.partial"
        temporary.write_text(json.dumps(summary, indent=1))
        temporary.replace(args.output / "results.json")
        if "perceiver-ar" in results:
            models["perceiver-ar"].save_pretrained(args.output)
            tokenizer.save_pretrained(args.output)
    return results


if __name__ == "__main__":
    main()
