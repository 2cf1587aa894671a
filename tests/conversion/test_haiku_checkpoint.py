"""Haiku checkpoints are untrusted: pickles that would run code are refused unrun; broken files fail clearly."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from conversion.haiku_checkpoint import CheckpointError, HaikuParams, load_haiku_pickle
from tests.helpers import FIXTURES_DIR, requires_fixtures
from tests.helpers.haiku_pickles import write_haiku_pickle

FIXTURE_CHECKPOINT = FIXTURES_DIR / "imagenet_conv_preprocessing" / "checkpoint.pystate"


class _RunsACommand:
    """What an attacker would put in a pickle: unpickling it calls `os.system`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _CallsEval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [_RunsACommand, _CallsEval], ids=["os.system", "eval"])
def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    # Hidden inside an otherwise valid checkpoint, where a parameter array would be.
    params = {"linear": {"w": np.zeros((2, 2), np.float32), "b": payload(marker)}}
    path = tmp_path / "evil.pystate"
    path.write_bytes(pickle.dumps({"params": params, "state": {}}, protocol=3))

    with pytest.raises(CheckpointError, match="Refusing to load the checkpoint") as error:
        load_haiku_pickle(path)
    assert ("system" in str(error.value)) or ("eval" in str(error.value))
    assert not marker.exists()


def test_plain_pickle_of_the_attack_is_real(tmp_path):
    """The payload above does run under `pickle.load` (what transformers' conversion script uses)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_RunsACommand(marker)))
    assert marker.exists()


def test_object_arrays_are_refused(tmp_path):
    path = write_haiku_pickle(tmp_path / "objects.pystate", {"linear": {"w": np.array([1, "a"], dtype=object)}})
    with pytest.raises(CheckpointError, match="dtype object"):
        load_haiku_pickle(path)


@requires_fixtures
def test_truncated_checkpoint_fails_clearly(tmp_path):
    data = FIXTURE_CHECKPOINT.read_bytes()
    path = tmp_path / "truncated.pystate"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_haiku_pickle(path)


@requires_fixtures
def test_checkpoint_with_trailing_bytes_fails_clearly(tmp_path):
    path = tmp_path / "joined.pystate"
    path.write_bytes(FIXTURE_CHECKPOINT.read_bytes() + b"\0" * 10)
    with pytest.raises(CheckpointError, match="data after the end of its pickle"):
        load_haiku_pickle(path)


@pytest.mark.parametrize(
    "content", [b"", b"<html>403 Forbidden</html>", os.urandom(256)], ids=["empty", "html", "noise"]
)
def test_non_pickles_fail_clearly(tmp_path, content):
    path = tmp_path / "ckpt.pystate"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable checkpoint pickle"):
        load_haiku_pickle(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_haiku_pickle("/nonexistent/ckpt.pystate")


@requires_fixtures
def test_fixture_loads_as_plain_dicts_of_arrays():
    tree = load_haiku_pickle(FIXTURE_CHECKPOINT)
    assert set(tree) == {"params", "state"}
    assert type(tree["params"]) is dict
    w = tree["params"]["image_preprocessor/~/conv2_d_downsample/~/conv"]["w"]
    assert isinstance(w, np.ndarray) and w.dtype == np.float32 and w.ndim == 4


@requires_fixtures
@pytest.mark.parametrize("fixture", ["imagenet_learned_position_encoding", "optical_flow"])
def test_test_writer_reproduces_deepmind_files_byte_for_byte(tmp_path, fixture):
    """`write_haiku_pickle` (used to build test checkpoints) writes DeepMind's exact format."""
    original = next((FIXTURES_DIR / fixture).glob("checkpoint.*"))
    tree = load_haiku_pickle(original)
    if set(tree) == {"params", "state"}:
        written = write_haiku_pickle(tmp_path / "ckpt", tree["params"], tree["state"])
    else:
        written = write_haiku_pickle(tmp_path / "ckpt", tree, wrapped=False)
    assert written.read_bytes() == original.read_bytes()


def test_shapes_are_checked_as_arrays_are_read():
    params = HaikuParams(
        {"mlp/linear": {"w": np.zeros((3, 5), np.float32), "b": np.zeros(5, np.float32)}},
        target_shapes={"fc.weight": (5, 4), "fc.bias": (5,)},
    )
    with pytest.raises(CheckpointError, match=r"`mlp/linear/w` has shape \(3, 5\).*needs \(4, 5\).*`fc.weight`"):
        params.linear("mlp/linear", "fc")


def test_unused_arrays_are_an_error():
    params = HaikuParams({"a": {"w": np.zeros(1, np.float32)}, "b": {"w": np.zeros(1, np.float32)}})
    params.take("a", "w")
    with pytest.raises(CheckpointError, match=r"1 checkpoint arrays have no place.*'b/w'"):
        params.check_all_used()


def test_missing_arrays_are_an_error():
    params = HaikuParams({"a": {"w": np.zeros(1, np.float32)}})
    with pytest.raises(CheckpointError, match="no parameter module `b`"):
        params.take("b", "w")
    with pytest.raises(CheckpointError, match="module `a` has no parameter `scale`"):
        params.take("a", "scale")
