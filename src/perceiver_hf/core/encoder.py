"""The latent encoder: latents cross-attend once to the input array, then a block of self-attention layers runs
`num_blocks` times with shared weights."""

from __future__ import annotations

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray
from .attention import PerceiverIOLayer
from .outputs import PerceiverIOModelOutput
from .rewrites import planner


class PerceiverIOEncoder(nn.Module):
    """Latents `(num_latents, d_latents)` read the `(batch, M, kv_dim)` input array, then think in self-attention."""

    def __init__(self, config: PerceiverIOConfig, kv_dim: int):
        super().__init__()
        self.config = config
        self.latents = nn.Parameter(torch.empty(config.num_latents, config.d_latents))
        nn.init.normal_(self.latents, std=config.initializer_range)

        default_qk = kv_dim if config.cross_attention_shape_for_attention == "kv" else config.d_latents
        cross_qk = config.qk_channels or default_qk
        self.cross_attention = PerceiverIOLayer(
            config,
            query_dim=config.d_latents,
            kv_dim=kv_dim,
            qk_channels=cross_qk,
            v_channels=config.v_channels or cross_qk,
            num_heads=config.num_cross_attention_heads,
            widening_factor=config.cross_attention_widening_factor,
            is_cross_attention=True,
            use_query_residual=config.use_query_residual,
        )
        self_qk = config.qk_channels or config.d_latents
        self.self_attention_layers = nn.ModuleList(
            PerceiverIOLayer(
                config,
                query_dim=config.d_latents,
                kv_dim=config.d_latents,
                qk_channels=self_qk,
                v_channels=config.v_channels or self_qk,
                num_heads=config.num_self_attention_heads,
                widening_factor=config.self_attention_widening_factor,
                is_cross_attention=False,
            )
            for _ in range(config.num_self_attends_per_block)
        )

    def forward(
        self,
        inputs: InputArray,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> PerceiverIOModelOutput:
        """Hidden states are the latents before every self-attention layer and after every block, as
        transformers' Perceiver reports them (so a block boundary appears twice)."""
        if inputs.length == 0:
            raise ValueError(
                "The input adapter made an input array of 0 rows per example (an input with no tokens, pixels or "
                "samples): give every example at least one."
            )
        attention_mask = None
        if inputs.attention_mask is not None:
            if tuple(inputs.attention_mask.shape) != (inputs.batch_size, inputs.length):
                raise ValueError(
                    f"attention_mask has shape {tuple(inputs.attention_mask.shape)}, but the input array has "
                    f"{inputs.length} rows per example: give a ({inputs.batch_size}, {inputs.length}) mask, 1 for rows "
                    "to attend to (one row per token of text, per pixel of an image or a flow frame pair)."
                )
            attention_mask = inputs.attention_mask.to(torch.bool)[:, None, None, :]
        latents = self.latents.to(inputs.dtype).expand(inputs.batch_size, -1, -1)
        hidden_states, cross_weights = self.cross_attention(
            latents,
            inputs,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            rewrite=planner.encoder_rewrite(self.cross_attention, latents.shape[1], output_attentions),
        )

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for _ in range(self.config.num_blocks):
            for layer in self.self_attention_layers:
                if output_hidden_states:
                    all_hidden_states += (hidden_states,)
                hidden_states, weights = layer(hidden_states, output_attentions=output_attentions)
                if output_attentions:
                    all_attentions += (weights,)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)

        return PerceiverIOModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            cross_attentions=(cross_weights,) if output_attentions else None,
        )
