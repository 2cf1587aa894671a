"""One QKV attention for every Perceiver IO attention: encoder cross-attention, latent self-attention and
decoder cross-attention, dispatched through transformers' attention interface.

Shapes: queries `(batch, N, query_dim)` attend to key/value inputs `(batch, M, kv_dim)`; queries and keys
share `qk_channels`, values have `v_channels` (they may differ), and heads split channels contiguously.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration import PerceiverIOConfig
from .input_array import InputArray


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. `attention_mask` is boolean, True where a query may attend to a key."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
    # Softmax in at least float32 (half-precision inputs are upcast), and in float64 for float64 inputs.
    softmax_dtype = torch.promote_types(query.dtype, torch.float32)
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=softmax_dtype).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


@dataclass
class KeyValues:
    """Keys and values ready for attention, `(batch, heads, M, channels)`.

    When the key/value projections are folded (see `PerceiverIOAttention.fold_kv_projections`), `key` and
    `value` are both the layer-normalised inputs without their affine part, shared by every head. When the
    query and output projections are absorbed (see `PerceiverIOAttention.key_values`), `key` and `value` live in
    the queries' input space: `(batch, heads, M, query_dim + 1)` and `(batch, heads, M, output_channels)`.
    """

    key: torch.Tensor
    value: torch.Tensor
    folded: bool = False
    absorbed: bool = False


def _zero_rows_without_keys(attn_output: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the `(batch, N, channels)` output of query rows with no key to attend to, as DeepMind's `attend` does."""
    if attention_mask is None:
        return attn_output
    # masked_fill, not a product: a fully masked row may come back from SDPA as NaN.
    has_keys = attention_mask.any(dim=-1).reshape(-1, attention_mask.shape[-2], 1)
    return attn_output.masked_fill(~has_keys, 0.0)


