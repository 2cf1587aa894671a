"""`PerceiverARCache`: a transformers `DynamicCache` laid out for Perceiver AR.

Layer 0 holds the cross-attention's keys and values (prefix + latents, the whole window); layers 1.. hold each
self-attention layer's (the latents only). Keys are stored rotated. Generation trims the oldest entries as the
window moves (`keep_last`), and the cache remembers the rotary position of the next token of every row, since
rotary positions keep counting when the window slides while absolute positions stop at the window's end.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

CROSS_ATTENTION_LAYER = 0


class AppendableLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views into buffers with room to grow, so that a generation step
    copies its new token only, not the whole cache (`torch.cat` copies thousands of cross-attention keys per token).

    Anything that replaces `keys`/`values` (beam reordering, batch selection) is picked up: the next update then
    moves them into fresh buffers.
    """

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if not self._keys_are_buffer_views() or self._end + new > self._key_buffer.shape[-2]:
            self._rebuffer(key_states, value_states)
        self._key_buffer[..., self._end : self._end + new, :] = key_states
        self._value_buffer[..., self._end : self._end + new, :] = value_states
        self._end += new
        self._publish()
        return self.keys, self.values

    def keep_last(self, length: int) -> None:
        if self._keys_are_buffer_views():
            self._start = max(self._start, self._end - length)
            self._publish()
        else:
            self.keys, self.values = self.keys[..., -length:, :], self.values[..., -length:, :]

    def _keys_are_buffer_views(self) -> bool:
        return getattr(self, "_published", None) is self.keys

    def _rebuffer(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Fresh buffers with room for twice the cached and new entries, holding the cached ones."""
        cached = self.keys.shape[-2] if self.keys is not None and self.keys.dim() == 4 else 0
        capacity = max(64, 2 * (cached + key_states.shape[-2]))
        self._key_buffer = key_states.new_zeros((*key_states.shape[:-2], capacity, key_states.shape[-1]))
        self._value_buffer = value_states.new_zeros((*value_states.shape[:-2], capacity, value_states.shape[-1]))
        if cached:
            self._key_buffer[..., :cached, :] = self.keys
            self._value_buffer[..., :cached, :] = self.values
        self._start, self._end = 0, cached

    def _publish(self) -> None:
        self.keys = self._key_buffer[..., self._start : self._end, :]
        self.values = self._value_buffer[..., self._start : self._end, :]
        self._published = self.keys


class PerceiverARCache(DynamicCache):
    def __init__(self):
        super().__init__()
        self.layer_class_to_replicate = AppendableLayer
        self.next_positions: torch.Tensor | None = None  # (batch,) rotary position of each row's next token

    def window_length(self) -> int:
        """Tokens in the cross-attention cache: the window seen so far."""
        return self.get_seq_length(CROSS_ATTENTION_LAYER)

    def keep_last(self, length: int, layers: range | list[int]) -> None:
        """Drop all but the last `length` keys/values of `layers`."""
        for index in layers:
            if index < len(self.layers) and self.layers[index].get_seq_length() > length:
                self.layers[index].keep_last(length)

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
