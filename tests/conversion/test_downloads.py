"""Checkpoint downloads resume, retry and refuse broken results, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

from conversion.downloads import DownloadError, download
from tests.helpers.local_http import serve

FAST = {"backoff": 0.01, "timeout": 5.0, "progress": False}


@pytest.fixture
def server():
    with serve() as state:
        yield state


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(0).bytes(3 * (1 << 20) + 12345)  # a few read chunks, not a round number


def test_download_writes_the_file_and_no_leftovers(server, payload, tmp_path):
    url = server.add("/ckpt.pystate", payload)
    path = download(url, tmp_path / "ckpt.pystate", **FAST)
    assert path.read_bytes() == payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pystate"]


def test_broken_connection_is_resumed_with_a_range_request(server, payload, tmp_path):
    half = len(payload) // 2
    url = server.add("/ckpt.pystate", payload, cuts=[half])
    assert download(url, tmp_path / "ckpt.pystate", **FAST).read_bytes() == payload
    first, second = server.requests
    assert first.range is None
    # The retry asks only for what is missing, and only if the file is still the same version.
    assert second.range == f"bytes={half}-"
    assert second.if_range == '"v1"'


def test_reset_connection_is_retried(server, payload, tmp_path):
    url = server.add("/ckpt.pystate", payload, cuts=[len(payload) // 2], reset=True)
    assert download(url, tmp_path / "ckpt.pystate", **FAST).read_bytes() == payload
    assert len(server.requests) == 2


def test_stalled_connection_times_out_and_resumes(server, payload, tmp_path):
    half = len(payload) // 2
    url = server.add("/ckpt.pystate", payload, cuts=[half], stall=3.0)
    options = {**FAST, "timeout": 0.5}
    assert download(url, tmp_path / "ckpt.pystate", **options).read_bytes() == payload
    assert server.requests[-1].range == f"bytes={half}-"


def test_interrupted_download_resumes_in_a_later_run(server, payload, tmp_path):
    """A run that gives up keeps its partial file; the next run continues it instead of starting over."""
    half = len(payload) // 2
    url = server.add("/ckpt.pystate", payload, cuts=[half, 0])  # progress, then a failure without any
    with pytest.raises(DownloadError, match="run the command again to resume"):
        download(url, tmp_path / "ckpt.pystate", retries=0, **FAST)
    assert not (tmp_path / "ckpt.pystate").exists()
    assert (tmp_path / "ckpt.pystate.part").stat().st_size == half

    assert download(url, tmp_path / "ckpt.pystate", **FAST).read_bytes() == payload
    assert server.requests[-1].range == f"bytes={half}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pystate"]


def test_server_without_range_support_restarts_from_the_beginning(server, payload, tmp_path):
    url = server.add("/ckpt.pystate", payload, cuts=[len(payload) // 3], supports_range=False)
    assert download(url, tmp_path / "ckpt.pystate", **FAST).read_bytes() == payload


def test_changed_remote_file_is_fetched_anew_not_spliced(server, payload, tmp_path):
    url = server.add("/ckpt.pystate", payload, cuts=[1000, 0])
    with pytest.raises(DownloadError):
        download(url, tmp_path / "ckpt.pystate", retries=0, **FAST)
    new_version = payload[::-1]
    server.add("/ckpt.pystate", new_version, etag='"v2"')  # If-Range no longer matches: the server sends all
    assert download(url, tmp_path / "ckpt.pystate", **FAST).read_bytes() == new_version


def test_connection_that_keeps_breaking_fails_clearly(server, payload, tmp_path):
    url = server.add("/ckpt.pystate", payload, cuts=[0] * 100)
    with pytest.raises(DownloadError, match=r"failed 3 times in a row"):
        download(url, tmp_path / "ckpt.pystate", retries=2, **FAST)
    assert not (tmp_path / "ckpt.pystate").exists()


def test_checksum_mismatch_is_a_corrupt_download(server, payload, tmp_path):
    url = server.add("/ckpt.pystate", payload, md5="AAAAAAAAAAAAAAAAAAAAAA==")
    with pytest.raises(DownloadError, match="corrupt: its MD5"):
        download(url, tmp_path / "ckpt.pystate", **FAST)
    assert list(tmp_path.iterdir()) == []  # nothing that could be mistaken for the checkpoint


@pytest.mark.parametrize("status", [403, 404])
def test_http_errors_fail_at_once(server, tmp_path, status):
    url = server.add("/ckpt.pystate", b"x", status=status)
    with pytest.raises(DownloadError, match=f"HTTP {status}"):
        download(url, tmp_path / "ckpt.pystate", **FAST)
    assert len(server.requests) == 1


def test_unreachable_server_fails_after_retries(tmp_path):
    with serve() as state:
        url = f"{state.url}/ckpt.pystate"
    # The server is gone: every attempt is refused.
    with pytest.raises(DownloadError, match="failed 2 times in a row"):
        download(url, tmp_path / "ckpt.pystate", retries=1, **FAST)
