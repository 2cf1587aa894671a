"""Convert DeepMind's original Perceiver IO checkpoints (Haiku pickles) into perceiver_hf folders.

    python conversion/convert_deepmind.py --task imagenet-learned --output ./vision-perceiver-learned
    python conversion/convert_deepmind.py --task imagenet-fourier --checkpoint ckpt.pystate \\
        --deepmind-config config.json --output ./small-model

Without --checkpoint the official file is downloaded from DeepMind's bucket. --deepmind-config gives the
architecture as DeepMind's constructor arguments (the layout of the reference fixtures' config.json);
without it the task's official configuration is used.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perceiver_hf  # noqa: E402
from deepmind_tasks import TASKS, DeepMindTask  # noqa: E402
from haiku_checkpoint import CheckpointError, HaikuParams, load_haiku_pickle, split_params_and_state  # noqa: E402


def convert_checkpoint(task: DeepMindTask, checkpoint: Path, deepmind_config: dict):
    """The converted perceiver_hf model (weights loaded strictly: every array placed, every parameter set)."""
    config = task.build_config(deepmind_config)
    params, state = split_params_and_state(load_haiku_pickle(checkpoint))
    haiku_params = HaikuParams(params, state)
    state_dict = task.convert(haiku_params, deepmind_config, config)
    haiku_params.check_all_used()
    model = getattr(perceiver_hf, task.head)(config).eval()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"Conversion left parameters without weights {missing[:5]} and weights without parameters {unexpected[:5]}.")
    for name, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"Parameter {name} has shape {tuple(tensor.shape)} in the checkpoint but {tuple(expected[name].shape)} in the configured model."
            )
    model.load_state_dict(state_dict, strict=True)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(TASKS), help="which DeepMind model the checkpoint is")
    parser.add_argument("--checkpoint", help="path or URL of the checkpoint (default: the official file)")
    parser.add_argument("--output", required=True, type=Path, help="folder to write")
    parser.add_argument("--deepmind-config", type=Path, help="JSON file with DeepMind's constructor arguments")
    args = parser.parse_args(argv)

    task = TASKS[args.task]
    deepmind_config = task.official_config
    if args.deepmind_config:
        deepmind_config = json.loads(args.deepmind_config.read_text())
    try:
        model = convert_checkpoint(task, Path(args.checkpoint), deepmind_config)
    except (CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model.save_pretrained(args.output)
    if task.write_processor is not None:
        task.write_processor(args.output, deepmind_config, model.config)
    if task.model_card is not None:
        shutil.copy(Path(__file__).resolve().parents[1] / "model_cards" / task.model_card, args.output / "README.md")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
