"""Convert DeepMind's original Perceiver IO checkpoints (Haiku pickles) into Hub-ready perceiver_hf folders.

    python conversion/convert_deepmind.py --task imagenet-conv --output ./vision-perceiver-conv
    python conversion/convert_deepmind.py --task imagenet-fourier --checkpoint ckpt.pystate \\
        --deepmind-config config.json --output ./small-model
    python conversion/convert_deepmind.py --task imagenet-learned --output ./vision-perceiver-learned \\
        --push-to-hub my-org/vision-perceiver-learned

(run from the checkout's root).

Without --checkpoint the task's official file is downloaded from DeepMind's bucket (into --cache-dir; an
interrupted download resumes where it stopped). --checkpoint takes a local file or an http(s) URL.
--deepmind-config gives the architecture as DeepMind's constructor arguments (the layout of the reference
fixtures' config.json); without it the task's official configuration is used.

The checkpoint is unpickled with an allow-list (nothing in it can run code), every array must fit the
configured architecture and be used exactly once, and the output folder (config.json, model.safetensors,
processor files, README.md model card) is written to a temporary folder and moved into place only when
complete and reloaded successfully. --push-to-hub then uploads it with huggingface_hub.

Exit status: 0 done, 1 conversion or download failed (nothing written), 2 bad arguments,
3 upload failed (the local folder is complete).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run as a file (`python conversion/convert_deepmind.py`): run it as the package module it is, from the checkout root,
    # exactly as `python conversion/convert_deepmind.py` would.
    import runpy

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    runpy.run_module("conversion.convert_deepmind", run_name="__main__", alter_sys=True)
    sys.exit()

import torch

import perceiver_hf
from perceiver_hf.model_folder import check_output_folder, render_model_card, staged_output_folder

from .deepmind_tasks import TASKS, DeepMindTask
from .downloads import DownloadError, download, is_url
from .haiku_checkpoint import CheckpointError, HaikuParams, load_haiku_pickle, split_params_and_state

# Model card templates (a task's own, or the generic one); see `model_card_context` for the values they get.
MODEL_CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"
DEFAULT_MODEL_CARD = "deepmind.md"

# A mirror of DeepMind's bucket (same file names) can stand in for it, e.g. on a machine without internet access.
BUCKET_ENV = "PERCEIVER_HF_DEEPMIND_BUCKET"
CACHE_ENV = "PERCEIVER_HF_CACHE"
EXIT_FAILED, EXIT_PUSH_FAILED = 1, 3  # argparse exits with 2 on bad arguments


def tasks_table() -> str:
    rows = [f"  {name:<20} {task.url}\n  {'':<20} {task.summary}" for name, task in sorted(TASKS.items())]
    return "tasks and their official checkpoints:\n" + "\n".join(rows)


def official_download_url(task: DeepMindTask) -> str:
    bucket = os.environ.get(BUCKET_ENV)
    return f"{bucket.rstrip('/')}/{task.filename}" if bucket else task.url


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "perceiver_hf") / "deepmind"


def load_deepmind_config(task: DeepMindTask, path: Path | None) -> dict[str, Any]:
    """DeepMind's constructor arguments: the task's official ones, or those in a `config.json` file."""
    if path is None:
        return copy.deepcopy(task.official_config)
    try:
        deepmind_config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"--deepmind-config {path} does not exist.") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"--deepmind-config {path} is not readable JSON ({error}).") from None
    if not isinstance(deepmind_config, dict):
        raise ValueError(f"--deepmind-config {path} holds a {type(deepmind_config).__name__}, not a JSON object.")
    return deepmind_config


def build_config(task: DeepMindTask, deepmind_config: dict[str, Any]) -> perceiver_hf.PerceiverIOConfig:
    try:
        return task.build_config(deepmind_config)
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"The DeepMind configuration does not describe a --task {task.name} model "
            f"({type(error).__name__}: {error}); compare it with the task's official configuration (or the "
            "fixtures' config.json)."
        ) from None


def check_task(task: DeepMindTask, deepmind_config: dict[str, Any]) -> None:
    """Refuse DeepMind arguments that describe another task's model: its card, name and accuracy would be wrong."""
    if task.task_of is None:
        return
    described, why = task.task_of(deepmind_config)
    if described != task.name:
        fix = f"that is a --task {described} model" if described else "none of the tasks converts that model"
        raise ValueError(f"--task {task.name} does not match the DeepMind configuration ({why}): {fix}.")


