"""A Hub-ready model folder (weights, config, processor files and a rendered model card), written all at once:
a run that fails or is interrupted never leaves a half-written one. The demo and the converters both write
their folders with this.

`staged_output_folder(path)` hands out an empty staging folder beside `path` (same file system, hidden name);
whatever the caller writes there replaces `path` by a rename only when the `with` block completes. Any
exception, Ctrl-C, or SIGTERM (the converters turn it into `SystemExit`) removes the staging folder and
leaves `path` as it was: absent, or the previous one.

Replacing is limited to folders that are clearly ours to replace (empty, or a saved perceiver_hf model), so a
typo in an output option cannot wipe an unrelated directory.

`render_model_card(template, context, templates_dir)` fills a Jinja template (YAML metadata first) and checks that
it is a valid Hub model card: undefined names are errors (a typo must not silently render as nothing), and
`license` and `library_name` must be set, so a broken template stops the run before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import ModelCard

MODEL_TYPES = ("perceiver_io", "perceiver_ar")
REQUIRED_METADATA = ("license", "library_name")


def check_output_folder(path: str | Path, option: str = "--output") -> Path:
    """`path` as an absolute path, after checking that a run may write (or replace) it; `option` names the
    command-line option that gave it, for the error message."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; give the path of a folder to create.")
    if path.is_dir() and any(path.iterdir()):
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"{option} {path} exists and is not a perceiver_hf model folder; refusing to replace it. "
                "Choose a new folder, or remove this one first."
            )
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary)` on a sibling of `path`, then rename it into place: no half-written file is ever
    left at `path`. The file gets the mode `open(path, "w")` would give (`0o666` less the umask), not the private
    mode of the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def staged_output_folder(path: str | Path, option: str = "--output") -> Iterator[Path]:
    """Yield an empty staging folder that atomically becomes `path` when the block completes without error."""
    path = check_output_folder(path, option)
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
        check_output_folder(path, option)  # it may have changed while we worked
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


def render_model_card(template: str, context: dict[str, Any], templates_dir: Path) -> str:
    """The model card text of `template` (a file in `templates_dir`) filled with `context`."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    try:
        text = environment.get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise ValueError(f"Model card template {template!r} not found in {templates_dir}.") from None
    except jinja2.TemplateError as error:
        raise ValueError(f"Model card template {template!r} does not render: {error}.") from None
    try:
        metadata = ModelCard(text, ignore_metadata_errors=False).data.to_dict()
    except Exception as error:  # YAML and model-index errors come in several types
        raise ValueError(f"Model card template {template!r} renders invalid Hub metadata: {error}") from None
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if missing:
        raise ValueError(f"Model card template {template!r} renders no {', '.join(missing)} in its metadata.")
    return text
