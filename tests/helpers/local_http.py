"""Test helpers: a real HTTP file server on 127.0.0.1 that can misbehave on request.

`FileServer` serves byte strings under paths with `Content-Length`, `ETag`, `x-goog-hash` (MD5, as Google Cloud
Storage sends it) and `Range` support, and, per file, can cut the connection part-way through the first few
responses (closing or resetting it, optionally after a stall), ignore `Range`, lie about the checksum or answer
with an error status. Every request is logged, so tests can check that a resumed download asked only for the
missing bytes. `FakeHub` accepts uploads the way
the Hugging Face Hub does, for `--push-to-hub`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ServedFile:
    data: bytes
    supports_range: bool = True
    cuts: list[int] = field(default_factory=list)  # the first responses break after this many body bytes
    reset: bool = False  # break with a TCP reset instead of an orderly close
    stall: float = 0.0  # seconds to hang before breaking (a stalled connection)
    md5: str | None = None  # announced digest; None: the true one
    status: int | None = None  # answer every request with this error status
    etag: str = '"v1"'

    def announced_md5(self) -> str:
        return self.md5 or base64.b64encode(hashlib.md5(self.data).digest()).decode()


@dataclass
class RequestLog:
    path: str
    range: str | None
    if_range: str | None


@dataclass
class FileServer:
    files: dict[str, ServedFile] = field(default_factory=dict)
    requests: list[RequestLog] = field(default_factory=list)
    url: str = ""
    closing: threading.Event = field(default_factory=threading.Event)  # ends stalls when the server stops

    def add(self, path: str, data: bytes, **behaviour) -> str:
        self.files[path] = ServedFile(data, **behaviour)
        return f"{self.url}{path}"


def _handler(server_state: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            server_state.requests.append(
                RequestLog(self.path, self.headers.get("Range"), self.headers.get("If-Range"))
            )
            served = server_state.files.get(self.path)
            if served is None:
                self.send_error(404)
                return
            if served.status is not None:
                self.send_error(served.status)
                return
            data, start = served.data, 0
            requested = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if requested and served.supports_range and (if_range is None or if_range == served.etag):
                start = int(requested.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", served.etag)
            self.send_header("x-goog-hash", f"crc32c=AAAAAA==,md5={served.announced_md5()}")
            self.end_headers()
            if served.cuts:
                self.wfile.write(body[: served.cuts.pop(0)])
                self.wfile.flush()
                server_state.closing.wait(served.stall)
                try:
                    if served.reset:  # SO_LINGER 0: close() sends RST, the client sees "connection reset"
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:  # the client is already gone
                    pass
                self.connection.close()
                self.close_connection = True
                return
            self.wfile.write(body)

        def finish(self):
            try:
                super().finish()
            except OSError:  # the connection was cut on purpose
                pass

    return Handler


@contextmanager
def serve(handler_factory=_handler, state=None) -> Iterator:
    """Run a threaded HTTP server on 127.0.0.1 (a free port) for the duration of the block; `state` (a
    `FileServer` by default, or a `FakeHub` with `hub_handler`) gets its `url`."""
    state = FileServer() if state is None else state
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_factory(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if isinstance(state, FileServer):
            state.closing.set()
        server.shutdown()
        server.server_close()


@dataclass
class FakeHub:
    """The part of the Hugging Face Hub API that `HfApi.create_repo` + `upload_folder` use, kept in memory.

    Files are accepted as regular (inline, base64) uploads, which the real Hub also offers; `refuse` makes every
    request fail with that status, as the Hub does for a token without write access.
    """

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refuse: int | None = None
    url: str = ""


def hub_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._reply(404, {"error": "Repository not found"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if hub.refuse is not None:
                return self._reply(hub.refuse, {"error": "You don't have the rights to create a model here"})
            if self.path == "/api/repos/create":
                request = json.loads(body)
                repo_id = f"{request.get('organization') or 'user'}/{request['name']}"
                hub.repos.setdefault(repo_id, {})
                return self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            if self.path == "/api/validate-yaml":
                return self._reply(200, {})
            match = re.fullmatch(r"/api/models/(.+)/(preupload|commit)/main", self.path)
            if match is None or match.group(1) not in hub.repos:
                return self._reply(404, {"error": "Repository not found"})
            repo_id, action = match.groups()
            if action == "preupload":
                files = json.loads(body)["files"]
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                return self._reply(200, {"files": modes})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    hub.repos[repo_id][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._reply(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{'0' * 40}", "commitOid": "0" * 40})

    return Handler
