"""A converter's SRC that cannot be read: the script says what SRC was taken for and exits, without a traceback."""

from __future__ import annotations

import os

import pytest

from conversion.convert_krasserm import main as convert_krasserm
from conversion.convert_transformers import main as convert_transformers
from tests.helpers import run_module

CONVERTERS = {"transformers": convert_transformers, "krasserm": convert_krasserm}


def refusal(convert, source, tmp_path, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        convert([str(source), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()
    return capsys.readouterr().err


@pytest.mark.parametrize("converter", CONVERTERS)
def test_a_missing_folder_is_named(converter, tmp_path, capsys):
    error = refusal(CONVERTERS[converter], tmp_path / "no-such-folder", tmp_path, capsys)
    assert f"there is no folder {tmp_path / 'no-such-folder'}" in error
    assert "Traceback" not in error


def test_a_file_is_not_taken_for_a_folder(tmp_path, capsys):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    error = refusal(convert_transformers, weights, tmp_path, capsys)
    assert "is a file; give the folder that holds config.json" in error


def test_a_folder_without_config_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    error = refusal(convert_transformers, tmp_path / "empty", tmp_path, capsys)
    assert "has no config.json: it is not a transformers checkpoint folder" in error


@pytest.mark.parametrize("script", ["convert_transformers", "convert_krasserm"])
def test_an_uncached_hub_id_offline_is_reported_as_not_in_the_cache(script, tmp_path):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    environment.pop("HF_HUB_CACHE", None)
    result = run_module(
        f"conversion.{script}", "someone/not-cached", "--output", tmp_path / "out",
        env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "someone/not-cached is not a local folder" in result.stderr
    assert "HF_HUB_OFFLINE is set, so only the local Hub cache is read, and it is not there" in result.stderr
    assert "has no config.json" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
