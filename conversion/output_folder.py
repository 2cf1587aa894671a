"""Writing an output folder all at once: a run that fails or is interrupted never leaves a half-written one.

`staged_output_folder(path)` hands out an empty staging folder beside `path` (same file system, hidden name);
whatever the caller writes there replaces `path` by a rename only when the `with` block completes. Any
exception, Ctrl-C, or SIGTERM (the converters turn it into `SystemExit`) removes the staging folder and
leaves `path` as it was: absent, or the previous conversion.

Replacing is limited to folders that are clearly ours to replace (empty, or a saved perceiver_hf model), so a
typo in `--output` cannot wipe an unrelated directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL_TYPES = ("perceiver_io", "perceiver_ar")


def check_output_folder(path: str | Path) -> Path:
    """`path` as an absolute path, after checking that a conversion may write (or replace) it."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output {path} is a file; give the path of a folder to create.")
    if path.is_dir() and any(path.iterdir()):
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"--output {path} exists and is not a perceiver_hf model folder; refusing to replace it. "
                "Choose a new folder, or remove this one first."
            )
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def staged_output_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder that atomically becomes `path` when the block completes without error."""
    path = check_output_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        # mkdtemp makes the folder private (0700); the result should get the permissions of a normal folder.
        mask = _umask()
        os.chmod(staging, 0o777 & ~mask)
        yield staging
        for file in staging.rglob("*"):  # some writers create private temporary files and rename them
            if file.is_file():
                os.chmod(file, 0o666 & ~mask)
        check_output_folder(path)  # it may have changed while we converted
        if path.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{path.name}.previous-", dir=path.parent))
            os.replace(path, previous / path.name)
            try:
                os.replace(staging, path)
            except BaseException:
                os.replace(previous / path.name, path)
                raise
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
