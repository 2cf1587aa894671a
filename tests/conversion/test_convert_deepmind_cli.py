"""`python -m conversion.convert_deepmind` as users run it: download, convert, write a Hub-ready folder, upload.

Downloads come from a real HTTP server on 127.0.0.1 standing in for DeepMind's bucket (the CLI's mirror
setting), uploads go to a stand-in for the Hub's HTTP API; nothing is mocked inside the converter.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

import perceiver_hf  # noqa: F401  (registers the Auto classes)
from conversion.convert_deepmind import BUCKET_ENV, EXIT_FAILED, EXIT_PUSH_FAILED, main
from conversion.deepmind_tasks import TASKS
from tests.helpers import FIXTURES_DIR, REPO, assert_parity, requires_fixtures
from tests.helpers.haiku_pickles import official_structures, random_arrays, write_haiku_pickle
from tests.helpers.local_http import FakeHub, hub_handler, serve

COMMAND = [sys.executable, str(REPO / "conversion" / "convert_deepmind.py")]  # as README runs it

IMAGENET_FIXTURES = {
    "imagenet-learned": "imagenet_learned_position_encoding",
    "imagenet-fourier": "imagenet_fourier_position_encoding",
    "imagenet-conv": "imagenet_conv_preprocessing",
}
HUB_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"}


def fixture_args(task: str) -> list[str]:
    fixture = FIXTURES_DIR / IMAGENET_FIXTURES[task]
    return [
        "--task",
        task,
        "--checkpoint",
        str(fixture / "checkpoint.pystate"),
        "--deepmind-config",
        str(fixture / "config.json"),
    ]


def leftovers(folder: Path) -> list[str]:
    """Hidden staging folders a conversion might have left beside its output."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def no_hub_token(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


# Hub-ready output -------------------------------------------------------------------------------------------


