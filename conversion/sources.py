"""Where a converter's SRC comes from, read the way `from_pretrained` reads it, with errors a user can act on."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from huggingface_hub import constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from perceiver_hf.from_transformers import read_config_dict
from perceiver_hf.model_folder import check_output_folder


def read_source_config(source: str | Path) -> dict[str, Any] | None:
    """The `config.json` of a folder or Hub id (`None` for a folder without one).

    Raises `ValueError` saying what `source` was taken for: a folder that is not there, a file where a folder is
    needed, or a Hub id that is neither reachable nor in the local Hub cache."""
    path = Path(source).expanduser()
    if path.is_file():
        raise ValueError(f"{source} is a file; give the folder that holds config.json and the weights.")
    try:
        return read_config_dict(path if path.is_dir() else str(source))
    except OSError as error:
        raise ValueError(_not_found(str(source), error)) from None


def parse_converter_arguments(
    description: str, source_help: str, tolerance_help: str, argv: list[str] | None, prog: str | None = None
) -> tuple[argparse.ArgumentParser, argparse.Namespace, dict[str, Any] | None]:
    """A converter's command line (`source`, `--output`, `--tolerance`), with the output folder checked and the
    source's config.json read (None when it has none) before any weights are fetched."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help=source_help)
    parser.add_argument("--output", required=True, type=Path, help="folder to write the perceiver_hf checkpoint to")
    parser.add_argument("--tolerance", type=float, default=1e-4, help=tolerance_help)
    args = parser.parse_args(argv)
    try:
        check_output_folder(args.output)
        config_dict = read_source_config(args.source)
    except ValueError as error:
        parser.error(str(error))
    return parser, args, config_dict


def _not_found(source: str, error: OSError) -> str:
    try:
        validate_repo_id(source)
    except HFValidationError:
        return f"there is no folder {source} (and it is not a Hub id: those read 'owner/name')."
    where = (
        "HF_HUB_OFFLINE is set, so only the local Hub cache is read, and it is not there"
        if constants.HF_HUB_OFFLINE
        else "it is not in the local Hub cache and the Hub did not give it"
    )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{source} is not a local folder, and as a Hub id it cannot be loaded: {where}. ({reason})"
