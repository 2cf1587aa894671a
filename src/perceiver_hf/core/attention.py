"""The plain attention path: one pre-LayerNorm QKV attention for every Perceiver IO attention (encoder
cross-attention, latent self-attention, decoder cross-attention), dispatched through transformers' attention
interface, and the layer that wraps it with residuals and an MLP.

Shapes: queries `(batch, N, query_dim)` attend to key/value inputs `(batch, M, kv_dim)`; queries and keys
share `qk_channels`, values have `v_channels` (they may differ), and heads split channels contiguously.

This is the computation as written. The algebraic rewrites that compute the same thing with less work for
particular shapes (see `perceiver_hf.core.rewrites`) read a layer's weights only through `PerceiverIOLayer.maps()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray, split_tensors
from .rewrites.residual_product import linear_plus_residual


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
    """Softmax attention, `(batch, heads, N, d)` queries against `(batch, heads, M, d)` keys. `attention_mask` is
    boolean (True where a query may attend to a key) or additive (added to the logits, e.g. a causal mask)."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
    elif attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    # Softmax in at least float32 (half-precision inputs are upcast), and in float64 for float64 inputs.
    softmax_dtype = torch.promote_types(query.dtype, torch.float32)
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=softmax_dtype).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def attention_function(module: nn.Module, output_attentions: bool) -> Callable:
    """The configured attention implementation; eager when the weights are asked for (it alone returns them)."""
    implementation = module.config._attn_implementation
    if output_attentions or implementation in (None, "eager"):
        return eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)


