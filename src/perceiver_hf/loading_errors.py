"""What went wrong loading a saved model, in words: which file is wrong and what to do about it.

`from_pretrained` raises the loading library's own error for a cut-off weights file (safetensors' "incomplete
metadata"), a folder without weights, or a config whose sizes disagree with the weights ("look at the above
report"). `explained_loading_errors` re-raises those as errors that name the file and the fix, with the library's
error kept as the cause.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from huggingface_hub import try_to_load_from_cache
from safetensors import SafetensorError, safe_open

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# The loading reports of the `from_pretrained` calls in progress (the model's loading hook records them).
loading_reports: ContextVar[list | None] = ContextVar("loading_reports", default=None)


def _local_or_cached(source: str, filename: str, kwargs: dict) -> str | None:
    """The path of `filename` of a folder or a Hub id (if downloaded), or None."""
    name = f"{kwargs['subfolder']}/{filename}" if kwargs.get("subfolder") else filename
    if os.path.isdir(source):
        path = os.path.join(source, name)
        return path if os.path.isfile(path) else None
    try:
        path = try_to_load_from_cache(source, name, cache_dir=kwargs.get("cache_dir"), revision=kwargs.get("revision"))
    except ValueError:  # not a valid repo id
        return None
    return path if isinstance(path, str) else None


def _safetensors_files(source: str, kwargs: dict) -> list[str]:
    single = _local_or_cached(source, "model.safetensors", kwargs)
    if single is not None:
        return [single]
    folder = os.path.join(source, kwargs.get("subfolder") or "")
    if os.path.isdir(folder):
        return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".safetensors"))
    return []


def _unreadable(path: str) -> SafetensorError | None:
    try:
        with safe_open(path, framework="pt") as weights:
            weights.keys()
    except SafetensorError as error:
        return error
    return None


def _weight_shapes(files: list[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each weight's file and shape, read from the safetensors headers (no tensor is loaded)."""
    shapes = {}
    for path in files:
        with safe_open(path, framework="pt") as weights:
            for key in weights.keys():
                shapes[key] = (path, tuple(weights.get_slice(key).get_shape()))
    return shapes


class WeightSizeMismatchError(ValueError, RuntimeError):
    """The weights do not fit the config's sizes (a `RuntimeError` too, as transformers raises it)."""


def _mismatch_error(source: str, kwargs: dict, mismatched: set) -> WeightSizeMismatchError:
    config = _local_or_cached(source, "config.json", kwargs) or f"{source}'s config.json"
    shapes = _weight_shapes(_safetensors_files(source, kwargs))
    lines, files = [], set()
    for key, checkpoint_shape, model_shape in sorted(mismatched, key=lambda entry: str(entry[0]))[:3]:
        path = next((path for name, (path, _) in shapes.items() if name == key or name.endswith(f".{key}")), None)
        files.add(path or "the weights")
        lines.append(f"{key} is {tuple(checkpoint_shape)} in the weights but {tuple(model_shape)} by the config")
    more = f" (and {len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
    return WeightSizeMismatchError(
        f"The weights in {', '.join(sorted(files))} do not fit the sizes given by {config} and the arguments to "
        f"from_pretrained: {'; '.join(lines)}{more}. If the config was edited or saved for another model, restore "
        "the sizes the weights were saved with; to change a size on purpose (`num_labels`, say), pass "
        "`ignore_mismatched_sizes=True` to start the parts that differ from scratch (then train them)."
    )


@contextmanager
def explained_loading_errors(source, kwargs: dict) -> Iterator[None]:
    """Re-raise `from_pretrained`'s errors about the files of `source` (a folder or a Hub id) as errors that say
    which file is wrong and what to do; other errors pass unchanged."""
    reports: list = []
    token = loading_reports.set(reports)
    try:
        yield
    except SafetensorError as error:
        files = _safetensors_files(str(source), kwargs)
        broken = [path for path in files if _unreadable(path) is not None] or files or [f"{source}'s weights"]
        raise OSError(
            f"{', '.join(broken)} is not a complete safetensors file ({error}): it was probably cut off while being "
            "downloaded or copied. Copy or download it again (`force_download=True` for a Hub model), or save the "
            "model again with `save_pretrained`."
        ) from error
    except RuntimeError as error:
        mismatched = set().union(*(report.mismatched_keys for report in reports)) if reports else set()
        if "ignore_mismatched_sizes" not in str(error) or not mismatched:
            raise
        raise _mismatch_error(str(source), kwargs, mismatched) from error
    except OSError as error:
        source = str(source)
        if not os.path.exists(source) and (os.path.isabs(source) or source.startswith(".") or source.count("/") > 1):
            raise OSError(f"There is no folder {source}: check the path (or give a Hub id as owner/name).") from error
        folder = os.path.join(source, kwargs["subfolder"]) if kwargs.get("subfolder") else source
        config = os.path.join(folder, "config.json")
        if os.path.isfile(config) and not any(os.path.exists(os.path.join(folder, name)) for name in WEIGHT_FILES):
            raise OSError(
                f"{folder} has a config.json but no weights ({' or '.join(WEIGHT_FILES[::2])}): copy the weights "
                "file next to config.json, or save the model there with `save_pretrained` (which writes both)."
            ) from error
        raise
    finally:
        loading_reports.reset(token)
