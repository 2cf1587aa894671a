"""Every benchmark script starts: its imports resolve (the shared harness and ceiling helpers) and its command line
parses, so a change to the harness cannot leave a benchmark broken until someone runs it; and the FLOP counter the
ceiling shares rest on counts every product."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("bench_*.py"))


def test_the_benchmarks_are_found():
    assert "bench_image_classification.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_prints_its_usage(script, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/<script>` puts its folder first
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_flops_of_in_place_products_are_counted(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from ceiling import count_flops

    inputs, weight, bias = torch.randn(8, 4), torch.randn(4, 3), torch.randn(3)
    out_of_place = count_flops(lambda: torch.addmm(bias, inputs, weight))
    in_place = count_flops(lambda: bias.expand(8, 3).clone().addmm_(inputs, weight))
    assert out_of_place["gemm_gflop"] == in_place["gemm_gflop"] == 2 * 8 * 4 * 3 / 1e9