def convert_checkpoint(task: DeepMindTask, checkpoint: Path | dict, deepmind_config: dict[str, Any]):
    """The converted perceiver_hf model (`checkpoint`: a file, or its unpickled tree).

    Every checkpoint array is checked against the configured model's parameter shapes as it is read (a
    mismatch names the Haiku parameter), every array must be used, every model parameter must be set.
    """
    config = build_config(task, deepmind_config)
    head = getattr(perceiver_hf, task.head)
    model = _without_weights(head, config)
    target_shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    tree = load_haiku_pickle(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    params, state = split_params_and_state(tree)
    haiku_params = HaikuParams(params, state, target_shapes=target_shapes)
    try:
        state_dict = task.convert(haiku_params, deepmind_config, config)
    except (RuntimeError, KeyError, IndexError, TypeError) as error:  # a task's own reshapes on a wrong array
        raise CheckpointError(
            f"Converting failed after reading `{haiku_params.last_taken}`: {type(error).__name__}: {error}. The "
            "checkpoint does not fit the configured architecture."
        ) from error
    haiku_params.check_state_dict(state_dict)
    haiku_params.check_all_used()
    model.load_state_dict(state_dict, strict=True, assign=True)
    if any(tensor.is_meta for tensor in [*model.parameters(), *model.buffers()]):
        # Something the state dict does not reach (tied weights, non-persistent buffers): build it for real.
        model = head(config)
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _without_weights(head, config):
    """The head with its weights on the meta device (no memory, no random init): the converted tensors are
    then assigned as they are. Falls back to a normal build for heads whose construction reads tensor values."""
    try:
        with torch.device("meta"):
            return head(config)
    except (RuntimeError, NotImplementedError):
        return head(config)


def fetch_checkpoint(
    source: str | None, task: DeepMindTask, cache_dir: Path, progress: bool = True
) -> tuple[Path, str | None]:
    """(local file, the URL it came from or None) for `--checkpoint` (a path or URL; None: the official file)."""
    url = official_download_url(task) if source is None else source
    if not is_url(url):
        path = Path(url).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--checkpoint {path} does not exist or is not a file.")
        return path, None
    name = Path(url.split("?")[0]).name or task.filename
    destination = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if destination.is_file():
        print(f"Using {url} downloaded before: {destination}")
    else:
        print(f"Downloading {url}")
        download(url, destination, progress=progress)
    return destination, url


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 23), b""):
            digest.update(block)
    return digest.hexdigest()


def conversion_command(args: argparse.Namespace) -> str:
    """The command line as a user would type it, with local paths reduced to file names."""
    parts = ["python", "-m", "conversion.convert_deepmind", "--task", args.task]
    if args.checkpoint:
        parts += ["--checkpoint", args.checkpoint if is_url(args.checkpoint) else Path(args.checkpoint).name]
    if args.deepmind_config:
        parts += ["--deepmind-config", Path(args.deepmind_config).name]
    parts += ["--output", Path(args.output).name]
    if args.push_to_hub:
        parts += ["--push-to-hub", args.push_to_hub]
    return shlex.join(parts)


def render_task_card(task: DeepMindTask, card_context: dict[str, Any]) -> str:
    """The task's model card (its own template in `model_cards/`, or the generic one)."""
    return render_model_card(task.model_card or DEFAULT_MODEL_CARD, card_context, MODEL_CARDS_DIR)


def write_model_folder(
    task: DeepMindTask,
    model,
    deepmind_config: dict[str, Any],
    output: Path,
    card_context: dict[str, Any],
) -> None:
    """Write config, weights, processor files and model card, check the result, and move it to `output`."""
    card = render_task_card(task, card_context)  # a broken template fails before anything is written
    with staged_output_folder(output) as staging:
        model.save_pretrained(staging)
        if task.write_processor is not None:
            task.write_processor(staging, deepmind_config, model.config)
        (staging / "README.md").write_text(card)
        reloaded = getattr(perceiver_hf, task.head).from_pretrained(staging)
        expected = model.state_dict()
        for name, tensor in reloaded.state_dict().items():
            if not torch.equal(tensor, expected[name]):
                raise CheckpointError(f"The saved folder does not reproduce `{name}`; nothing was written.")


def push_to_hub(folder: Path, repo_id: str, task: DeepMindTask) -> str:
    """Upload the finished folder; returns the repository URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        commit_message=f"Perceiver IO {task.name}, converted from DeepMind's checkpoint with perceiver_hf",
    )
    return str(url)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python conversion/convert_deepmind.py",
        description=__doc__,
        epilog=tasks_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", choices=sorted(TASKS), metavar="TASK", help="which DeepMind model (see below)")
    parser.add_argument("--checkpoint", metavar="PATH_OR_URL", help="the checkpoint (default: the official file)")
    parser.add_argument("--output", type=Path, metavar="DIR", help="folder to write (created or replaced whole)")
    parser.add_argument(
        "--deepmind-config",
        type=Path,
        metavar="JSON_FILE",
        help="DeepMind's constructor arguments (default: official)",
    )
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the finished folder to this Hub repository")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"where downloads go (default: ${CACHE_ENV}/deepmind or ~/.cache/perceiver_hf/deepmind)",
    )
    parser.add_argument("--list-tasks", action="store_true", help="list the tasks and their official URLs, then exit")
    return parser


def _check_push_target(parser: argparse.ArgumentParser, repo_id: str) -> None:
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        parser.error(f"--push-to-hub {repo_id!r} is not a valid Hub repository id: {error}")
    if get_token() is None:
        parser.error("--push-to-hub needs a Hugging Face token: run `hf auth login` or set HF_TOKEN.")


def _terminate(signum, frame):
    # SIGTERM becomes SystemExit, so the staging folder is cleaned up as for Ctrl-C.
    raise SystemExit(128 + signum)


def is_official(task: DeepMindTask, config: perceiver_hf.PerceiverIOConfig) -> bool:
    """Whether `config` is the task's official architecture (whatever the form of the DeepMind arguments)."""
    return build_config(task, task.official_config).to_dict() == config.to_dict()


