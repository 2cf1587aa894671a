"""One QKV attention for every Perceiver IO attention: encoder cross-attention, latent self-attention and
decoder cross-attention, dispatched through transformers' attention interface.

Shapes: queries `(batch, N, query_dim)` attend to key/value inputs `(batch, M, kv_dim)`; queries and keys
share `qk_channels`, values have `v_channels` (they may differ), and heads split channels contiguously.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
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
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


@dataclass
class KeyValues:
    """Keys and values ready for attention, `(batch, heads, M, channels)`.

    When the key/value projections are folded (see `PerceiverIOAttention.fold_kv_projections`), `key` and
    `value` are both the layer-normalised inputs without their affine part, shared by every head.
    """

    key: torch.Tensor
    value: torch.Tensor
    folded: bool = False


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

    def key_values(self, inputs: InputArray | torch.Tensor) -> KeyValues:
        """Normalise and project the key/value inputs, reading an `InputArray` a block of rows at a time."""
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

        if output_attentions or self.config._attn_implementation in (None, "eager"):
            attention_interface = eager_attention_forward
        else:
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, eager_attention_forward
            )
        attn_output, attn_weights = attention_interface(
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

        if attention_mask is not None:
            # masked_fill, not a product: a fully masked row may come back from SDPA as NaN.
            has_keys = attention_mask.any(dim=-1).reshape(-1, attention_mask.shape[-2], 1)
            attn_output = attn_output.masked_fill(~has_keys, 0.0)
        return self.output(attn_output), (attn_weights if output_attentions else None)


class PerceiverIOMLP(nn.Module):
    """Two-layer MLP with the configured activation."""

    def __init__(self, config: PerceiverIOConfig, channels: int, widening_factor: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, widening_factor * channels)
        self.activation = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act
        self.fc2 = nn.Linear(widening_factor * channels, channels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(hidden_states)))


class PerceiverIOLayer(GradientCheckpointingLayer):
    """Attention (with an optional residual to the queries) followed by a residual MLP block."""

    def __init__(
        self,
        config: PerceiverIOConfig,
        query_dim: int,
        kv_dim: int,
        qk_channels: int,
        v_channels: int,
        num_heads: int,
        widening_factor: int,
        is_cross_attention: bool,
        use_query_residual: bool = True,
    ):
        super().__init__()
        self.attention = PerceiverIOAttention(
            config,
            query_dim=query_dim,
            kv_dim=kv_dim,
            qk_channels=qk_channels,
            v_channels=v_channels,
            output_channels=query_dim,
            num_heads=num_heads,
            is_cross_attention=is_cross_attention,
        )
        self.use_query_residual = use_query_residual
        self.mlp_norm = nn.LayerNorm(query_dim, eps=config.layer_norm_eps)
        self.mlp = PerceiverIOMLP(config, query_dim, widening_factor)

    def forward(
        self,
        hidden_states: torch.Tensor,
        inputs: InputArray | torch.Tensor | None = None,
        key_values: KeyValues | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`inputs` (projected here, inside any gradient checkpoint) or precomputed `key_values`; neither
        means self-attention."""
        if key_values is None and inputs is not None:
            key_values = self.attention.key_values(inputs)
        attention_output, attn_weights = self.attention(hidden_states, key_values, attention_mask, output_attentions)
        # Residuals are added in place into the fresh outputs of the last linear layers (whose backward does
        # not need them): every avoided allocation of a large CPU tensor saves its page faults.
        if self.use_query_residual:
            attention_output += hidden_states
        layer_output = self.mlp(self.mlp_norm(attention_output))
        layer_output += attention_output
        return layer_output, attn_weights
