"""`perceiver-hf` command line (also `python -m perceiver_hf`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_DESCRIPTION = """\
Fine-tune a Perceiver IO image classifier on scikit-learn's 1,797 real handwritten digits (offline), save a
Hub-ready folder, reload it through pipeline("image-classification") and print the held-out accuracy.

Several processes (DDP; on CPU over gloo):
  accelerate launch --multi_gpu --num_processes 2 -m perceiver_hf demo
"""


def _demo_parser(subparsers) -> None:
    from .demo import DemoSettings

    defaults = DemoSettings()
    parser = subparsers.add_parser(
        "demo",
        help="fine-tune on handwritten digits end to end",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir,
                        help="where the trained model folder goes (a previous model folder there is replaced; "
                        "default: %(default)s)")
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help="training epochs (default: %(default)s)")
    parser.add_argument("--model", default=None,
                        help="start from this checkpoint (folder or Hub id; perceiver_hf or transformers' Perceiver "
                        "image classifier, e.g. a converted DeepMind ImageNet model) instead of a fresh small model; "
                        "its classifier gets 10 new outputs and digits are resized to its input size")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="global batch size, split across processes (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help="stop after this many optimizer steps (quick trials; default: all epochs)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="save a resumable checkpoint here every epoch; run the same command again to resume "
                        "from the last one (default: no checkpoints)")
    parser.add_argument("--attention-dropout", type=float, default=None,
                        help="override the model's attention dropout; > 0 keeps the fused attention kernel from "
                        "running (transformers' checkpoints carry 0.1: pass 0 to train leaner)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute layer activations in the backward pass: lower peak memory, more time")
    parser.add_argument("--bf16", action="store_true", help="train with bfloat16 autocast (CPU or GPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads per process (default: 1 for the small built-in model, whose matrices are "
                        "too small to share; PyTorch's default with --model)")


EXPORT_DESCRIPTION = """\
Export a saved model folder (perceiver_hf, or transformers' Perceiver) to a new folder holding model.onnx, the
model's config.json and the folder's processor and tokenizer files. The graph takes every batch size, any image
size (Fourier positions, conv stem), any text length up to the learned positions and any frame size (optical flow);
onnxruntime must reproduce PyTorch on example inputs before the folder is written. Needs the `export` extra:
pip install 'perceiver-hf[export]'.
"""


def _export_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model folder to ONNX",
        description=EXPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a saved model folder")
    parser.add_argument("--output", type=Path, required=True, metavar="OUT_DIR", help="the folder to create")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="graph format (default: %(default)s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perceiver-hf", description="Perceiver IO for Hugging Face Transformers.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _demo_parser(subparsers)
    _export_parser(subparsers)
    args = parser.parse_args(argv)

    if args.command == "export":
        from .export import export_folder

        try:
            export_folder(args.model_dir, args.output, args.format)
        except (ImportError, ValueError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0

    if args.command == "demo":
        from .demo import DemoSettings, run_demo

        settings = DemoSettings(**{k: v for k, v in vars(args).items() if k != "command"})
        for name in ("epochs", "batch_size", "learning_rate", "threads"):
            if getattr(settings, name) is not None and getattr(settings, name) <= 0:
                parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(settings, name)}")
        try:
            run_demo(settings)
        except (ImportError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            _leave_process_group()
    return 0


def _leave_process_group() -> None:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
