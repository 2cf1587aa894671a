"""The encoder cross-attention with its weights returned (`output_attentions=True`), reading a long input array a
block of rows at a time.

The weights are what was asked for, `(batch, heads, N, M)`, so they exist whole; the keys and values need not. The
input array is read twice, `config.input_chunk_size` rows at a time: the first pass writes each block's scores into
the weights, which are then normalised over whole rows (the same softmax as the eager attention), and the second pass
recomputes each block's values and accumulates `weights[..., block] @ values`. No key or value array longer than one
block exists, with the key/value projections folded into the queries where the encoder folds them
(`folded_key_values`) or applied as written.
"""

from __future__ import annotations

import torch
from torch import nn

from ...input_array import InputArray
from ..attention import LayerMaps, zero_rows_without_keys
from .folded_key_values import FoldedKeyValueAttention
from .residual_product import linear_plus_residual


class _Projections:
    """The plain path's key/value projections, a block of rows at a time (the interface of `FoldedKeyValueAttention`
    that the two passes use)."""

    def __init__(self, maps: LayerMaps):
        self.maps = maps

    def queries(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attention = self.maps.attention
        return attention.split_heads(self.maps.query(self.maps.query_norm(hidden_states)), attention.qk_head_dim)

    def keys(self, rows: torch.Tensor) -> torch.Tensor:
        return self.maps.attention.split_heads(self.maps.key(self.maps.kv_norm(rows)), self.maps.attention.qk_head_dim)

    def values(self, rows: torch.Tensor) -> torch.Tensor:
        attention = self.maps.attention
        return attention.split_heads(self.maps.value(self.maps.kv_norm(rows)), attention.v_head_dim)

    def values_out(self, attn_output: torch.Tensor) -> torch.Tensor:
        return attn_output.reshape(attn_output.shape[0], attn_output.shape[1], self.maps.attention.v_channels)


class _FoldedProjections(FoldedKeyValueAttention):
    """Folded projections: every head's keys and values are the normalised rows themselves (one shared "head")."""

    def keys(self, rows: torch.Tensor) -> torch.Tensor:
        return self.normalize(rows)[:, None]

    values = keys


class BlockwiseWeightsAttention:
    """The attention step of a cross-attention layer that returns its weights without full-length keys or values."""

    def __init__(self, maps: LayerMaps, fold_key_values: bool):
        self.maps = maps
        self.projections = _FoldedProjections(maps) if fold_key_values else _Projections(maps)

    def key_values(self, inputs: InputArray | torch.Tensor) -> InputArray:
        """Nothing is prepared: both passes read the input array as they go."""
        return inputs if isinstance(inputs, InputArray) else InputArray(inputs)

    def __call__(
        self,
        hidden_states: torch.Tensor,
        inputs: InputArray,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = True,
        residual: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.maps.attention
        projections = self.projections
        query = projections.queries(hidden_states)
        size, length = attention.config.input_chunk_size or inputs.length, inputs.length
        # One (empty) block for an input without rows, whose attention output is zero.
        blocks = [(start, min(start + size, length)) for start in range(0, max(length, 1), max(size, 1))]
        # Scores in at least float32, as the eager attention's softmax (and float64 for float64 inputs).
        scores = query.new_empty((*query.shape[:3], inputs.length), dtype=torch.promote_types(query.dtype, torch.float32))
        for start, end in blocks:
            keys = projections.keys(inputs.rows(start, end))
            scores[..., start:end] = torch.matmul(query, keys.transpose(-1, -2)) * attention.scaling
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(query.dtype).min)
        elif attention_mask is not None:
            scores = scores + attention_mask
        weights = nn.functional.softmax(scores, dim=-1).to(query.dtype)
        del scores
        weights = nn.functional.dropout(weights, p=attention.dropout, training=attention.training)

        attn_output = None
        for start, end in blocks:
            part = torch.matmul(weights[..., start:end], projections.values(inputs.rows(start, end)))
            attn_output = part if attn_output is None else attn_output + part
        attn_output = projections.values_out(attn_output.transpose(1, 2))
        attn_output = zero_rows_without_keys(attn_output, attention_mask)
        return linear_plus_residual(self.maps.output, attn_output, residual), weights
