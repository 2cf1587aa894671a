"""Perceiver AR (arXiv 2202.07765): the pre-trained model base and `PerceiverARModel`.

Data flows one way: token (+ absolute position) embeddings -> the last positions become the latents -> one causal
cross-attention of the latents to prefix + latents (rotary) -> causal self-attention layers over the latents ->
optional final layer norm. Only the cross-attention sees the whole sequence, so a long prefix costs one layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.utils import can_return_tuple

from ..causal_mask import causal_mask
from ..rotary import RotaryEmbedding
from .cache import PerceiverARCache
from .configuration import PerceiverARConfig
from .inputs import cache_field, check_inputs, drop_prefix_positions, resolve_prefix_len
from .layers import PerceiverARLayer, Rotation


@dataclass
class PerceiverARModelOutput(BaseModelOutputWithPast):
    """`BaseModelOutputWithPast` (hidden states of the latent positions only) plus the `prefix_len` used."""

    prefix_len: int | None = None


class PerceiverARPreTrainedModel(PreTrainedModel):
    config: PerceiverARConfig
    config_class = PerceiverARConfig
    base_model_prefix = "perceiver_ar"
    main_input_name = "input_ids"
    input_modalities = ("text",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["PerceiverARLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a perceiver_hf folder or Hub id, or a krasserm/perceiver-io Perceiver AR checkpoint
        (`model_type "perceiver-ar-causal-language-model"`), whose config and weights are converted on the fly."""
        from .from_krasserm import from_pretrained_krasserm, krasserm_source_config

        source_config = krasserm_source_config(pretrained_model_name_or_path, kwargs)
        if source_config is None:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        return from_pretrained_krasserm(cls, pretrained_model_name_or_path, source_config, *model_args, **kwargs)


class PerceiverARModel(PerceiverARPreTrainedModel):
    """Perceiver AR without its language-model head: hidden states of the latent positions."""

    def __init__(self, config: PerceiverARConfig):
        super().__init__(config)
        self.token_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size) if config.use_absolute_positions else None
        )
        self.rotary = RotaryEmbedding(config.rotated_channels_per_head)
        self.cross_attention = PerceiverARLayer(config, is_cross_attention=True)
        self.self_attention_layers = nn.ModuleList(
            PerceiverARLayer(config, is_cross_attention=False) for _ in range(config.num_hidden_layers)
        )
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.final_layer_norm else None
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.token_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.token_embeddings = value

    def _rotates(self, index: int) -> bool:
        return self.config.num_rotary_layers == -1 or index < self.config.num_rotary_layers

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        prefix_len: int | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> PerceiverARModelOutput:
        r"""
        input_ids (`(batch, input_len)`): a sequence of at most `max_position_embeddings` tokens; with a cache, the
            tokens that follow the cached ones.
        attention_mask (`(batch, window)`, *optional*): 1 for tokens, 0 for left padding, over the cached and the
            new tokens.
        prefix_len (`int`, *optional*): the first `prefix_len` positions are the prefix and the rest are latents;
            defaults to leaving the last `min(input_len, num_latents)` as latents. With a filled cache the new tokens
            are the latents.
        past_key_values / cache (`PerceiverARCache`, *optional*): keys and values of earlier tokens (`cache` is the
            name transformers' `generate` uses).
        """
        cache = cache if cache is not None else past_key_values
        use_cache = self.config.use_cache and not self.training if use_cache is None else use_cache
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if use_cache and cache is None and not (self.training and self.config.prefix_dropout > 0):
            cache = PerceiverARCache()
        cached = 0 if cache is None else cache.get_seq_length(0)
        batch_size, input_len = input_ids.shape
        window = cached + input_len
        check_inputs(self.config, input_ids, attention_mask, window)
        prefix_len = resolve_prefix_len(self.config, prefix_len, window, cached)

        # Positions count real tokens: a row's left padding shifts them, and padding itself sits at 0.
        positions = torch.arange(window, device=input_ids.device).expand(batch_size, -1)
        if attention_mask is not None:
            positions = positions - (attention_mask == 0).sum(dim=-1, keepdim=True)
        positions = positions.clamp(min=0)[:, cached:]
        embeddings = self.token_embeddings(input_ids)
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings(positions)
        # Rotary positions: where the window slides, they keep counting (see PerceiverARCache).
        if cached and cache.next_positions is not None:
            positions = cache.next_positions[:, None] + torch.arange(input_len, device=input_ids.device)
        if cache is not None:
            cache.next_positions = positions[:, -1] + 1

        split = prefix_len - cached if prefix_len > cached else 0
        prefix, latents = embeddings[:, :split], embeddings[:, split:]
        prefix_positions, latent_positions = positions[:, :split], positions[:, split:]
        key_padding = None if attention_mask is None else attention_mask.to(torch.bool)
        if self.training and split > 0 and self.config.prefix_dropout > 0:
            prefix, prefix_positions, key_padding = drop_prefix_positions(
                self.config.prefix_dropout, prefix, prefix_positions, key_padding
            )

        latent_angles = self.rotary.angles(latent_positions)
        key_angles = (
            self.rotary.angles(torch.cat([prefix_positions, latent_positions], dim=1))
            if prefix_positions.shape[1]
            else latent_angles
        )
        num_latents = latents.shape[1]
        num_keys = cached + prefix.shape[1] + num_latents
        cross_mask = None
        if key_padding is not None or num_latents > 1:
            cross_mask = causal_mask(num_latents, num_keys, key_padding, device=input_ids.device)
        self_keys = num_latents + (cache.get_seq_length(1) if cache is not None else 0)
        # The self-attention sees no padding mask, as in krasserm/perceiver-io: latents attend to padded latents.
        self_mask = causal_mask(num_latents, self_keys, device=input_ids.device) if num_latents > 1 else None

        all_hidden_states = (latents,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        hidden_states, weights = self.cross_attention(
            latents,
            prefix=prefix,
            rotation=Rotation(latent_angles, key_angles),
            attention_mask=cross_mask,
            plain_causal=cross_mask is not None and key_padding is None and num_keys == num_latents,
            cache=cache,
            layer_idx=0,
            output_attentions=output_attentions,
        )
        for index, layer in enumerate(self.self_attention_layers):
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
            hidden_states, weights = layer(
                hidden_states,
                rotation=Rotation(latent_angles, latent_angles) if self._rotates(index) else None,
                attention_mask=self_mask,
                plain_causal=self_mask is not None and self_keys == num_latents,
                cache=cache,
                layer_idx=index + 1,
                output_attentions=output_attentions,
            )
        if output_attentions:
            all_attentions += (weights,)
        if self.final_norm is not None:
            hidden_states = self.final_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return PerceiverARModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            prefix_len=prefix_len,
            **{cache_field(BaseModelOutputWithPast): cache if use_cache else None},
        )