def zero_rows_without_keys(attn_output: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the `(batch, N, channels)` output of query rows that a boolean mask leaves without any key, as DeepMind's
    `attend` does."""
    if attention_mask is None or attention_mask.dtype != torch.bool:
        return attn_output
    # masked_fill, not a product: a fully masked row may come back from SDPA as NaN.
    has_keys = attention_mask.any(dim=-1)
    has_keys = has_keys.reshape(has_keys.shape[0], attention_mask.shape[-2], 1)  # sizes given: batch may be 0
    return attn_output.masked_fill(~has_keys, 0.0)


@dataclass
class KeyValues:
    """Keys and values ready for attention, `(batch, heads, M, channels)`."""

    key: torch.Tensor
    value: torch.Tensor


class PerceiverIOAttention(nn.Module):
    """Pre-LayerNorm multi-head QKV attention followed by an output projection.

    For cross-attention the queries and the key/value inputs have their own layer norms; for self-attention
    one layer norm feeds queries, keys and values, as in DeepMind's code.
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
        bias: bool = True,  # Perceiver AR's q/k/v projections have none
        output_bias: bool = True,
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

        self.query_norm = nn.LayerNorm(query_dim, eps=config.layer_norm_eps)
        self.kv_norm = nn.LayerNorm(kv_dim, eps=config.layer_norm_eps) if is_cross_attention else None
        self.query = nn.Linear(query_dim, qk_channels, bias=bias)
        self.key = nn.Linear(kv_dim, qk_channels, bias=bias)
        self.value = nn.Linear(kv_dim, v_channels, bias=bias)
        self.output = nn.Linear(v_channels, output_channels, bias=output_bias)

    @property
    def dropout(self) -> float:
        """Dropout on the attention weights, in training only."""
        return self.config.attention_probs_dropout_prob if self.training else 0.0

    def attend(
        self, query, key, value, attention_mask=None, output_attentions: bool = False, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(batch, heads, N | M, d)` queries, keys and values -> `(batch, N, heads, d_v)` outputs and the weights,
        through the configured attention implementation (with this attention's scaling and dropout)."""
        # transformers' SDPA wrapper cannot reshape an empty batch; eager attention returns it empty.
        attend = attention_function(self, output_attentions or query.shape[0] == 0)
        kwargs.setdefault("is_causal", self.is_causal)
        return attend(self, query, key, value, attention_mask, scaling=self.scaling, dropout=self.dropout, **kwargs)

    def split_heads(self, x: torch.Tensor, head_dim: int) -> torch.Tensor:
        """`(batch, M, heads * head_dim)` -> `(batch, heads, M, head_dim)`."""
        return x.view(x.shape[0], x.shape[1], self.num_heads, head_dim).transpose(1, 2)

    def key_values(self, inputs: InputArray | torch.Tensor) -> KeyValues:
        """Normalise and project the key/value inputs, reading an `InputArray` a block of rows at a time."""
        if isinstance(inputs, torch.Tensor):
            inputs = InputArray(inputs)

        def project(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            rows = self.kv_norm(rows)
            return self.key(rows), self.value(rows)

        key, value = inputs.map_rows(project, self.config.input_chunk_size)
        return KeyValues(self.split_heads(key, self.qk_head_dim), self.split_heads(value, self.v_head_dim))

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_values: KeyValues | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        residual: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from `hidden_states` to `key_values` (self-attention when `None`).

        `attention_mask` is broadcastable to `(batch, 1, N, M)`: boolean (query rows with no key to attend to
        output zeros before the output projection, as DeepMind's `attend` does) or additive. `residual`, when
        given, is added to the output inside the output projection's product.
        """
        batch_size, num_queries, _ = hidden_states.shape
        normed = self.query_norm(hidden_states)
        query = self.split_heads(self.query(normed), self.qk_head_dim)
        if key_values is None:
            key = self.split_heads(self.key(normed), self.qk_head_dim)
            key_values = KeyValues(key, self.split_heads(self.value(normed), self.v_head_dim))

        key, value = key_values.key, key_values.value
        attn_output, attn_weights = self.attend(query, key, value, attention_mask, output_attentions, **kwargs)
        attn_output = attn_output.reshape(batch_size, num_queries, self.v_channels)
        attn_output = zero_rows_without_keys(attn_output, attention_mask)
        return linear_plus_residual(self.output, attn_output, residual), (attn_weights if output_attentions else None)


class PerceiverIOMLP(nn.Module):
    """Two-layer MLP with the configured activation (Perceiver AR's has no biases: `bias=False`)."""

    def __init__(self, config: PerceiverIOConfig, channels: int, widening_factor: int, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(channels, widening_factor * channels, bias=bias)
        self.activation = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act
        self.fc2 = nn.Linear(widening_factor * channels, channels, bias=bias)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP of `hidden_states`, plus `residual` when given (added inside the last product)."""
        return linear_plus_residual(self.fc2, self.activation(self.fc1(hidden_states)), residual)


@dataclass(frozen=True)
class LayerMaps:
    """A layer's parameters by the role they play in its computation: what the algebraic rewrites read.

    `attention` is the attention module itself, for its shape (heads, head widths, scaling), its dropout and the
    attention implementation it dispatches to.
    """

    attention: PerceiverIOAttention
    query_norm: nn.LayerNorm
    query: nn.Linear
    kv_norm: nn.LayerNorm | None
    key: nn.Linear
    value: nn.Linear
    output: nn.Linear
    use_query_residual: bool
    mlp_norm: nn.LayerNorm
    mlp_in: nn.Linear
    activation: Callable[[torch.Tensor], torch.Tensor]
    mlp_out: nn.Linear
    feed_forward: Callable[[torch.Tensor], torch.Tensor]


class PerceiverIOLayer(GradientCheckpointingLayer):
    """Attention (with an optional residual to the queries) followed by a residual MLP block."""

    def __init__(
        self,
        config: PerceiverIOConfig,
        query_dim: int,
        widening_factor: int = 1,
        use_query_residual: bool = True,
        **attention,
    ):
        """`attention`: `PerceiverIOAttention`'s other arguments (`kv_dim`, `qk_channels`, `v_channels`,
        `num_heads`, `is_cross_attention`); its output has the queries' width."""
        super().__init__()
        self.attention = PerceiverIOAttention(config, query_dim=query_dim, output_channels=query_dim, **attention)
        self.use_query_residual = use_query_residual
        self.mlp_norm = nn.LayerNorm(query_dim, eps=config.layer_norm_eps)
        self.mlp = PerceiverIOMLP(config, query_dim, widening_factor)

    def maps(self) -> LayerMaps:
        """The layer's norms and linear maps by role (read at call time: they are the live parameters)."""
        attention = self.attention
        return LayerMaps(
            attention=attention,
            query_norm=attention.query_norm,
            query=attention.query,
            kv_norm=attention.kv_norm,
            key=attention.key,
            value=attention.value,
            output=attention.output,
            use_query_residual=self.use_query_residual,
            mlp_norm=self.mlp_norm,
            mlp_in=self.mlp.fc1,
            activation=self.mlp.activation,
            mlp_out=self.mlp.fc2,
            feed_forward=self.feed_forward,
        )

    def feed_forward(self, attention_output: torch.Tensor) -> torch.Tensor:
        """The residual MLP block that follows the attention."""
        return self.mlp(self.mlp_norm(attention_output), residual=attention_output)

    def __call__(
        self,
        hidden_states: torch.Tensor,
        inputs: InputArray | torch.Tensor | None = None,
        key_values=None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        rewrite=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`inputs` (read here, inside any gradient checkpoint) or prepared `key_values`; neither means
        self-attention. `rewrite` is an algebraic rewrite of the attention step that the planner chose
        (`perceiver_hf.core.rewrites.planner`); it then prepares the inputs and computes the step in place of
        `self.attention`."""
        # Reentrant checkpointing (`use_reentrant=True`) replays a layer from its positional tensors only; tensors
        # inside an input array or key/values would be backpropagated in the replay and again outside it where they
        # are shared (the flow input array is also the decoder's queries; chunks share the latents' key/values).
        tensors, rebuild = split_tensors(key_values if key_values is not None else inputs)
        return super().__call__(
            hidden_states, attention_mask, *tensors, rebuild_context=rebuild, context_is_key_values=key_values is not None,
            output_attentions=output_attentions, rewrite=rewrite,
        )  # fmt: skip

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *context_tensors: torch.Tensor,
        rebuild_context: Callable,
        context_is_key_values: bool = False,
        output_attentions: bool = False,
        rewrite=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention = rewrite or self.attention
        key_values = rebuild_context(context_tensors)
        if key_values is not None and not context_is_key_values:
            key_values = attention.key_values(key_values)
        residual = hidden_states if self.use_query_residual else None
        attention_output, attn_weights = attention(
            hidden_states, key_values, attention_mask, output_attentions, residual=residual
        )
        return self.feed_forward(attention_output), attn_weights
