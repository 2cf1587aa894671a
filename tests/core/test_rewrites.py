"""The algebraic rewrites compute what the plain attention computes (outputs, weights, masks, gradients), and
the planner picks each one only for the shapes it pays off for."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.core.attention import PerceiverIOLayer
from perceiver_hf.core.rewrites import planner
from perceiver_hf.core.rewrites.absorbed_query_output import AbsorbedQueryOutputAttention
from perceiver_hf.core.rewrites.folded_key_values import FoldedKeyValueAttention
from perceiver_hf.core.rewrites.planner import _absorbing_pays_off, _folding_pays_off
from perceiver_hf.input_array import InputArray
from tests.helpers import assert_parity, perturb_


def cross_attention_layer(
    implementation: str = "sdpa", num_heads: int = 1, query_dim: int = 12, kv_dim: int = 20, qk: int = 16, v: int = 24,
    chunk: int | None = None, dropout: float = 0.0,
) -> PerceiverIOLayer:
    config = PerceiverIOConfig(attn_implementation=implementation, input_chunk_size=chunk, attention_probs_dropout_prob=dropout)
    layer = PerceiverIOLayer(
        config, query_dim, kv_dim=kv_dim, qk_channels=qk, v_channels=v, num_heads=num_heads, is_cross_attention=True
    )
    return perturb_(layer, scale=0.5).eval()


def attend(attention, queries, inputs, mask=None, output_attentions=False):
    return attention(queries, attention.key_values(inputs), mask, output_attentions)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_folded_key_value_projections_are_exact(implementation, num_heads):
    layer = cross_attention_layer(implementation, num_heads)
    folded = FoldedKeyValueAttention(layer.maps())
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20)
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[1, ..., 4:] = False
    assert folded.key_values(inputs).shape == (2, 9, 20)  # the normalised inputs, shared by all heads
    with torch.no_grad():
        plain_output, plain_weights = attend(layer.attention, queries, inputs, mask, output_attentions=True)
        folded_output, folded_weights = attend(folded, queries, inputs, mask, output_attentions=True)
        assert_parity(attend(folded, queries, inputs, mask)[0], plain_output, 1e-5)
    assert_parity(folded_output, plain_output, 1e-5)
    assert_parity(folded_weights, plain_weights, 1e-5)


def test_folded_projections_give_the_same_gradients():
    # In float64: the identity is exact, the two paths only sum in different orders.
    layer = cross_attention_layer().double().train()
    queries = torch.randn(2, 5, 12, dtype=torch.float64)
    inputs = torch.randn(2, 9, 20, dtype=torch.float64, requires_grad=True)

    def gradients(attention):
        layer.zero_grad()
        inputs.grad = None
        layer(queries, inputs, rewrite=attention)[0].square().sum().backward()
        return [inputs.grad.clone()] + [p.grad.clone() for p in layer.parameters()]

    for folded, plain in zip(gradients(FoldedKeyValueAttention(layer.maps())), gradients(None), strict=True):
        torch.testing.assert_close(folded, plain, rtol=1e-10, atol=1e-12)


def test_folded_attention_reads_the_input_array_in_blocks():
    content, positions = torch.randn(2, 50, 8), torch.randn(1, 50, 12)
    whole, blocks = cross_attention_layer(chunk=None), cross_attention_layer(chunk=7)
    blocks.load_state_dict(whole.state_dict())
    queries, factored = torch.randn(2, 5, 12), InputArray(content, positions)
    with torch.no_grad():
        expected = attend(whole.attention, queries, factored.materialize())[0]
        assert_parity(attend(FoldedKeyValueAttention(blocks.maps()), queries, factored)[0], expected, 1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_absorbed_attention_equals_plain_attention(implementation, num_heads):
    # In float64: the two paths sum in different orders, so in float32 their gradients differ by rounding noise
    # whose size depends on the machine's kernels; the identity itself holds to float64 precision.
    layer = cross_attention_layer(implementation, num_heads, kv_dim=16, qk=8 * num_heads, v=4 * num_heads).double()
    attention, absorbed = layer.attention, AbsorbedQueryOutputAttention(layer.maps())
    queries = torch.randn(2, 30, 12, dtype=torch.float64, requires_grad=True)
    latents = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = torch.rand(2, 1, 30, 1) > 0.3  # some query rows attend to nothing
    mask[0, 0, :3] = False
    plain_output, plain_weights = attend(attention, queries, latents, mask, output_attentions=True)
    plain_grads = torch.autograd.grad(plain_output.square().sum(), [queries, *attention.parameters()], allow_unused=True)

    key_values = absorbed.key_values(latents)
    assert key_values.key.shape[-1] == key_values.value.shape[-1] == 13
    for output_attentions in (True, False):  # weights come from eager; SDPA otherwise
        output, weights = absorbed(queries, key_values, mask, output_attentions)
        torch.testing.assert_close(output, plain_output, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(absorbed(queries, key_values, mask, True)[1], plain_weights)
    grads = torch.autograd.grad(
        attend(absorbed, queries, latents, mask)[0].square().sum(), [queries, *attention.parameters()], allow_unused=True
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


def test_absorbing_is_chosen_only_when_it_saves_work():
    # DeepMind's flow decoder: 182,528 pixel queries of 322 channels against 2048 latents of 512.
    assert _absorbing_pays_off(182_528, 2048, 1, 322, 512, 512, 322)
    # An ImageNet classification decoder: one query.
    assert not _absorbing_pays_off(1, 512, 1, 1024, 1024, 1024, 1024)
    # The language decoder: 8 heads of 32 query channels for 768-channel queries.
    assert not _absorbing_pays_off(2048, 256, 8, 768, 256, 768, 768)


def test_folding_is_chosen_for_few_queries_against_wide_inputs():
    # DeepMind's ImageNet encoder: 512 latents, one head, 512 input channels (learned positions).
    assert _folding_pays_off(512, 1, 512, 512, 512)
    # The language encoder: 8 cross-attention heads over 768-channel bytes.
    assert not _folding_pays_off(256, 8, 768, 256, 1280)


def test_planner_picks_the_rewrite_for_the_shapes_and_the_plain_path_otherwise():
    layer = cross_attention_layer(num_heads=8, kv_dim=64, qk=64, v=64)
    # Eight heads each attend over all 64 input channels once folded: it pays off for a few queries only.
    assert isinstance(planner.encoder_rewrite(layer, num_queries=4), FoldedKeyValueAttention)
    assert planner.encoder_rewrite(layer, num_queries=4096) is None
    assert isinstance(planner.decoder_rewrite(layer, num_queries=100_000, num_keys=4), AbsorbedQueryOutputAttention)
    assert planner.decoder_rewrite(layer, num_queries=1, num_keys=4) is None
    # Dropout in training breaks the rows-sum-to-one identity folding relies on.
    dropping = cross_attention_layer(kv_dim=64, qk=64, v=64, dropout=0.1).train()
    assert planner.encoder_rewrite(dropping, num_queries=4) is None
    # Weights offloaded by Accelerate (on the meta device) cannot be read outside their modules' forward.
    offloaded = cross_attention_layer(kv_dim=64, qk=64, v=64).to("meta")
    assert planner.encoder_rewrite(offloaded, num_queries=4) is None


def test_the_layer_runs_a_rewrite_inside_its_own_step():
    layer = cross_attention_layer()
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20)
    with torch.no_grad():
        plain = layer(queries, inputs)[0]
        folded = layer(queries, inputs, rewrite=FoldedKeyValueAttention(layer.maps()))[0]
    assert_parity(folded, plain, 1e-5)
