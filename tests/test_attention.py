"""One QKV attention for cross- and self-attention: implementations agree, masks work, shortcuts are exact."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_parity, perturb_

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.attention import PerceiverIOAttention
from perceiver_hf.layer import PerceiverIOLayer
from perceiver_hf.input_array import InputArray


def make_attention(implementation="sdpa", chunk=None, **kwargs) -> PerceiverIOAttention:
    config = PerceiverIOConfig(attn_implementation=implementation, input_chunk_size=chunk)
    spec = dict(query_dim=12, kv_dim=20, qk_channels=16, v_channels=24, output_channels=12, num_heads=4, is_cross_attention=True)
    spec.update(kwargs)
    return perturb_(PerceiverIOAttention(config, **spec)).eval()


def run(attention, queries, inputs, mask=None):
    with torch.no_grad():
        return attention(queries, attention.key_values(inputs), mask)[0]


def with_implementation(attention, implementation):
    attention.config._attn_implementation = implementation
    return attention


@pytest.mark.parametrize("is_cross_attention", [True, False])
def test_eager_and_sdpa_agree_with_different_qk_and_v_channels(is_cross_attention):
    kv_dim = 20 if is_cross_attention else 12
    attention = make_attention(kv_dim=kv_dim, is_cross_attention=is_cross_attention)
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, kv_dim)
    with torch.no_grad():
        kv = attention.key_values(inputs) if is_cross_attention else None
        sdpa = attention(queries, kv)[0]
        eager = with_implementation(attention, "eager")(queries, kv)[0]
    assert sdpa.shape == (2, 5, 12)
    assert_parity(sdpa, eager, 1e-6)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_masked_keys_are_ignored(implementation):
    attention = make_attention(implementation)
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20)
    keep = torch.ones(2, 9, dtype=torch.bool)
    keep[0, 6:] = False
    keep[1, :2] = False
    masked = run(attention, queries, inputs, keep[:, None, None, :])
    # The same as attending to the kept keys only, one example at a time.
    assert_parity(masked[0], run(attention, queries[:1], inputs[:1, :6])[0], 1e-6)
    assert_parity(masked[1], run(attention, queries[1:], inputs[1:, 2:])[0], 1e-6)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_query_rows_without_keys_output_zeros_before_the_projection(implementation):
    attention = make_attention(implementation)
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20)
    keep_queries = torch.tensor([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    output = run(attention, queries, inputs, keep_queries[:, None, :, None])
    assert not output.isnan().any()
    torch.testing.assert_close(output[0, 2], attention.output.bias.detach())  # DeepMind's `attend` wipes such rows
    assert_parity(output[1], run(attention, queries[1:], inputs[1:])[0], 1e-6)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_folded_key_value_projections_are_exact(implementation, num_heads):
    attention = make_attention(implementation, num_heads=num_heads)
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20)
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[1, ..., 4:] = False
    projected = run(attention, queries, inputs, mask)
    attention.fold_kv_projections = True
    kv = attention.key_values(inputs)
    assert kv.folded and kv.key.shape == (2, 1, 9, 20)  # the normalised inputs, shared by all heads
    assert_parity(run(attention, queries, inputs, mask), projected, 1e-5)


def test_folded_projections_give_the_same_gradients():
    attention = make_attention().train()
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20, requires_grad=True)

    def gradients(fold):
        attention.zero_grad()
        inputs.grad = None
        attention.fold_kv_projections = fold
        attention(queries, attention.key_values(inputs))[0].square().sum().backward()
        return [inputs.grad.clone()] + [p.grad.clone() for p in attention.parameters()]

    for folded, projected in zip(gradients(True), gradients(False)):
        assert_parity(folded, projected, 1e-5)


@pytest.mark.parametrize("fold", [False, True])
def test_reading_the_input_array_in_blocks_changes_nothing(fold):
    content, positions = torch.randn(2, 50, 8), torch.randn(1, 50, 12)
    whole = make_attention(chunk=None)
    blocks = make_attention(chunk=7)
    blocks.load_state_dict(whole.state_dict())
    whole.fold_kv_projections = blocks.fold_kv_projections = fold
    queries = torch.randn(2, 5, 12)
    factored = InputArray(content, positions)
    expected = run(whole, queries, factored.materialize())
    assert_parity(run(blocks, queries, factored), expected, 1e-6)
    assert_parity(run(whole, queries, factored), expected, 1e-6)


def test_input_array_adds_or_concatenates_positions():
    content, positions = torch.randn(2, 6, 4), torch.randn(1, 6, 4)
    assert torch.equal(InputArray(content, positions, "add").rows(1, 3), content[:, 1:3] + positions[:, 1:3])
    concatenated = InputArray(content, positions).materialize()
    assert concatenated.shape == (2, 6, 8) and torch.equal(concatenated[1, :, 4:], positions[0])
    with pytest.raises(ValueError, match="'concat' or 'add'"):
        InputArray(content, positions, "stack")


def test_layer_adds_query_residual_and_mlp():
    config = PerceiverIOConfig(attn_implementation="eager")
    layer = perturb_(PerceiverIOLayer(config, 12, 20, 16, 24, 4, 2, is_cross_attention=True, use_query_residual=True)).eval()
    queries, inputs = torch.randn(2, 5, 12), torch.randn(2, 9, 20)
    with torch.no_grad():
        output, _ = layer(queries, inputs)
        attended = layer.attention(queries, layer.attention.key_values(inputs))[0] + queries
        expected = attended + layer.mlp(layer.mlp_norm(attended))
    assert_parity(output, expected, 1e-6)
    assert layer.mlp.fc1.out_features == 24  # widening factor 2


def test_channels_must_divide_into_heads():
    with pytest.raises(ValueError, match=r"qk_channels \(10\) must be divisible by num_heads \(4\)"):
        make_attention(qk_channels=10)
