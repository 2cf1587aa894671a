"""The forecasting example (`examples/forecast.py`) runs to its last line: the table, the plot and the scores."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
from PIL import Image

from tests.helpers import REPO

EXAMPLE = REPO / "examples" / "forecast.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("forecast_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_prints_the_table_and_writes_the_plot_and_the_scores(example, tmp_path, capsys, single_thread):
    plot, scores = tmp_path / "forecast.png", tmp_path / "scores.json"
    args = ["--series", "elnino", "--steps", "3", "--batch-size", "4", "--no-progress"]
    results = example.main([*args, "--plot", str(plot), "--json", str(scores)])
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| elnino |"))
    assert row.startswith("| elnino | 12 x 5 |") and row.count("/") == 5
    assert set(results["elnino"]) == {"seasonal naive", "PatchTST", "Perceiver IO"}
    assert all(math.isfinite(cell[m]) for cell in results["elnino"].values() for m in ("mase", "crps"))
    assert json.loads(scores.read_text()) == results
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 500


def test_a_bad_budget_or_an_unknown_series_is_refused(example, capsys):
    for args in (["--steps", "0"], ["--series", "sunspots"]):
        with pytest.raises(SystemExit) as exit_info:
            example.main(args)
        assert exit_info.value.code == 2
    assert "invalid choice: 'sunspots'" in capsys.readouterr().err
