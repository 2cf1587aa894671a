"""Cross-attention with the query and output projections absorbed into the keys and values (used by decoders
with many queries) computes exactly what the plain attention computes: outputs, weights, masks, gradients."""

from __future__ import annotations

import pytest
import torch
from conftest import perturb_

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.attention import PerceiverIOAttention
from perceiver_hf.modeling import _absorbing_pays_off


def cross_attention(implementation: str, num_heads: int, query_dim: int = 12, kv_dim: int = 16) -> PerceiverIOAttention:
    config = PerceiverIOConfig(num_latents=4, d_latents=16, num_self_attention_heads=4)
    config._attn_implementation = implementation
    attention = PerceiverIOAttention(
        config,
        query_dim=query_dim,
        kv_dim=kv_dim,
        qk_channels=8 * num_heads,
        v_channels=4 * num_heads,
        output_channels=query_dim,
        num_heads=num_heads,
        is_cross_attention=True,
    )
    return perturb_(attention, scale=0.5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_absorbed_attention_equals_plain_attention(implementation, num_heads):
    # In float64: the two paths sum in different orders, so in float32 their gradients differ by rounding noise
    # whose size depends on the machine's kernels; the identity itself holds to float64 precision.
    attention = cross_attention(implementation, num_heads).double()
    queries = torch.randn(2, 30, 12, dtype=torch.float64, requires_grad=True)
    latents = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = torch.rand(2, 1, 30, 1) > 0.3  # some query rows attend to nothing
    mask[0, 0, :3] = False
    plain_output, plain_weights = attention(queries, attention.key_values(latents), mask, output_attentions=True)
    plain_grads = torch.autograd.grad(plain_output.square().sum(), [queries, *attention.parameters()], allow_unused=True)

    absorbed = attention.key_values(latents, absorb_query_output=True)
    assert absorbed.absorbed and absorbed.key.shape[-1] == absorbed.value.shape[-1] == 13
    for output_attentions in (True, False):  # weights come from eager; SDPA otherwise
        output, weights = attention(queries, absorbed, mask, output_attentions=output_attentions)
        torch.testing.assert_close(output, plain_output, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(attention(queries, absorbed, mask, output_attentions=True)[1], plain_weights)
    grads = torch.autograd.grad(
        attention(queries, attention.key_values(latents, absorb_query_output=True), mask)[0].square().sum(),
        [queries, *attention.parameters()],
        allow_unused=True,
    )
    # Relative to the largest gradient: the key bias's gradient is zero in exact arithmetic (a constant shift of
    # every logit in a row), so both sides hold only rounding noise there.
    scale = max(g.abs().max().item() for g in plain_grads if g is not None)
    for grad, plain_grad in zip(grads, plain_grads, strict=True):
        if grad is None and plain_grad is None:
            continue
        grad = torch.zeros_like(plain_grad) if grad is None else grad
        plain_grad = torch.zeros_like(grad) if plain_grad is None else plain_grad
        torch.testing.assert_close(grad, plain_grad, rtol=0, atol=1e-10 * scale)


def test_self_attention_cannot_absorb():
    config = PerceiverIOConfig(num_latents=4, d_latents=16, num_self_attention_heads=4)
    attention = PerceiverIOAttention(config, 16, 16, 16, 16, 16, 4, is_cross_attention=False)
    with pytest.raises(ValueError, match="Only cross-attention"):
        attention.key_values(torch.randn(1, 4, 16), absorb_query_output=True)


def test_absorbing_is_chosen_only_when_it_saves_work():
    # DeepMind's flow decoder: 182,528 pixel queries of 322 channels against 2048 latents of 512.
    assert _absorbing_pays_off(182_528, 2048, 1, 322, 512, 512, 322)
    # An ImageNet classification decoder: one query.
    assert not _absorbing_pays_off(1, 512, 1, 1024, 1024, 1024, 1024)
    # The language decoder: 8 heads of 32 query channels for 768-channel queries.
    assert not _absorbing_pays_off(2048, 256, 8, 768, 256, 768, 768)
