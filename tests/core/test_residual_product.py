"""A residual added inside a layer's last products (the attention output projection's and the MLP's) gives what the
separate addition gives (values and gradients), and only where the linear layer's forward can be bypassed."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.core.attention import PerceiverIOLayer
from perceiver_hf.core.rewrites import planner
from perceiver_hf.core.rewrites.folded_key_values import FoldedKeyValueAttention
from perceiver_hf.core.rewrites.residual_product import adds_inside_product, linear_plus_residual


def linear_and_operands(bias: bool = True, dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    linear = nn.Linear(6, 5, bias=bias).to(dtype)
    inputs = torch.randn(2, 3, 6, dtype=dtype, requires_grad=True)
    residual = torch.randn(2, 3, 5, dtype=dtype, requires_grad=True)
    return linear, inputs, residual


@pytest.mark.parametrize("bias", [True, False])
def test_residual_inside_the_product_matches_the_separate_addition(bias):
    linear, inputs, residual = linear_and_operands(bias)
    assert adds_inside_product(linear, inputs)
    fused = linear_plus_residual(linear, inputs, residual)
    separate = linear(inputs) + residual
    torch.testing.assert_close(fused, separate, rtol=0, atol=1e-14)

    upstream = torch.randn_like(separate)
    fused_grads = torch.autograd.grad(fused, [inputs, residual, *linear.parameters()], upstream)
    separate_grads = torch.autograd.grad(separate, [inputs, residual, *linear.parameters()], upstream)
    for got, expected in zip(fused_grads, separate_grads):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)


def test_the_residual_is_not_modified():
    linear, inputs, residual = linear_and_operands()
    before = residual.detach().clone()
    with torch.no_grad():
        linear_plus_residual(linear, inputs, residual)
    torch.testing.assert_close(residual.detach(), before, rtol=0, atol=0)


def test_wrapped_or_autocast_linears_take_the_module_path():
    linear, inputs, residual = linear_and_operands(dtype=torch.float32)
    calls = []
    linear.register_forward_hook(lambda module, args, output: calls.append(1))
    assert not adds_inside_product(linear, inputs)
    linear_plus_residual(linear, inputs, residual)
    assert calls == [1]  # the hook saw the call

    plain, inputs, residual = linear_and_operands(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not adds_inside_product(plain, inputs)
        output = linear_plus_residual(plain, inputs, residual)
        expected = plain(inputs)
        expected += residual
    torch.testing.assert_close(output, expected, rtol=0, atol=0)  # the module path: bf16 product, residual added
    assert not adds_inside_product(plain, inputs.to(torch.float64))


class RecordOperators(TorchDispatchMode, list):
    """The aten operators that run inside the `with` block."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.append(func)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("is_cross_attention, folded", [(False, False), (True, False), (True, True)])
def test_a_layer_adds_its_query_residual_inside_the_output_projection(is_cross_attention, folded):
    torch.manual_seed(0)
    config = PerceiverIOConfig(d_latents=16, num_latents=4, attn_implementation="eager")
    layer = PerceiverIOLayer(
        config, query_dim=16, kv_dim=8 if is_cross_attention else 16, qk_channels=16, v_channels=16, num_heads=2,
        is_cross_attention=is_cross_attention,
    ).double()  # fmt: skip
    queries = torch.randn(2, 4, 16, dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(2, 6, 8, dtype=torch.float64) if is_cross_attention else None
    key_values = layer.attention.key_values(inputs) if is_cross_attention else None

    attended, _ = layer.attention(queries, key_values)
    expected = layer.feed_forward(attended + queries)
    # The folded key/value rewrite (the planner's choice for this shape) adds it the same way.
    rewrite = planner.encoder_rewrite(layer, num_queries=4) if folded else None
    assert isinstance(rewrite, FoldedKeyValueAttention) == folded
    with RecordOperators() as recorded:
        output, _ = layer(queries, inputs, rewrite=rewrite)
    assert recorded.count(torch.ops.aten.addmm_.default) == 2  # output projection and MLP: both accumulate in place
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-12)
    (got,) = torch.autograd.grad(output.sum(), queries)
    (want,) = torch.autograd.grad(expected.sum(), queries)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
