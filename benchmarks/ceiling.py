"""The machine's own limits, measured in the run that compares against them, and how close a model gets.

A forward pass is matrix products (linear layers, einsums, convolutions) plus fused attention, and a few
element-wise operations whose cost is memory traffic. The ceiling of a forward is the time its products would take
at the rates this machine reaches on them right now:

    ceiling = GEMM FLOPs / measured GEMM rate + attention FLOPs / measured fused-attention rate

FLOPs are counted from the shapes of the operators a real forward runs (torch's FLOP formulas for matrix products
and convolutions, plus one for PyTorch's CPU flash-attention kernel, which torch's counter does not know): what
the implementation computes, not a formula of the architecture. The rates are the best of several timed runs of one large GEMM and one fused attention call of the
models' shapes, in the process and with the threads of the measured model, just before it runs, so a busy machine
lowers ceiling and model alike.
`share = ceiling / measured latency`: 100% would be every product at the machine's rate and nothing else costing time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, shape_wrapper


aten = torch.ops.aten


@shape_wrapper
def _cpu_flash_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # Shapes (batch, heads, queries, qk) and (batch, heads, keys, v): Q K^T and P V, a multiply and an add each.
    *batch, num_queries, qk_channels = query
    return 2 * math.prod(batch) * num_queries * key[-2] * (qk_channels + value[-1])


ATTENTION_FLOPS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


class _FlopCounter(TorchDispatchMode):
    """Adds up the FLOPs of the operators that run, from their shapes (torch's formulas for matrix products and
    convolutions, ours for the CPU flash-attention kernel)."""

    def __init__(self):
        super().__init__()
        self.gemm = self.attention = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = _out_of_place(func._overloadpacket)
        if packet in ATTENTION_FLOPS:
            self.attention += ATTENTION_FLOPS[packet](*args, **kwargs, out_val=out)
        elif packet in flop_registry:
            self.gemm += flop_registry[packet](*args, **kwargs, out_val=out)
        return out


def _out_of_place(packet):
    # torch's formulas are registered for out-of-place operators only; an in-place product (`addmm_`, which adds a
    # residual inside the product) computes the same FLOPs.
    name = packet.__name__
    if name.endswith("_") and not name.startswith("_") and hasattr(aten, name[:-1]):
        return getattr(aten, name[:-1])
    return packet


def count_flops(run: Callable[[], object]) -> dict[str, float]:
    """GEMM and attention GFLOP of one call of `run` (it runs for real; the counting costs microseconds per op)."""
    with _FlopCounter() as counter:
        run()
    return {"gemm_gflop": counter.gemm / 1e9, "attention_gflop": counter.attention / 1e9}


def _best_rate(run: Callable[[], object], flops: float, repeats: int) -> float:
    run()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


@torch.no_grad()
def measure_ceilings(dtype: torch.dtype = torch.float32, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a large GEMM (4096 x 1024 by 1024 x 1024: a batch of latents through a linear layer) and of fused
    attention (4 x 8 heads, 512 x 512 latents, 128 channels per head: the ImageNet model's self-attention)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(shape, generator=generator).to(dtype) for shape in ((4096, 1024), (1024, 1024)))
    gemm = _best_rate(lambda: torch.mm(a, b), 2 * 4096 * 1024 * 1024, repeats)
    q, k, v = (torch.randn(4, 8, 512, 128, generator=generator).to(dtype) for _ in range(3))
    attention = _best_rate(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), 4 * 4 * 8 * 512 * 512 * 128, repeats
    )
    return {"gemm_gflops": gemm, "attention_gflops": attention}


def ceiling_seconds(flops: dict[str, float], ceilings: dict[str, float]) -> float:
    return flops["gemm_gflop"] / ceilings["gemm_gflops"] + flops["attention_gflop"] / ceilings["attention_gflops"]


def machine_report(ceilings: dict[str, float] | None = None, dtype: str = "fp32") -> str:
    """The CPU line, and the rates `ceilings` when given."""
    from perceiver_hf.cpu import cpu_info  # here: workers in another library's environment import this module

    line = f"CPU: {cpu_info().describe()}; {torch.get_num_threads()} threads"
    if ceilings is None:
        return line
    return (
        f"{line}\nmeasured now: {dtype} GEMM {ceilings['gemm_gflops']:.0f} GFLOP/s, "
        f"fused attention {ceilings['attention_gflops']:.0f} GFLOP/s"
    )