class PerceiverIOAttention(nn.Module):
    """Pre-LayerNorm multi-head QKV attention followed by an output projection.

    For cross-attention the queries and the key/value inputs have their own layer norms; for self-attention
    one layer norm feeds queries, keys and values, as in DeepMind's code.

    Folded key/value projections. The encoder cross-attention reads a long input array (50,176 rows per
    ImageNet image, 182,528 per flow frame pair) with few queries (the latents). With `n` the input rows
    normalised without the layer norm's affine part, keys are `n @ G_k + k0` and values `n @ G_v + v0`
    (`G = diag(gamma) W^T`). Since `q . k0` is constant along a query row it cancels in the softmax, and
    the attention weights sum to one, so attending with queries `q G_k^T` over `n` itself, then applying
    `G_v` and adding `v0`, gives the same result without ever computing the `M x qk` keys and `M x v`
    values. That is cheaper whenever `2 N heads C < (C + N)(qk + v)` (true for every DeepMind encoder with
    one cross-attention head), and `n` is the only full-length tensor left. The encoder turns it on.

    Absorbed query/output projections: the mirror image, for many queries attending to a short input (a decoder's
    hundreds of thousands of output queries against the latents). With `x` a query row normalised without the
    affine part, the head-`h` logits are `x . (K_h G_q,h) + c_h . K_h` (`G_q,h = diag(gamma) W_q,h^T`, `c_h` the
    query bias after the layer norm's offset), and the output is `sum_h A_h (V_h W_o,h^T) + b_o`. Projecting the
    few keys and values once (`key_values(..., absorb_query_output=True)`) lets every query row attend in its
    own input space, skipping the per-query projections; `query_dim + 1 + output_channels` per head then
    replaces `qk + v` channels in the attention products (322 + 1 + 322 < 1024 for the flow decoder).
    """

    def __init__(
        self,
        config: PerceiverIOConfig,
        query_dim: int,
        kv_dim: int,
        qk_channels: int,
        v_channels: int,
        output_channels: int,
        num_heads: int,
        is_cross_attention: bool,
    ):
        super().__init__()
        if qk_channels % num_heads:
            raise ValueError(f"qk_channels ({qk_channels}) must be divisible by num_heads ({num_heads}).")
        if v_channels % num_heads:
            raise ValueError(f"v_channels ({v_channels}) must be divisible by num_heads ({num_heads}).")
        self.config = config
        self.num_heads = num_heads
        self.qk_channels = qk_channels
        self.v_channels = v_channels
        self.qk_head_dim = qk_channels // num_heads
        self.v_head_dim = v_channels // num_heads
        self.scaling = self.qk_head_dim**-0.5
        self.is_cross_attention = is_cross_attention
        self.is_causal = False
        self.fold_kv_projections = False

        self.query_norm = nn.LayerNorm(query_dim, eps=config.layer_norm_eps)
        self.kv_norm = nn.LayerNorm(kv_dim, eps=config.layer_norm_eps) if is_cross_attention else None
        self.query = nn.Linear(query_dim, qk_channels)
        self.key = nn.Linear(kv_dim, qk_channels)
        self.value = nn.Linear(kv_dim, v_channels)
        self.output = nn.Linear(v_channels, output_channels)

    def _split_heads(self, x: torch.Tensor, head_dim: int) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, head_dim).transpose(1, 2)

    def _folding_active(self) -> bool:
        # Folding assumes each attention row sums to one; dropout on the weights breaks that in training.
        dropout_active = self.training and self.config.attention_probs_dropout_prob > 0
        # It also reads the key/value weights outside their modules' forward, where Accelerate's offloading
        # hooks leave them on the meta device: offloaded layers take the projected path.
        offloaded = self.key.weight.device.type == "meta"
        return self.fold_kv_projections and self.is_cross_attention and not dropout_active and not offloaded

    def key_values(self, inputs: InputArray | torch.Tensor, absorb_query_output: bool = False) -> KeyValues:
        """Normalise and project the key/value inputs, reading an `InputArray` a block of rows at a time.

        `absorb_query_output=True` returns keys and values with the query and output projections absorbed (see the
        class docstring), for cross-attention from many queries to these inputs.
        """
        if absorb_query_output:
            if not self.is_cross_attention:
                raise ValueError("Only cross-attention can absorb its query and output projections into the keys.")
            return self._absorbed_key_values(inputs)
        folded = self._folding_active()
        if isinstance(inputs, torch.Tensor):
            inputs = InputArray(inputs)
        length = inputs.length
        chunk = self.config.input_chunk_size or length

        def project(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
            if folded:
                return (nn.functional.layer_norm(rows, rows.shape[-1:], eps=self.kv_norm.eps),)
            rows = self.kv_norm(rows)
            return self.key(rows), self.value(rows)

        if length <= chunk:
            projected = project(inputs.materialize())
        else:
            # Fill preallocated outputs block by block: only one block of the full-width array exists at once.
            projected = None
            for start in range(0, length, chunk):
                block = project(inputs.rows(start, start + chunk))
                if projected is None:
                    projected = tuple(
                        b.new_empty((inputs.batch_size, length, b.shape[-1])) for b in block
                    )
                for target, value in zip(projected, block):
                    target[:, start : start + chunk] = value

        if folded:
            normalized = projected[0][:, None]  # one "head" shared by all heads
            return KeyValues(normalized, normalized, folded=True)
        key, value = projected
        return KeyValues(self._split_heads(key, self.qk_head_dim), self._split_heads(value, self.v_head_dim))

    def _absorbed_key_values(self, inputs: InputArray | torch.Tensor) -> KeyValues:
        inputs = inputs.materialize() if isinstance(inputs, InputArray) else inputs
        normed = self.kv_norm(inputs)
        key = self._split_heads(self.key(normed), self.qk_head_dim)  # (B, h, M, qk/h)
        value = self._split_heads(self.value(normed), self.v_head_dim)  # (B, h, M, v/h)
        query_weight = self.query.weight.view(self.num_heads, self.qk_head_dim, -1)  # (h, qk/h, q_dim)
        query_offset = nn.functional.linear(self.query_norm.bias, self.query.weight, self.query.bias)
        key_in_query_space = torch.einsum("bhmd,hdc->bhmc", key, query_weight * self.query_norm.weight)
        key_offset = torch.einsum("bhmd,hd->bhm", key, query_offset.view(self.num_heads, self.qk_head_dim))
        # A constant 1 appended to every query row picks up the per-key offset as one more channel.
        key = torch.cat([key_in_query_space, key_offset[..., None]], dim=-1)
        output_weight = self.output.weight.view(-1, self.num_heads, self.v_head_dim)  # (out, h, v/h)
        value = torch.einsum("bhmd,ohd->bhmo", value, output_weight)
        # PyTorch's fused CPU attention needs keys and values of one width: zero channels even them out.
        width = max(key.shape[-1], value.shape[-1])
        key = nn.functional.pad(key, (0, width - key.shape[-1]))
        value = nn.functional.pad(value, (0, width - value.shape[-1]))
        return KeyValues(key, value, absorbed=True)

    def _attend_absorbed(
        self,
        hidden_states: torch.Tensor,
        key_values: KeyValues,
        attention_mask: torch.Tensor | None,
        output_attentions: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        normalized = nn.functional.layer_norm(hidden_states, hidden_states.shape[-1:], eps=self.query_norm.eps)
        extra = normalized.new_zeros(normalized.shape[:-1] + (key_values.key.shape[-1] - normalized.shape[-1],))
        extra[..., 0] = 1.0  # the offset channel; any others are padding
        queries = torch.cat([normalized, extra], dim=-1)[:, None].expand(-1, self.num_heads, -1, -1)
        attn_output, attn_weights = self._attention_interface(output_attentions)(
            self,
            queries,
            key_values.key,
            key_values.value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            is_causal=False,
        )  # (batch, N, heads, output_channels + padding)
        attn_output = attn_output[..., : self.output.out_features]
        attn_output = attn_output.sum(dim=2) if self.num_heads > 1 else attn_output[:, :, 0]
        attn_output = _zero_rows_without_keys(attn_output, attention_mask)
        return attn_output + self.output.bias, (attn_weights if output_attentions else None)

    def _attention_interface(self, output_attentions: bool):
        if output_attentions or self.config._attn_implementation in (None, "eager"):
            return eager_attention_forward
        return ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_values: KeyValues | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from `hidden_states` to `key_values` (self-attention when `None`).

        `attention_mask` is boolean and broadcastable to `(batch, 1, N, M)`; query rows with no key to
        attend to output zeros before the output projection, as DeepMind's `attend` does.
        """
        if key_values is not None and key_values.absorbed:
            return self._attend_absorbed(hidden_states, key_values, attention_mask, output_attentions)
        batch_size, num_queries, _ = hidden_states.shape
        normed = self.query_norm(hidden_states)
        queries = self._split_heads(self.query(normed), self.qk_head_dim)
        if key_values is None:
            key_values = KeyValues(
                self._split_heads(self.key(normed), self.qk_head_dim),
                self._split_heads(self.value(normed), self.v_head_dim),
            )

        key, value = key_values.key, key_values.value
        if key_values.folded:
            # Queries move into the normalised input space: q G_k^T per head (see the class docstring).
            key_weight = self.key.weight.view(self.num_heads, self.qk_head_dim, -1) * self.kv_norm.weight
            queries = torch.einsum("bhnd,hdc->bhnc", queries, key_weight)
            key = value = key.expand(-1, self.num_heads, -1, -1)

        attn_output, attn_weights = self._attention_interface(output_attentions)(
            self,
            queries,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            is_causal=False,
        )  # (batch, N, heads, channels)

        if key_values.folded:
            value_weight = self.value.weight.view(self.num_heads, self.v_head_dim, -1) * self.kv_norm.weight
            value_offset = nn.functional.linear(self.kv_norm.bias, self.value.weight, self.value.bias)
            attn_output = torch.einsum("bnhc,hdc->bnhd", attn_output, value_weight)
            attn_output = attn_output + value_offset.view(self.num_heads, self.v_head_dim)
            # The key bias shifts every score of a query row equally: it cancels in the softmax and its gradient
            # is exactly zero. Keep it in the graph with that zero gradient, as the unfolded computation has it,
            # so that DDP (which expects a gradient for every parameter) and weight decay treat it alike.
            attn_output = attn_output + 0.0 * self.key.bias.sum()
        attn_output = attn_output.reshape(batch_size, num_queries, self.v_channels)

        attn_output = _zero_rows_without_keys(attn_output, attention_mask)
        return self.output(attn_output), (attn_weights if output_attentions else None)
