"""Every head as a graph: `torch.export` programs and ONNX files with symbolic sizes, checked against eager PyTorch.

The eager reference decodes in chunks (small `input_chunk_size` and decoder `chunk_size`); the graphs read and
decode in one piece. Inputs of other sizes than the example the graph was traced with (batch 1 and 3, other image,
frame and text sizes, other numbers of decoded points) must give the eager outputs within the parity tolerance.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import PerceiverConfig, PerceiverForSequenceClassification, PerceiverTokenizer

from perceiver_hf.cli import main as cli
from perceiver_hf.export import ExportableModel, export_program, onnxruntime_error, save_onnx
from tests.helpers import assert_parity
from tests.helpers.small_heads import BUILDERS, build


def other_inputs(exportable: ExportableModel, batch_size: int, scale: float) -> tuple[torch.Tensor, ...]:
    """Inputs like the examples, with the batch and every other symbolic axis resized (by `scale`)."""
    generator = torch.Generator().manual_seed(batch_size)
    tensors = []
    for spec in exportable.inputs:
        shape = list(spec.example.shape)
        for axis, name in spec.dynamic_axes.items():
            shape[axis] = batch_size if name == "batch" else max(2, round(shape[axis] * scale))
        if spec.name.endswith("_points"):  # flat indices into that modality's outputs
            count = exportable.model.decoder.queries.modalities[spec.name[: -len("_points")]].num_outputs
            tensors.append(torch.randperm(count, generator=generator)[: shape[0]])
        elif spec.name == "input_ids":
            tensors.append(torch.randint(0, 262, shape, generator=generator))
        elif spec.name == "attention_mask":
            mask = torch.ones(shape, dtype=torch.long)
            mask[0, shape[1] // 2 :] = 0
            tensors.append(mask)
        else:
            tensors.append(torch.rand(shape, generator=generator) * 2 - 1)
    return tuple(tensors)


SIZES = [(1, 1.0), (3, 0.5), (2, 1.5)]


ONNX_HEADS = ["image-learned", "image-fourier", "image-conv", "masked-lm", "sequence-classification", "optical-flow",
              "autoencoder"]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_head_exports_and_runs_at_other_sizes(name, tmp_path):
    """torch.export's program, then onnxruntime on the ONNX graph made from it, against the eager model."""
    model = build(name)
    program, exportable = export_program(model)
    assert model.config.input_chunk_size == BUILDERS[name]().config.input_chunk_size  # restored after tracing
    for batch_size, scale in SIZES:
        inputs = other_inputs(exportable, batch_size, scale)
        with torch.no_grad():
            expected = exportable(*inputs)
            actual = program.module()(*inputs)
        for a, e in zip(actual, expected, strict=True):
            assert a.shape[0] == batch_size
            assert_parity(a, e)
    if name not in ONNX_HEADS:
        return
    save_onnx(program, exportable, tmp_path / "model.onnx")
    for batch_size, scale in SIZES:
        inputs = other_inputs(exportable, batch_size, scale)
        assert onnxruntime_error(tmp_path / "model.onnx", exportable, inputs) <= 1e-4


def test_symbolic_axes_per_head():
    axes = {name: {spec.name: spec.dynamic_axes for spec in ExportableModel(build(name)).inputs} for name in BUILDERS}
    assert axes["image-learned"] == {"pixel_values": {0: "batch"}}
    assert axes["image-fourier"] == axes["image-conv"] == {"pixel_values": {0: "batch", 2: "height", 3: "width"}}
    assert axes["masked-lm"]["input_ids"] == axes["masked-lm"]["attention_mask"] == {0: "batch", 1: "sequence"}
    assert axes["optical-flow"] == {"inputs": {0: "batch", 3: "height", 4: "width"}}
    assert axes["autoencoder"]["image_points"] == {0: "image_points"}
    assert axes["autoencoder"]["image"] == {0: "batch"}


def test_export_command_writes_a_complete_folder(tmp_path, capsys):
    model_dir, output = tmp_path / "model", tmp_path / "onnx"
    build("sequence-classification").save_pretrained(model_dir)
    PerceiverTokenizer(model_max_length=48).save_pretrained(model_dir)
    assert cli(["export", str(model_dir), "--output", str(output)]) == 0
    files = {path.name for path in output.iterdir()}
    assert {"config.json", "model.onnx", "tokenizer_config.json"} <= files
    assert not any(name.endswith(".safetensors") for name in files)  # the graph holds the weights
    assert json.loads((output / "config.json").read_text())["architectures"] == ["PerceiverIOForSequenceClassification"]
    assert "input_ids (batch, sequence)" in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []

    # Run again: the output exists, nothing is touched.
    assert cli(["export", str(model_dir), "--output", str(output)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_export_command_converts_transformers_folders(tmp_path):
    torch.manual_seed(0)
    config = PerceiverConfig(d_model=32, d_latents=32, num_latents=8, num_blocks=1, num_self_attends_per_block=2,
                             num_self_attention_heads=4, num_cross_attention_heads=1, max_position_embeddings=48,
                             num_labels=3, attention_probs_dropout_prob=0.0)
    PerceiverForSequenceClassification(config).save_pretrained(tmp_path / "transformers")
    assert cli(["export", str(tmp_path / "transformers"), "--output", str(tmp_path / "onnx")]) == 0
    saved = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert saved["model_type"] == "perceiver_io"
    assert saved["architectures"] == ["PerceiverIOForSequenceClassification"]


def test_failed_export_leaves_nothing(tmp_path, monkeypatch, capsys):
    from perceiver_hf.export import onnx_folder

    build("image-fourier").save_pretrained(tmp_path / "model")

    def fail_halfway(model, path):
        path.write_bytes(b"half a graph")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(onnx_folder, "export_onnx", fail_halfway)
    assert cli(["export", str(tmp_path / "model"), "--output", str(tmp_path / "onnx")]) == 2
    assert "interrupted" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda folder: folder.mkdir(), "has no config.json"),
        (lambda folder: (folder.mkdir(), (folder / "config.json").write_text('{"model_type": "bert"}')), "'bert'"),
        (lambda folder: (folder.mkdir(), (folder / "config.json").write_text("{not json")), "not readable JSON"),
        (
            lambda folder: (folder.mkdir(), (folder / "config.json").write_text('{"model_type": "perceiver_ar"}')),
            "Perceiver AR models are not exported",
        ),
    ],
)
def test_export_command_refuses_what_it_cannot_export(tmp_path, capsys, setup, message):
    setup(tmp_path / "model")
    assert cli(["export", str(tmp_path / "model"), "--output", str(tmp_path / "onnx")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "onnx").exists()
