"""Generation with krasserm/perceiver-io's semantics on transformers' `GenerationMixin`.

`generate(input_ids, num_latents=K)` starts with the prompt's last K tokens as latents. At every step the model sees
the last `max_position_embeddings` tokens. Without a cache, the prefix is the prompt's (`len(prompt) - K`) while
the sequence has at most `num_latents` latents, and one token longer after that, so later tokens join the latents;
once the sequence is longer than `max_position_embeddings`, the window slides (the oldest token is dropped).
With the cache, every step feeds the new token only: the self-attention caches keep the last `num_latents - 1`
latents once the latents outgrow `num_latents`, and the cross-attention cache keeps the last
`max_position_embeddings - 1` tokens once the window slides. Both are krasserm/perceiver-io 0.11.0's behaviour under
transformers' `generate` (the prefix length is carried over unchanged from the prompt), kept so that its checkpoints
generate exactly the same tokens; the two modes agree while the latents grow.
"""

from __future__ import annotations

import torch
from transformers import GenerationMixin

from .cache import CROSS_ATTENTION_LAYER, PerceiverARCache


class PerceiverARGenerationMixin(GenerationMixin):
    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The forward makes its own PerceiverARCache (a DynamicCache with one more layer than the config counts).
        return False

    def generate(self, inputs: torch.Tensor | None = None, num_latents: int | None = None, **kwargs):
        """transformers' `generate` plus `num_latents`: how many of the prompt's last tokens start as latents
        (default and at most `config.num_latents`). See the module docstring for how the window then moves."""
        prompt = inputs if inputs is not None else kwargs.get("input_ids")
        if prompt is None:
            raise ValueError("Pass the prompt as input_ids (batch, length): Perceiver AR generates from tokens.")
        config = self.config
        length = prompt.shape[-1]
        if not 0 < length <= config.max_position_embeddings:
            raise ValueError(
                f"The prompt has {length} tokens; it needs 1 to max_position_embeddings = "
                f"{config.max_position_embeddings}. Keep its last {config.max_position_embeddings} tokens."
            )
        num_latents = config.num_latents if num_latents is None else num_latents
        if not 0 < num_latents <= config.num_latents:
            raise ValueError(
                f"num_latents={num_latents} is out of range: it must lie in [1, {config.num_latents}] "
                "(the config's num_latents)."
            )
        prefix_len = length - min(length, num_latents)
        if prefix_len > config.max_prefix_len:
            raise ValueError(
                f"A prompt of {length} tokens leaves a prefix of {prefix_len} > {config.max_prefix_len} "
                f"(max_position_embeddings - num_latents) with num_latents={num_latents}: use num_latents >= "
                f"{length - config.max_prefix_len}."
            )
        return super().generate(inputs, prefix_len=prefix_len, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        cache: PerceiverARCache | None = None,
        past_key_values: PerceiverARCache | None = None,
        attention_mask: torch.Tensor | None = None,
        prefix_len: int = 0,
        **kwargs,
    ) -> dict:
        cache = cache if cache is not None else past_key_values
        config = self.config
        length = input_ids.shape[1]
        latents_overflow = length - prefix_len > config.num_latents
        step_prefix_len = prefix_len + 1 if latents_overflow and prefix_len < config.max_prefix_len else prefix_len
        if cache is not None and cache.get_seq_length(CROSS_ATTENTION_LAYER) > 0:
            input_ids = input_ids[:, -1:]
            if latents_overflow:
                cache.keep_last(config.num_latents - 1, range(1, len(cache.layers)))
            if length > config.max_position_embeddings:
                cache.keep_last(config.max_position_embeddings - 1, [CROSS_ATTENTION_LAYER])
        else:
            input_ids = input_ids[:, -config.max_position_embeddings :]
        if attention_mask is not None:
            attention_mask = attention_mask[:, -config.max_position_embeddings :]
        model_inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "prefix_len": step_prefix_len,
            "past_key_values": cache,
        }
        for key, value in kwargs.items():
            if key not in ("next_sequence_length", "is_first_iteration", "position_ids", "labels"):
                model_inputs.setdefault(key, value)
        return model_inputs
