"""`perceiver-hf export MODEL_DIR --output OUT_DIR`: a saved model folder in, an ONNX folder out.

The output folder holds `model.onnx` (written by PyTorch's dynamo exporter from the `torch.export` program, with
the symbolic axes of `perceiver_hf.export.signature`), the model's `config.json` and the folder's processor and
tokenizer files, so that a runtime finds everything it needs to prepare inputs beside the graph. Before the folder
appears, onnxruntime runs the graph on an example input and must reproduce PyTorch within the project's parity
tolerance; the folder is written under a temporary name and renamed when complete, so an interrupted or failed
export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

import torch

from ..core.modeling import PerceiverIOPreTrainedModel
from .signature import ExportableModel, export_program

FORMATS = ("onnx",)
# What a runtime needs to turn raw inputs into the graph's tensors.
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "chat_template.*",
)
TOLERANCE = 1e-4


def _require_onnx() -> None:
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(f"Exporting to ONNX needs {', '.join(missing)}: pip install 'perceiver-hf[export]'.")


def load_for_export(model_dir: str | Path) -> PerceiverIOPreTrainedModel:
    """The head that `model_dir` (a perceiver_hf or transformers Perceiver folder) was saved from, in fp32."""
    import perceiver_hf

    from ..from_transformers import translate_config

    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ValueError(
            f"{model_dir} is not a model folder: it has no config.json. Give the folder a perceiver_hf model was saved "
            "to (save_pretrained), or a transformers Perceiver folder."
        )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_file} is not readable JSON ({error}).") from error
    if config.get("model_type") == "perceiver":
        config = translate_config(config)
    elif config.get("model_type") != "perceiver_io":
        raise ValueError(
            f"{model_dir} holds a {config.get('model_type')!r} model; export takes Perceiver IO folders (model_type "
            "'perceiver_io', or transformers' 'perceiver'). Perceiver AR models are not exported."
        )
    name = (config.get("architectures") or ["PerceiverIOModel"])[0]
    head = getattr(perceiver_hf, name, None)
    if not (isinstance(head, type) and issubclass(head, PerceiverIOPreTrainedModel)):
        raise ValueError(f"{model_dir}/config.json names the architecture {name!r}, which perceiver_hf does not have.")
    return head.from_pretrained(model_dir, dtype=torch.float32).eval()


def export_onnx(model: PerceiverIOPreTrainedModel, path: str | Path) -> ExportableModel:
    """Write `model` as an ONNX graph to `path` (weights inline below 2 GB, else in `path.data`); returns its
    signature (input and output names, example inputs)."""
    program, exportable = export_program(model)
    save_onnx(program, exportable, path)
    return exportable


def save_onnx(program: torch.export.ExportedProgram, exportable: ExportableModel, path: str | Path) -> None:
    """Convert an exported program (from `export_program`) to ONNX and write it to `path`."""
    _require_onnx()
    with _quiet_exporter():
        onnx_program = torch.onnx.export(
            program, input_names=exportable.input_names, output_names=exportable.output_names, dynamo=True, verbose=False
        )
    onnx_program.save(str(path), external_data=None)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence what PyTorch's exporter says about itself (the torchvision operators it skips, its own deprecations)."""
    registry_logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            yield
    finally:
        registry_logger.setLevel(level)


def onnxruntime_error(path: str | Path, exportable: ExportableModel, inputs: tuple[torch.Tensor, ...] | None = None) -> float:
    """Largest difference between onnxruntime's outputs and PyTorch's, relative to max(1, max |PyTorch|)."""
    import onnxruntime

    inputs = exportable.example_inputs if inputs is None else inputs
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {name: tensor.numpy() for name, tensor in zip(exportable.input_names, inputs)})
    with torch.no_grad():
        references = exportable(*inputs)
    errors = [
        (torch.from_numpy(output).double() - reference.double()).abs().max().item()
        / max(1.0, reference.abs().max().item())
        for output, reference in zip(outputs, references)
    ]
    return max(errors)


def _copy_processor_files(source: Path, target: Path) -> list[str]:
    copied = []
    for file in sorted(source.iterdir()):
        if file.is_file() and any(fnmatch(file.name, pattern) for pattern in PROCESSOR_FILES):
            shutil.copy2(file, target / file.name)
            copied.append(file.name)
    return copied


def _check_output(output_dir: Path) -> None:
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ValueError(f"--output {output_dir} already exists and is not an empty folder; choose a new folder.")


def export_folder(model_dir: str | Path, output_dir: str | Path, format: str = "onnx", say=print) -> Path:
    """Export the model saved in `model_dir` to a new folder `output_dir` (see the module docstring)."""
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    _require_onnx()
    model_dir, output_dir = Path(model_dir), Path(output_dir).expanduser().absolute()
    _check_output(output_dir)
    model = load_for_export(model_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        say(f"Exporting {type(model).__name__} from {model_dir} ...")
        exportable = export_onnx(model, staging / "model.onnx")
        # One example (traced with two): checks a batch size other than the traced one, at half the cost.
        single = tuple(
            spec.example[:1] if spec.dynamic_axes.get(0) == "batch" else spec.example for spec in exportable.inputs
        )
        error = onnxruntime_error(staging / "model.onnx", exportable, single)
        if not error <= TOLERANCE:
            raise RuntimeError(f"onnxruntime's outputs differ from PyTorch's by {error:.2e} (relative); not writing it.")
        model.config.save_pretrained(staging)
        copied = _copy_processor_files(model_dir, staging)
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp made it private
        _check_output(output_dir)  # it may have appeared meanwhile
        os.replace(staging, output_dir)  # replaces an empty folder too
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    inputs = ", ".join(f"{spec.name}{_shape(spec)}" for spec in exportable.inputs)
    say(f"Wrote {output_dir}/model.onnx: inputs {inputs}; outputs {', '.join(exportable.output_names)}.")
    say(f"onnxruntime matches PyTorch to {error:.1e} (relative) on an example input; copied config.json"
        + "".join(f", {name}" for name in copied) + ".")
    return output_dir


def _shape(spec) -> str:
    sizes = [spec.dynamic_axes.get(axis, str(size)) for axis, size in enumerate(spec.example.shape)]
    return f" ({', '.join(sizes)})"

