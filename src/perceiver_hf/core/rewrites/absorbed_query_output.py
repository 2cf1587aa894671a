"""Absorbed query/output projections: cross-attention from many queries to a short input.

The mirror image of folding the key/value projections, for a decoder's hundreds of thousands of output queries
against the latents. With `x` a query row normalised without the layer norm's affine part, the head-`h` logits
are `x . (K_h G_q,h) + c_h . K_h` (`G_q,h = diag(gamma) W_q,h^T`, `c_h` the query bias after the layer norm's
offset), and the output is `sum_h A_h (V_h W_o,h^T) + b_o`. Projecting the few keys and values once lets every
query row attend in its own input space, skipping the per-query projections; `query_dim + 1 + output_channels`
per head then replaces `qk + v` channels in the attention products (322 + 1 + 322 < 1024 for the flow decoder).
"""

from __future__ import annotations

import torch
from torch import nn

from ...input_array import InputArray
from ..attention import KeyValues, LayerMaps, zero_rows_without_keys


class AbsorbedQueryOutputAttention:
    """The attention step of a cross-attention layer with its query and output projections absorbed into the keys
    and values."""

    def __init__(self, maps: LayerMaps):
        self.maps = maps

    def key_values(self, inputs: InputArray | torch.Tensor) -> KeyValues:
        """Keys `(batch, heads, M, query_dim + 1)` and values `(batch, heads, M, output_channels)` in the queries'
        input space, zero-padded to one width."""
        maps = self.maps
        attention = maps.attention
        heads, qk_dim = attention.num_heads, attention.qk_head_dim
        inputs = inputs.materialize() if isinstance(inputs, InputArray) else inputs
        normed = maps.kv_norm(inputs)
        key = attention.split_heads(maps.key(normed), qk_dim)  # (B, h, M, qk/h)
        value = attention.split_heads(maps.value(normed), attention.v_head_dim)  # (B, h, M, v/h)
        query_weight = maps.query.weight.view(heads, qk_dim, -1)  # (h, qk/h, q_dim)
        query_offset = nn.functional.linear(maps.query_norm.bias, maps.query.weight, maps.query.bias)
        key_in_query_space = torch.einsum("bhmd,hdc->bhmc", key, query_weight * maps.query_norm.weight)
        key_offset = torch.einsum("bhmd,hd->bhm", key, query_offset.view(heads, qk_dim))
        # A constant 1 appended to every query row picks up the per-key offset as one more channel.
        key = torch.cat([key_in_query_space, key_offset[..., None]], dim=-1)
        output_weight = maps.output.weight.view(-1, heads, attention.v_head_dim)  # (out, h, v/h)
        value = torch.einsum("bhmd,ohd->bhmo", value, output_weight)
        # PyTorch's fused CPU attention needs keys and values of one width: zero channels even them out.
        width = max(key.shape[-1], value.shape[-1])
        key = nn.functional.pad(key, (0, width - key.shape[-1]))
        value = nn.functional.pad(value, (0, width - value.shape[-1]))
        return KeyValues(key, value)

    def __call__(
        self,
        hidden_states: torch.Tensor,
        key_values: KeyValues,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        residual: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        maps = self.maps
        attention = maps.attention
        normalized = nn.functional.layer_norm(hidden_states, hidden_states.shape[-1:], eps=maps.query_norm.eps)
        extra = normalized.new_zeros(normalized.shape[:-1] + (key_values.key.shape[-1] - normalized.shape[-1],))
        extra[..., 0] = 1.0  # the offset channel; any others are padding
        queries = torch.cat([normalized, extra], dim=-1)[:, None].expand(-1, attention.num_heads, -1, -1)
        key, value = key_values.key, key_values.value
        # (batch, N, heads, output_channels + padding)
        attn_output, attn_weights = attention.attend(queries, key, value, attention_mask, output_attentions)
        attn_output = attn_output[..., : maps.output.out_features]
        attn_output = attn_output.sum(dim=2) if attention.num_heads > 1 else attn_output[:, :, 0]
        attn_output = zero_rows_without_keys(attn_output, attention_mask)
        output = attn_output + maps.output.bias
        if residual is not None:
            output += residual
        return output, (attn_weights if output_attentions else None)