@requires_fixtures
@pytest.mark.parametrize("task", sorted(IMAGENET_FIXTURES))
def test_converted_folder_is_hub_ready_and_reproduces_deepmind(task, tmp_path):
    output = tmp_path / "model"
    assert main([*fixture_args(task), "--output", str(output)]) == 0
    assert {p.name for p in output.iterdir()} == HUB_FILES
    assert leftovers(tmp_path) == []

    # The folder loads through transformers' Auto API and still gives DeepMind's logits.
    io_arrays = np.load(FIXTURES_DIR / IMAGENET_FIXTURES[task] / "io.npz")
    model = AutoModelForImageClassification.from_pretrained(output).eval()
    with torch.no_grad():
        logits = model(pixel_values=torch.from_numpy(io_arrays["images"]).permute(0, 3, 1, 2)).logits
    assert_parity(logits, torch.from_numpy(io_arrays["logits"]))

    height, width = json.loads((FIXTURES_DIR / IMAGENET_FIXTURES[task] / "config.json").read_text())["image_size"]
    processor = AutoImageProcessor.from_pretrained(output)
    assert (processor.size["height"], processor.size["width"]) == (height, width)

    card = ModelCard.load(output / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "image-classification"
    assert card.data.datasets == ["imagenet-1k"]
    assert "arxiv:2107.14795" in card.data.tags
    assert card.data.eval_results is None  # a custom (small) configuration claims no accuracy
    assert "custom architecture" in card.text


@requires_fixtures
def test_official_checkpoint_is_downloaded_converted_and_classifies_with_imagenet_labels(tmp_path, monkeypatch):
    """The main path: `--task imagenet-conv --output DIR`, the official file fetched from the bucket (here a local
    mirror whose first response breaks half-way), the official configuration, then `pipeline(...)` on DIR."""
    structure = official_structures(FIXTURES_DIR)["imagenet_conv_preprocessing.pystate"]
    buffer = io.BytesIO()
    write_haiku_pickle(buffer, random_arrays(structure["params"]), random_arrays(structure["state"], seed=1))
    checkpoint = buffer.getvalue()
    del buffer

    with serve() as bucket:
        bucket.add("/imagenet_conv_preprocessing.pystate", checkpoint, cuts=[len(checkpoint) // 2])
        monkeypatch.setenv(BUCKET_ENV, bucket.url)
        output = tmp_path / "vision-perceiver-conv"
        assert main(["--task", "imagenet-conv", "--output", str(output), "--cache-dir", str(tmp_path / "cache")]) == 0
    first, resumed = bucket.requests
    assert resumed.range == f"bytes={len(checkpoint) // 2}-"
    del checkpoint

    config = json.loads((output / "config.json").read_text())
    assert len(config["id2label"]) == 1000
    assert config["id2label"]["0"] == "tench, Tinca tinca"
    assert config["id2label"]["999"] == "toilet tissue, toilet paper, bathroom tissue"
    preprocessor = json.loads((output / "preprocessor_config.json").read_text())
    assert preprocessor["size"] == {"height": 224, "width": 224}
    assert preprocessor["crop_size"] == {"height": 256, "width": 256}  # crops 224/256 of the shorter side

    card = ModelCard.load(output / "README.md")
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_type) == ("accuracy", 82.1, "imagenet-1k")
    assert "https://storage.googleapis.com/perceiver_io/imagenet_conv_preprocessing.pystate" in card.text

    from skimage.data import chelsea  # a real photograph (a cat), 300x451

    predictions = pipeline("image-classification", model=str(output))(Image.fromarray(chelsea()))
    names = set(config["id2label"].values())
    assert len(predictions) == 5 and all(prediction["label"] in names for prediction in predictions)


# Atomic output ----------------------------------------------------------------------------------------------


@requires_fixtures
def test_failed_conversion_leaves_no_folder(tmp_path):
    tree_path = FIXTURES_DIR / IMAGENET_FIXTURES["imagenet-learned"] / "checkpoint.pystate"
    fourier_config = FIXTURES_DIR / IMAGENET_FIXTURES["imagenet-fourier"] / "config.json"
    output = tmp_path / "model"
    args = ["--task", "imagenet-fourier", "--checkpoint", str(tree_path), "--deepmind-config", str(fourier_config)]
    assert main([*args, "--output", str(output)]) == EXIT_FAILED
    assert not output.exists() and leftovers(tmp_path) == []


@requires_fixtures
@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_failure_after_writing_started_leaves_the_previous_folder(tmp_path, monkeypatch, failure):
    """Weights and config are already written when the processor step fails: none of it reaches DIR."""
    output = tmp_path / "model"
    assert main([*fixture_args("imagenet-conv"), "--output", str(output)]) == 0
    before = {p.name: p.read_bytes() for p in output.iterdir()}

    def write_processor_then_fail(folder, deepmind_config, config):
        assert (folder / "model.safetensors").is_file()  # mid-way: the weights are already there
        raise failure

    task = dataclasses.replace(TASKS["imagenet-conv"], write_processor=write_processor_then_fail)
    monkeypatch.setitem(TASKS, "imagenet-conv", task)
    with pytest.raises(type(failure)):
        main([*fixture_args("imagenet-conv"), "--output", str(output)])
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert leftovers(tmp_path) == []


@requires_fixtures
def test_unrelated_folder_is_never_replaced(tmp_path, capsys):
    output = tmp_path / "important"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    assert main([*fixture_args("imagenet-conv"), "--output", str(output)]) == EXIT_FAILED
    assert "not a perceiver_hf model folder" in capsys.readouterr().err
    assert [p.name for p in output.iterdir()] == ["notes.txt"]


@requires_fixtures
def test_sigterm_mid_download_leaves_no_folder_and_the_next_run_resumes(tmp_path):
    """A real run of the script, terminated while the checkpoint is half downloaded."""
    fixture = FIXTURES_DIR / IMAGENET_FIXTURES["imagenet-fourier"]
    data = (fixture / "checkpoint.pystate").read_bytes()
    output, cache = tmp_path / "model", tmp_path / "cache"
    with serve() as bucket:
        url = bucket.add("/ckpt.pystate", data, cuts=[len(data) // 2], stall=120.0)
        args = ["--task", "imagenet-fourier", "--checkpoint", url, "--deepmind-config", str(fixture / "config.json")]
        args += ["--output", str(output), "--cache-dir", str(cache)]
        process = subprocess.Popen(
            [*COMMAND, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 120
            while sum(p.stat().st_size for p in cache.rglob("*.part")) < len(data) // 2:
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 128 + signal.SIGTERM
        finally:
            process.kill()
        assert not output.exists() and leftovers(tmp_path) == []

        assert main(args) == 0  # the next run asks only for the missing half
        assert bucket.requests[-1].range == f"bytes={len(data) // 2}-"
    assert {p.name for p in output.iterdir()} == HUB_FILES


# Arguments --------------------------------------------------------------------------------------------------


def test_tasks_are_listed_with_their_official_urls(capsys):
    assert main(["--list-tasks"]) == 0
    listing = capsys.readouterr().out
    for task in TASKS.values():
        assert task.name in listing
        assert f"https://storage.googleapis.com/perceiver_io/{task.filename}" in listing
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "https://storage.googleapis.com/perceiver_io/imagenet_conv_preprocessing.pystate" in capsys.readouterr().out


def test_malformed_deepmind_config_fails_before_downloading(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"config": {"encoder": {}}}))
    with serve() as bucket:
        url = bucket.add("/ckpt.pystate", b"never fetched")
        code = main(
            [
                "--task",
                "imagenet-conv",
                "--checkpoint",
                url,
                "--deepmind-config",
                str(config),
                "--output",
                str(tmp_path / "m"),
            ]
        )
    assert code == EXIT_FAILED
    assert "does not describe a --task imagenet-conv model" in capsys.readouterr().err
    assert bucket.requests == []


def test_missing_checkpoint_file(tmp_path, capsys):
    assert (
        main(
            [
                "--task",
                "imagenet-conv",
                "--checkpoint",
                str(tmp_path / "nope.pystate"),
                "--output",
                str(tmp_path / "m"),
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_corrupt_download_is_removed_from_the_cache(tmp_path, capsys):
    with serve() as bucket:
        url = bucket.add("/ckpt.pystate", b"<html>Service unavailable</html>")
        args = [
            "--task",
            "imagenet-conv",
            "--checkpoint",
            url,
            "--output",
            str(tmp_path / "m"),
            "--cache-dir",
            str(tmp_path),
        ]
        assert main(args) == EXIT_FAILED
    assert "downloaded file was removed" in capsys.readouterr().err
    assert list(tmp_path.rglob("ckpt.pystate")) == []


# --push-to-hub ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repo_id", ["not a repo id", "a/b/c", "me/bad..name"])
def test_invalid_repo_id_is_refused_before_converting(tmp_path, repo_id, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "imagenet-conv", "--output", str(tmp_path / "m"), "--push-to-hub", repo_id])
    assert exit_info.value.code == 2
    assert "not a valid Hub repository id" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_push_without_a_token_is_refused_before_converting(tmp_path, no_hub_token, capsys):
    with pytest.raises(SystemExit):
        main(["--task", "imagenet-conv", "--output", str(tmp_path / "m"), "--push-to-hub", "me/model"])
    assert "needs a Hugging Face token" in capsys.readouterr().err


@requires_fixtures
def test_failed_upload_reports_and_keeps_the_complete_folder(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    with serve(hub_handler, FakeHub(refuse=403)) as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        output = tmp_path / "model"
        code = main([*fixture_args("imagenet-conv"), "--output", str(output), "--push-to-hub", "me/model"])
    assert code == EXIT_PUSH_FAILED
    error = capsys.readouterr().err
    assert "uploading to me/model failed" in error and f"complete at {output}" in error
    assert {p.name for p in output.iterdir()} == HUB_FILES


@requires_fixtures
def test_push_to_hub_uploads_the_finished_folder(tmp_path):
    """The script as a user runs it, with HF_ENDPOINT pointing huggingface_hub at a local stand-in for the Hub."""
    output = tmp_path / "model"
    with serve(hub_handler, FakeHub()) as hub:
        environment = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": "hf_test_token",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        environment.pop("HF_HUB_OFFLINE", None)
        result = subprocess.run(
            [
                *COMMAND,
                *fixture_args("imagenet-conv"),
                "--output",
                str(output),
                "--push-to-hub",
                "me/vision-perceiver",
            ],
            cwd=tmp_path,  # the script runs from any folder
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    uploaded = hub.repos["me/vision-perceiver"]
    assert uploaded == {p.name: p.read_bytes() for p in output.iterdir()}
    assert 'model="me/vision-perceiver"' in uploaded["README.md"].decode()  # the card names the repository


# The task and the model card follow the converted configuration ---------------------------------------------


@requires_fixtures
def test_a_task_that_does_not_match_the_configuration_is_refused(tmp_path, capsys):
    fourier = FIXTURES_DIR / IMAGENET_FIXTURES["imagenet-fourier"]
    arguments = ["--checkpoint", str(fourier / "checkpoint.pystate"), "--deepmind-config", str(fourier / "config.json")]
    assert main(["--task", "imagenet-learned", *arguments, "--output", str(tmp_path / "m")]) == EXIT_FAILED
    error = capsys.readouterr().err
    assert "--task imagenet-learned does not match the DeepMind configuration" in error
    assert "that is a --task imagenet-fourier model" in error
    assert not (tmp_path / "m").exists() and leftovers(tmp_path) == []


@requires_fixtures
def test_the_card_describes_the_converted_preprocessing(tmp_path):
    assert main([*fixture_args("imagenet-fourier"), "--output", str(tmp_path / "m")]) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.count("2D Fourier position features (4 bands)") == 2  # introduction and model table
    assert "64 bands" not in card
