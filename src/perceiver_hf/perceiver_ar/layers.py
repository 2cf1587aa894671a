"""Perceiver AR's layers: the core's attention made causal and rotary, with keys and values cached.

The cross-attention's keys and values are the prefix (normalised by its own layer norm) followed by the latents
(normalised like the queries): the latents attend to the whole sequence and to themselves. Self-attention layers
attend among the latents. Queries and keys are right-aligned (see `perceiver_hf.causal_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.processing_utils import Unpack

from ..causal_mask import additive_mask
from ..core.attention import PerceiverIOAttention, PerceiverIOMLP
from ..rotary import RotaryEmbedding
from .configuration import PerceiverARConfig


@dataclass
class Rotation:
    """`(cos, sin)` angles of the queries (the latents) and of the keys a layer computes in this call."""

    query: tuple[torch.Tensor, torch.Tensor]
    key: tuple[torch.Tensor, torch.Tensor]


class CausalAttentionInputs(TypedDict, total=False):
    """What a Perceiver AR layer passes on to its attention, besides the hidden states."""

    prefix: torch.Tensor | None
    rotation: Rotation | None
    attention_mask: torch.Tensor | None
    plain_causal: bool
    cache: Cache | None
    layer_idx: int
    output_attentions: bool


class CausalRotaryAttention(PerceiverIOAttention):
    """The core's pre-LayerNorm attention with rotary queries/keys, a causal mask and a key/value cache.

    Keys enter the cache already rotated: rotary attention depends only on query-key distances, so cached keys never
    need turning again, whatever later positions the window gives them.
    """

    @property
    def dropout(self) -> float:
        return self.config.attention_dropout if self.training else 0.0

    def forward(
        self,
        hidden_states: torch.Tensor,
        prefix: torch.Tensor | None = None,
        rotation: Rotation | None = None,
        attention_mask: torch.Tensor | None = None,
        plain_causal: bool = False,
        cache: Cache | None = None,
        layer_idx: int = 0,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`hidden_states` are the latents `(batch, N, C)`; `prefix` `(batch, P, C)` makes this the cross-attention.

        `attention_mask` is boolean `(batch or 1, 1, N, keys)` or `None` when every query sees every key;
        `plain_causal` says it is exactly the square causal mask, which SDPA then applies by itself.
        """
        batch_size, num_queries, _ = hidden_states.shape
        normed = self.query_norm(hidden_states)
        sources = normed if prefix is None or not prefix.shape[1] else torch.cat([self.kv_norm(prefix), normed], dim=1)
        queries = self.split_heads(self.query(normed), self.qk_head_dim)
        keys = self.split_heads(self.key(sources), self.qk_head_dim)
        values = self.split_heads(self.value(sources), self.v_head_dim)
        if rotation is not None:
            queries = RotaryEmbedding.rotate(queries, *rotation.query)
            keys = RotaryEmbedding.rotate(keys, *rotation.key)
        if cache is not None:
            keys, values = cache.update(keys, values, layer_idx)

        is_causal = plain_causal and attention_mask is not None
        if is_causal and self.config._attn_implementation not in (None, "eager") and not output_attentions:
            attention_mask = None  # SDPA applies the square causal mask by itself, with its fastest kernel
        elif attention_mask is not None:
            # Additive: a query row without keys averages all values (see causal_mask.additive_mask).
            attention_mask, is_causal = additive_mask(attention_mask, queries.dtype), False
        attn_output, attn_weights = self.attend(
            queries, keys, values, attention_mask, output_attentions, is_causal=is_causal
        )
        attn_output = attn_output.reshape(batch_size, num_queries, self.v_channels)
        return self.output(attn_output), (attn_weights if output_attentions else None)


class PerceiverARLayer(GradientCheckpointingLayer):
    """Causal (cross- or self-) attention, then an MLP, each with a residual; biases only on the cross-attention's
    output projection, as in the paper's code."""

    def __init__(self, config: PerceiverARConfig, is_cross_attention: bool):
        super().__init__()
        channels = config.hidden_size
        self.attention = CausalRotaryAttention(
            config,
            query_dim=channels,
            kv_dim=channels,
            qk_channels=channels,
            v_channels=channels,
            output_channels=channels,
            num_heads=config.num_attention_heads,
            is_cross_attention=is_cross_attention,
            bias=False,
            output_bias=is_cross_attention,
        )
        widening = (
            config.cross_attention_widening_factor if is_cross_attention else config.self_attention_widening_factor
        )
        self.mlp_norm = nn.LayerNorm(channels, eps=config.layer_norm_eps)
        self.mlp = PerceiverIOMLP(config, channels, widening, bias=False)
        self.residual_dropout = nn.Dropout(config.residual_dropout)

    def __call__(
        self, hidden_states: torch.Tensor, prefix: torch.Tensor | None = None, **attention_inputs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Reentrant checkpointing (`use_reentrant=True`) replays a layer from its positional tensors only: the
        # prefix (token embeddings, which take gradients) must be one, or the replay backpropagates into the
        # embeddings and the outer backward does so again.
        return super().__call__(hidden_states, prefix, **attention_inputs)

    def forward(
        self,
        hidden_states: torch.Tensor,
        prefix: torch.Tensor | None = None,
        **attention_inputs: Unpack[CausalAttentionInputs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_output, attn_weights = self.attention(hidden_states, prefix=prefix, **attention_inputs)
        hidden_states = hidden_states + self.residual_dropout(attention_output)
        mlp_output = self.mlp(self.mlp_norm(hidden_states))
        return hidden_states + self.residual_dropout(mlp_output), attn_weights