def model_card_context(
    task: DeepMindTask,
    config: perceiver_hf.PerceiverIOConfig,
    deepmind_config: dict[str, Any],
    *,
    source: str,
    checkpoint_sha256: str,
    num_parameters: int,
    model_id: str,
    command: str,
) -> dict[str, Any]:
    """The values every model card template gets, plus the task's own `metadata`:

        task, summary, head                  the `--task` name, its one-line summary, the perceiver_hf head class
        official_url, official_file          where DeepMind publishes the checkpoint
        official_configuration               True when converted with the task's official architecture
        source, checkpoint_sha256            the converted file (URL, or file name for a local file) and its SHA-256
        num_parameters                       parameter count of the checkpoint
        model_id                             the Hub repository (`--push-to-hub`) or else the output folder's name
        command                              the conversion command, as a user would type it
        perceiver_hf_version
        config, deepmind_config              the converted `PerceiverIOConfig` and DeepMind's constructor arguments

    Templates (in `model_cards/`) begin with the card's YAML metadata between `---` lines.
    """
    return {
        **task.metadata,
        **(task.card_values(deepmind_config, config) if task.card_values else {}),
        "task": task.name,
        "summary": task.summary,
        "head": task.head,
        "official_url": task.url,
        "official_file": task.filename,
        "official_configuration": is_official(task, config),
        "source": source,
        "checkpoint_sha256": checkpoint_sha256,
        "num_parameters": num_parameters,
        "model_id": model_id,
        "command": command,
        "perceiver_hf_version": perceiver_hf.__version__,
        "config": config,
        "deepmind_config": deepmind_config,
    }


def run(args: argparse.Namespace) -> Path:
    """Download (if needed), convert and write; returns the output folder."""
    task = TASKS[args.task]
    output = check_output_folder(args.output)
    deepmind_config = load_deepmind_config(task, args.deepmind_config)
    build_config(task, deepmind_config)  # a malformed configuration fails before any download
    check_task(task, deepmind_config)
    checkpoint, url = fetch_checkpoint(args.checkpoint, task, args.cache_dir or default_cache_dir())
    print(f"Reading {checkpoint}")
    try:
        tree = load_haiku_pickle(checkpoint)
    except CheckpointError as error:
        if url is not None:  # an unusable download must not be reused from the cache
            checkpoint.unlink(missing_ok=True)
            raise CheckpointError(
                f"{error} (The downloaded file was removed; run again to download it anew.)"
            ) from None
        raise
    print(f"Converting into {task.head}")
    model = convert_checkpoint(task, tree, deepmind_config)
    del tree
    card_context = model_card_context(
        task,
        model.config,
        deepmind_config,
        source=url or checkpoint.name,
        checkpoint_sha256=_sha256(checkpoint),
        num_parameters=sum(tensor.numel() for tensor in model.parameters()),
        model_id=args.push_to_hub or output.name,
        command=conversion_command(args),
    )
    print(f"Writing {output}")
    write_model_folder(task, model, deepmind_config, output, card_context)
    print(f"Wrote {output}")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_tasks:
        print(tasks_table())
        return 0
    if args.task is None or args.output is None:
        parser.error("--task and --output are required.\n\n" + tasks_table())
    if args.push_to_hub:
        _check_push_target(parser, args.push_to_hub)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        output = run(args)
    except (CheckpointError, DownloadError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)

    if args.push_to_hub:
        try:
            url = push_to_hub(output, args.push_to_hub, TASKS[args.task])
        except Exception as error:  # network, authentication, permission: all leave the folder as it is
            print(
                f"error: uploading to {args.push_to_hub} failed ({type(error).__name__}: {error}). The converted "
                f"folder is complete at {output}; upload it later with `hf upload {args.push_to_hub} {output}`.",
                file=sys.stderr,
            )
            return EXIT_PUSH_FAILED
        print(f"Uploaded to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
