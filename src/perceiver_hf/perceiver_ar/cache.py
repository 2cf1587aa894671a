"""`PerceiverARCache`: a transformers `DynamicCache` laid out for Perceiver AR.

Layer 0 holds the cross-attention's keys and values (prefix + latents, the whole window); layers 1.. hold each
self-attention layer's (the latents only). Keys are stored rotated. Generation trims the oldest entries as the
window moves (`keep_last`), and the cache remembers the rotary position of the next token of every row, since
rotary positions keep counting when the window slides while absolute positions stop at the window's end.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

CROSS_ATTENTION_LAYER = 0


class PerceiverARCache(DynamicCache):
    def __init__(self):
        super().__init__()
        self.next_positions: torch.Tensor | None = None  # (batch,) rotary position of each row's next token

    def window_length(self) -> int:
        """Tokens in the cross-attention cache: the window seen so far."""
        return self.get_seq_length(CROSS_ATTENTION_LAYER)

    def keep_last(self, length: int, layers: range | list[int]) -> None:
        """Drop all but the last `length` keys/values of `layers`."""
        for index in layers:
            if index < len(self.layers) and self.layers[index].get_seq_length() > length:
                layer = self.layers[index]
                layer.keys = layer.keys[..., -length:, :]
                layer.values = layer.values[..., -length:, :]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        if self.next_positions is not None:
            self.next_positions = self.next_positions.index_select(0, beam_idx.to(self.next_positions.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        if self.next_positions is not None:
            self.next_positions = self.next_positions.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        if self.next_positions is not None:
            self.next_positions = self.next_positions[indices]
