"""Folded key/value projections: cross-attention from a few queries to a long input array.

The encoder cross-attention reads a long input array (50,176 rows per ImageNet image, 182,528 per flow frame
pair) with few queries (the latents). With `n` the input rows normalised without the layer norm's affine part,
keys are `n @ G_k + k0` and values `n @ G_v + v0` (`G = diag(gamma) W^T`). Since `q . k0` is constant along a
query row it cancels in the softmax, and the attention weights sum to one, so attending with queries `q G_k^T`
over `n` itself, then applying `G_v` and adding `v0`, gives the same result without ever computing the `M x qk`
keys and `M x v` values; `n` is the only full-length tensor left.
"""

from __future__ import annotations

import torch
from torch import nn

from ...input_array import InputArray
from ..attention import LayerMaps, zero_rows_without_keys
from .residual_product import linear_plus_residual


class FoldedKeyValueAttention:
    """The attention step of a cross-attention layer with its key/value projections folded into the queries."""

    def __init__(self, maps: LayerMaps):
        self.maps = maps

    def normalize(self, rows: torch.Tensor) -> torch.Tensor:
        """Input rows normalised without the layer norm's affine part: the keys and values of every head."""
        return nn.functional.layer_norm(rows, rows.shape[-1:], eps=self.maps.kv_norm.eps)

    def key_values(self, inputs: InputArray | torch.Tensor) -> torch.Tensor:
        """The inputs normalised without the layer norm's affine part, `(batch, M, kv_dim)`, read block by block."""
        if isinstance(inputs, torch.Tensor):
            inputs = InputArray(inputs)
        return inputs.map_rows(lambda rows: (self.normalize(rows),), self.maps.attention.config.input_chunk_size)[0]

    def queries(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(batch, heads, N, kv_dim)` queries in the normalised input space: `q G_k^T` per head."""
        maps = self.maps
        attention = maps.attention
        query = attention.split_heads(maps.query(maps.query_norm(hidden_states)), attention.qk_head_dim)
        key_weight = maps.key.weight.view(attention.num_heads, attention.qk_head_dim, -1) * maps.kv_norm.weight
        return torch.einsum("bhnd,hdc->bhnc", query, key_weight)

    def values_out(self, attn_output: torch.Tensor) -> torch.Tensor:
        """`(batch, N, heads, kv_dim)` attention-weighted normalised inputs -> `(batch, N, v_channels)` values."""
        maps = self.maps
        attention = maps.attention
        heads, v_dim = attention.num_heads, attention.v_head_dim
        value_weight = maps.value.weight.view(heads, v_dim, -1) * maps.kv_norm.weight
        value_offset = nn.functional.linear(maps.kv_norm.bias, maps.value.weight, maps.value.bias)
        attn_output = torch.einsum("bnhc,hdc->bnhd", attn_output, value_weight)
        attn_output = attn_output + value_offset.view(heads, v_dim)
        # The key bias shifts every score of a query row equally: it cancels in the softmax and its gradient is
        # exactly zero. Keep it in the graph with that zero gradient, as the plain computation has it, so that DDP
        # (which expects a gradient for every parameter) and weight decay treat it alike.
        attn_output = attn_output + 0.0 * maps.key.bias.sum()
        return attn_output.reshape(attn_output.shape[0], attn_output.shape[1], attention.v_channels)

    def __call__(
        self,
        hidden_states: torch.Tensor,
        normalized: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        residual: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention = self.maps.attention
        query = self.queries(hidden_states)
        inputs = normalized[:, None].expand(-1, attention.num_heads, -1, -1)  # one "head" shared by all heads
        attn_output, attn_weights = attention.attend(query, inputs, inputs, attention_mask, output_attentions)
        attn_output = zero_rows_without_keys(self.values_out(attn_output), attention_mask)
        output = linear_plus_residual(self.maps.output, attn_output, residual)
        return output, (attn_weights if output_attentions else None)
