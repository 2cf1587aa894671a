"""How long `from_pretrained(HUB_ID)` takes to fail when the Hub cannot be reached, ours against transformers'.

    python benchmarks/bench_unreachable_hub.py [--repeats 1]

`HF_ENDPOINT` points at a 127.0.0.1 port nobody listens on (connections are refused at once, so what is measured
is the Hub client's own retries and back-off, not a network timeout) and `HF_HOME` at an empty folder. Each side
runs in its own process: perceiver_hf's `PerceiverIOForImageClassification` and transformers'
`PerceiverForImageClassificationLearned`, for an id that is in no cache. Prints seconds until the error and the
ratio ours / theirs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile

from harness import cpu_description

CLASSES = {
    "perceiver_hf": "from perceiver_hf import PerceiverIOForImageClassification as Model",
    "transformers": "from transformers import PerceiverForImageClassificationLearned as Model",
}
WORKER = """
import time
{import_line}
start = time.perf_counter()
try:
    Model.from_pretrained("someone/not-in-any-cache")
except Exception as error:
    print(time.perf_counter() - start)
    print(type(error).__name__, str(error).splitlines()[0][:200])
else:
    raise SystemExit("from_pretrained unexpectedly succeeded")
"""


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_to_error(name: str, endpoint: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": home}
        env.pop("HF_HUB_OFFLINE", None)
        completed = subprocess.run(
            [sys.executable, "-c", WORKER.format(import_line=CLASSES[name])], env=env, capture_output=True, text=True
        )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{completed.stderr}")
    seconds, message = completed.stdout.splitlines()[:2]
    return float(seconds), message


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (the median is reported)")
    args = parser.parse_args(argv)
    endpoint = f"http://127.0.0.1:{unused_port()}"
    print(f"CPU: {cpu_description()}; HF_ENDPOINT={endpoint} (nothing listens there)")
    results = {}
    for name in ("transformers", "perceiver_hf"):
        runs = [time_to_error(name, endpoint) for _ in range(args.repeats)]
        results[name] = statistics.median(seconds for seconds, _ in runs)
        print(f"{name}: {results[name]:.1f} s until {runs[0][1]}")
    print(f"ratio perceiver_hf / transformers: {results['perceiver_hf'] / results['transformers']:.2f}")


if __name__ == "__main__":
    main()
