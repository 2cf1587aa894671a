"""`from_pretrained` on a Hub id that cannot be reached: one look-up, then transformers' own error.

A local server stands in for the Hub and answers every request with 404 (no retries, so the test is quick); each
class loads in its own process with `HF_ENDPOINT` pointing there. Before the fix, perceiver_hf looked `config.json`
up twice (once to see whether the id is a transformers or krasserm checkpoint, then again in the regular loader),
which doubled the Hub client's retries against an unreachable Hub (46 s against transformers' 23 s, see
benchmarks/bench_unreachable_hub.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LOADERS = {
    "transformers": "from transformers import PerceiverForImageClassificationLearned as Model",
    "perceiver_io": "from perceiver_hf import PerceiverIOForImageClassification as Model",
    "perceiver_ar": "from perceiver_hf import PerceiverARForCausalLM as Model",
    "auto": "import perceiver_hf\nfrom transformers import AutoModelForImageClassification as Model",
}
WORKER = """
{import_line}
try:
    Model.from_pretrained("someone/not-in-any-cache")
except OSError as error:
    print(str(error).splitlines()[0])
else:
    raise SystemExit("from_pretrained unexpectedly succeeded")
"""


@pytest.fixture(scope="module")
def unreachable_hub():
    requests: list[str] = []

    class NotFound(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def load_from(endpoint: str, requests: list[str], loader: str, home) -> tuple[str, int]:
    """The first line of the loader's error and how often it asked for `config.json`."""
    requests.clear()
    environment = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(home)}
    environment.pop("HF_HUB_OFFLINE", None)
    code = WORKER.format(import_line=LOADERS[loader])
    result = subprocess.run([sys.executable, "-c", code], check=False, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip(), sum(path.endswith("/config.json") for path in requests)


@pytest.fixture(scope="module")
def transformers_outcome(unreachable_hub, tmp_path_factory):
    """What transformers' own Perceiver class does against the same unreachable Hub."""
    return load_from(*unreachable_hub, "transformers", tmp_path_factory.mktemp("theirs"))


@pytest.mark.parametrize("loader", ["perceiver_io", "perceiver_ar", "auto"])
def test_an_unreachable_hub_is_asked_once_and_reported_as_transformers_does(
    loader, unreachable_hub, transformers_outcome, tmp_path
):
    endpoint, requests = unreachable_hub
    their_error, their_lookups = transformers_outcome
    our_error, our_lookups = load_from(endpoint, requests, loader, tmp_path / "ours")
    assert our_lookups == their_lookups == 1
    assert our_error == their_error
    assert "couldn't connect" in our_error
