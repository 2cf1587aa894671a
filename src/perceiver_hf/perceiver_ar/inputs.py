"""What Perceiver AR's forward checks and derives from its inputs: valid ids and masks, the prefix length, and
the paper's prefix dropout."""

from __future__ import annotations

import torch

from .configuration import PerceiverARConfig


def cache_field(output_class: type) -> str:
    """The name transformers' output classes give the cache: `cache` in recent releases, `past_key_values` before."""
    return "cache" if "cache" in output_class.__dataclass_fields__ else "past_key_values"


def check_inputs(
    config: PerceiverARConfig, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, window: int
) -> None:
    """Raise a `ValueError`/`TypeError` naming what is wrong with the inputs and how to fix it.

    `window` is the number of tokens the model sees: cached plus new. Skipped under `torch.compile`, whose graphs
    cannot branch on tensor values.
    """
    if torch.compiler.is_compiling():
        return
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise TypeError(
            "input_ids must be an integer tensor of shape (batch, sequence_length), got "
            f"{type(input_ids).__name__} {getattr(input_ids, 'shape', '')} {getattr(input_ids, 'dtype', '')}."
        )
    limit = config.max_position_embeddings
    if window > limit:
        raise ValueError(
            f"The sequence has {window} tokens but max_position_embeddings is {limit}: keep the last {limit} "
            f"(input_ids[:, -{limit}:], with the attention mask cut alike); generate() slides its window by itself."
        )
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
        raise ValueError(
            f"input_ids must lie in [0, {config.vocab_size}) (vocab_size), got values from {int(input_ids.min())} "
            f"to {int(input_ids.max())}: was the text tokenized with this model's tokenizer?"
        )
    if attention_mask is None:
        return
    if attention_mask.shape != (input_ids.shape[0], window):
        raise ValueError(
            f"attention_mask must cover the cached and the new tokens, shape {(input_ids.shape[0], window)}; "
            f"got {tuple(attention_mask.shape)}."
        )
    if bool((attention_mask[:, 1:] < attention_mask[:, :-1]).any()):
        raise ValueError(
            "attention_mask has padding after tokens (right padding), but Perceiver AR needs left padding: the "
            "latents are the last positions. Pad on the left, e.g. tokenizer.padding_side = 'left'."
        )


def resolve_prefix_len(config: PerceiverARConfig, prefix_len: int | None, window: int, cached: int) -> int:
    """`prefix_len` checked, or its default: the last `min(window, num_latents)` positions are latents."""
    if prefix_len is None:
        return max(0, window - config.num_latents) if not cached else min(cached, config.max_prefix_len)
    if torch.compiler.is_compiling():
        return prefix_len
    if not isinstance(prefix_len, int) or isinstance(prefix_len, bool):
        raise TypeError(f"prefix_len must be an int, got {type(prefix_len).__name__}.")
    if not 0 <= prefix_len < window:
        raise ValueError(
            f"prefix_len ({prefix_len}) is out of range [0, {window}): the {window} positions hold the prefix "
            "first and at least one latent after it."
        )
    if prefix_len > config.max_prefix_len:
        raise ValueError(
            f"prefix_len ({prefix_len}) exceeds max_position_embeddings - num_latents = {config.max_prefix_len}; "
            "pass a shorter sequence or a smaller prefix_len."
        )
    return prefix_len


def drop_prefix_positions(
    rate: float,
    prefix: torch.Tensor,
    prefix_positions: torch.Tensor,
    key_padding: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Prefix dropout (the paper's training recipe): keep a random `1 - rate` of the prefix positions, the same
    count in every row and in their order, with their rotary positions and padding flags."""
    batch_size, length, channels = prefix.shape
    keep = length - int(length * rate)
    kept = torch.rand(batch_size, length, device=prefix.device).topk(keep, dim=-1).indices.sort(dim=-1).values
    prefix = prefix.gather(1, kept[..., None].expand(-1, -1, channels))
    prefix_positions = prefix_positions.gather(1, kept)
    if key_padding is not None:
        key_padding = torch.cat([key_padding[:, :length].gather(1, kept), key_padding[:, length:]], dim=1)
    return prefix, prefix_positions, key_padding
