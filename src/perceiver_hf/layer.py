"""A Perceiver IO layer: attention (cross or self) with an optional residual, then a residual MLP block.

Every encoder and decoder attention is one of these; it is the unit of gradient checkpointing and of FSDP wrapping.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import KeyValues, PerceiverIOAttention
from .configuration import PerceiverIOConfig
from .input_array import InputArray, split_tensors


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

    def __call__(
        self,
        hidden_states: torch.Tensor,
        inputs: InputArray | torch.Tensor | None = None,
        key_values: KeyValues | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`inputs` (projected here, inside any gradient checkpoint) or precomputed `key_values`; neither
        means self-attention."""
        # Reentrant checkpointing (`use_reentrant=True`) replays a layer from its positional tensors only; tensors
        # inside an input array or keys/values would be backpropagated in the replay and again outside it where they
        # are shared (the flow input array is also the decoder's queries; chunks share keys/values).
        tensors, rebuild = split_tensors(key_values if key_values is not None else inputs)
        return super().__call__(
            hidden_states, attention_mask, *tensors, rebuild_context=rebuild, output_attentions=output_attentions
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *context_tensors: torch.Tensor,
        rebuild_context: Callable[[tuple[torch.Tensor, ...]], InputArray | KeyValues | torch.Tensor | None],
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context = rebuild_context(context_tensors)
        key_values = context if context is None or isinstance(context, KeyValues) else self.attention.key_values(context)
        attention_output, attn_weights = self.attention(hidden_states, key_values, attention_mask, output_attentions)
        # Residuals are added in place into the fresh outputs of the last linear layers (whose backward does
        # not need them): every avoided allocation of a large CPU tensor saves its page faults.
        if self.use_query_residual:
            attention_output += hidden_states
        layer_output = self.mlp(self.mlp_norm(attention_output))
        layer_output += attention_output
        return layer_output, attn_weights

