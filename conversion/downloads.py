"""Downloading checkpoints: streamed, resumable, retried, and checked before anyone unpickles them.

`download(url, destination)` streams into `destination + ".part"` (with a tqdm progress bar) and renames it to
`destination` only once complete, so `destination` never holds a partial file. An interrupted or broken
transfer leaves the `.part` file behind; the next call asks the server for the rest (HTTP `Range`, guarded by
`If-Range` so that a file changed on the server is fetched anew) instead of starting over. A connection that
breaks or stalls is retried with exponential back-off. The result is checked against the size the server
announced and, where the server sends one (Google Cloud Storage does), its MD5 digest.

Only the standard library is used: the official files are plain HTTPS objects in a public bucket.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CHUNK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# Failures worth another try: the connection broke, stalled, or the server is temporarily unwell.
_TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException, urllib.error.URLError)
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A download that failed for good (after retries), or whose result is truncated or corrupt."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class _Partial:
    """The `.part` file of a download and what we know about the remote file it is a prefix of."""

    def __init__(self, url: str, destination: Path):
        self.url = url
        self.path = destination.with_name(destination.name + ".part")
        self.info_path = destination.with_name(destination.name + ".part.json")
        self.info: dict = {}
        if self.path.is_file() and self.info_path.is_file():
            try:
                self.info = json.loads(self.info_path.read_text())
            except (OSError, ValueError):
                self.info = {}
        if self.info.get("url") != url:  # a stray or foreign partial file: start over
            self.reset()

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.info = {"url": self.url}
        self.save()

    def save(self) -> None:
        self.info_path.write_text(json.dumps(self.info))

    def remember(self, response: http.client.HTTPResponse, total: int | None) -> None:
        """Keep the validators of the remote file, so a later resume can ask for the same version."""
        self.info.update(
            total=total,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            md5=_md5_from_headers(response.headers),
        )
        self.save()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.info_path.unlink(missing_ok=True)


def _md5_from_headers(headers) -> str | None:
    """The object's MD5 as base64, from `x-goog-hash: crc32c=...,md5=...` or `Content-MD5`."""
    for value in headers.get_all("x-goog-hash") or []:
        for part in value.split(","):
            name, _, digest = part.strip().partition("=")
            if name == "md5" and digest:
                return digest
    return headers.get("Content-MD5")


def _request(url: str, partial: _Partial) -> urllib.request.Request:
    request = urllib.request.Request(
        url, headers={"User-Agent": "perceiver_hf-convert", "Accept-Encoding": "identity"}
    )
    offset = partial.size
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        validator = partial.info.get("etag") or partial.info.get("last_modified")
        if validator:
            request.add_header("If-Range", validator)
    return request


def _plan(response: http.client.HTTPResponse, partial: _Partial) -> tuple[int, int | None]:
    """(offset the response body starts at, total size or None) for a 200 or 206 response."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != partial.size:
            raise DownloadError(
                f"{partial.url} answered a resume request with an unusable Content-Range "
                f"{response.headers.get('Content-Range')!r} (asked for bytes {partial.size}-)."
            )
        total = None if match.group(3) == "*" else int(match.group(3))
        return partial.size, total
    # 200: the whole file (the server ignores ranges, or the file changed since the partial download began).
    return 0, int(length) if length is not None else None


def _verify(partial: _Partial, total: int | None) -> None:
    size = partial.size
    if total is not None and size != total:
        raise DownloadError(f"the download of {partial.url} is truncated: {size} of {total} bytes.")
    expected = partial.info.get("md5")
    if expected:
        digest = hashlib.md5(usedforsecurity=False)
        with partial.path.open("rb") as file:
            for block in iter(lambda: file.read(CHUNK_BYTES * 8), b""):
                digest.update(block)
        actual = base64.b64encode(digest.digest()).decode()
        if actual != expected:
            partial.discard()
            raise DownloadError(
                f"the download of {partial.url} is corrupt: its MD5 is {actual} but the server announced {expected}. "
                "The partial file was removed; run the command again to download it anew."
            )


def download(
    url: str,
    destination: str | Path,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination`, resuming a previous partial download of the same URL.

    Args:
        retries: attempts after a failure that made no progress (each attempt that receives data resets the
            count, so a long download over a flaky connection still completes).
        timeout: seconds a connection may stall before it counts as broken.
        backoff: seconds to wait before the first retry, doubled for each further one.
        progress: show a tqdm progress bar.

    Raises:
        DownloadError: the server refused (e.g. 404), the connection kept failing, or the result is truncated or
            does not match the server's checksum. `destination` is then absent and a resumable `.part` may remain.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = _Partial(url, destination)
    failures = 0
    while True:
        received = 0
        try:
            with urllib.request.urlopen(_request(url, partial), timeout=timeout) as response:
                offset, total = _plan(response, partial)
                if offset == 0 and partial.size:
                    partial.reset()  # the server sends the whole file: start the partial file over
                partial.remember(response, total)
                with (
                    partial.path.open("r+b" if offset else "wb") as file,
                    tqdm(
                        total=total,
                        initial=offset,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=destination.name,
                        disable=not progress,
                        leave=True,
                    ) as bar,
                ):
                    file.seek(offset)
                    file.truncate()
                    # read1 returns what has arrived (up to a chunk), so a stall or cut loses nothing received.
                    while block := response.read1(CHUNK_BYTES):
                        file.write(block)
                        received += len(block)
                        bar.update(len(block))
            if total is None or partial.size >= total:
                _verify(partial, total)
                os.replace(partial.path, destination)
                partial.info_path.unlink(missing_ok=True)
                return destination
            error: BaseException = DownloadError(f"the connection closed after {partial.size} of {total} bytes")
        except urllib.error.HTTPError as http_error:
            if http_error.code == 416 and partial.size:  # nothing left to send: the partial file may be complete
                total = partial.info.get("total")
                if total == partial.size:
                    _verify(partial, total)
                    os.replace(partial.path, destination)
                    partial.info_path.unlink(missing_ok=True)
                    return destination
                partial.reset()
                error = http_error
            elif http_error.code in _RETRY_STATUS:
                error = http_error
            else:
                raise DownloadError(f"downloading {url} failed: HTTP {http_error.code} {http_error.reason}.") from None
        except _TRANSIENT as transient:
            error = transient
        failures = 0 if received else failures + 1
        if failures > retries:
            raise DownloadError(
                f"downloading {url} failed {failures} times in a row (last error: {error}). "
                f"{partial.size} bytes are kept in {partial.path}; run the command again to resume."
            ) from None
        time.sleep(backoff * 2 ** max(failures - 1, 0))
