"""One QKV attention for cross- and self-attention: implementations agree, masks work, shortcuts are exact."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.core.attention import PerceiverIOAttention, PerceiverIOLayer
from perceiver_hf.input_array import InputArray
from tests.helpers import assert_parity, perturb_


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


def test_reading_the_input_array_in_blocks_changes_nothing():
    content, positions = torch.randn(2, 50, 8), torch.randn(1, 50, 12)
    whole = make_attention(chunk=None)
    blocks = make_attention(chunk=7)
    blocks.load_state_dict(whole.state_dict())
    queries = torch.randn(2, 5, 12)
    factored = InputArray(content, positions)
    expected = run(whole, queries, factored.materialize())
    assert_parity(run(blocks, queries, factored), expected, 1e-6)
    assert_parity(run(whole, queries, factored), expected, 1e-6)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_additive_masks_add_to_the_logits(implementation):
    # A causal mask as an additive one: each query sees the keys up to its own position.
    attention = make_attention(implementation, kv_dim=12, is_cross_attention=False)
    hidden = torch.randn(2, 6, 12)
    causal = torch.full((6, 6), float("-inf")).triu(1)[None, None]
    with torch.no_grad():
        additive = attention(hidden, None, causal)[0]
        boolean = attention(hidden, None, causal == 0)[0]
        first_rows = attention(hidden[:, :3], None, causal[..., :3, :3] == 0)[0]
    assert_parity(additive, boolean, 1e-6)
    assert_parity(additive[:, :3], first_rows, 1e-6)  # later positions change nothing before them


def test_input_array_adds_or_concatenates_positions():
    content, positions = torch.randn(2, 6, 4), torch.randn(1, 6, 4)
    assert torch.equal(InputArray(content, positions, "add").rows(1, 3), content[:, 1:3] + positions[:, 1:3])
    concatenated = InputArray(content, positions).materialize()
    assert concatenated.shape == (2, 6, 8) and torch.equal(concatenated[1, :, 4:], positions[0])
    with pytest.raises(ValueError, match="'concat' or 'add'"):
        InputArray(content, positions, "stack")


def test_layer_adds_query_residual_and_mlp():
    config = PerceiverIOConfig(attn_implementation="eager")
    layer = perturb_(PerceiverIOLayer(
        config, 12, widening_factor=2, kv_dim=20, qk_channels=16, v_channels=24, num_heads=4, is_cross_attention=True
    )).eval()
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
