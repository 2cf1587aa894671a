"""Token ids in, input array out: byte embeddings plus learned absolute positions, added.

This is DeepMind's language model input (`hk.Embed` + `TrainablePositionEncoding`) and transformers'
`PerceiverTextPreprocessor`: UTF-8 bytes shifted by six special tokens (vocabulary 262), one learned position
per byte up to `max_position_embeddings`. Inputs shorter than that use the first rows of the position table,
which is what padding to the full length and masking the padding computes, without the padding.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..input_array import InputArray
from ..position import TrainablePositionEncoding
from .base import InputAdapter


class TextInputAdapter(InputAdapter):
    """Token embeddings `(batch, length, num_channels)` with learned positions added.

    Args:
        vocab_size: number of token ids (262 for the byte tokenizer: 256 bytes + 6 special tokens).
        max_position_embeddings: the longest input the position table covers (2048 for DeepMind's model).
        num_channels: embedding width (`config.d_model` by default).
    """

    config_defaults: ClassVar[dict[str, str]] = {"num_channels": "d_model"}

    def __init__(self, vocab_size: int = 262, max_position_embeddings: int = 2048, num_channels: int = 768):
        super().__init__()
        self.max_position_embeddings = int(max_position_embeddings)
        # `embeddings` is what `get_input_embeddings` returns and what the masked-LM logits are tied to.
        self.embeddings = nn.Embedding(int(vocab_size), num_channels)
        self.position_encoding = TrainablePositionEncoding(self.max_position_embeddings, num_channels)

    @property
    def vocab_size(self) -> int:
        # Read from the table: `set_input_embeddings` / `resize_token_embeddings` replace it.
        return self.embeddings.num_embeddings

    @property
    def num_channels(self) -> int:
        return self.embeddings.embedding_dim

    def _check(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        if not isinstance(input_ids, torch.Tensor):
            raise ValueError(
                f"Expected input_ids as a torch.Tensor of shape (batch, length), got {type(input_ids).__name__}. "
                "Tokenize with `PerceiverTokenizer(..., return_tensors='pt')`."
            )
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise ValueError(
                f"Expected integer token ids, got dtype {input_ids.dtype} with shape {tuple(input_ids.shape)}. "
                "Text models take `input_ids` from the tokenizer, not embeddings."
            )
        if input_ids.ndim != 2:
            hint = " Add a batch dimension with `input_ids[None]` for a single sequence." if input_ids.ndim == 1 else ""
            raise ValueError(f"Expected input_ids of shape (batch, length), got shape {tuple(input_ids.shape)}.{hint}")
        length = input_ids.shape[1]
        if length > self.max_position_embeddings:
            raise ValueError(
                f"The input has {length} tokens but this model has learned positions for at most "
                f"{self.max_position_embeddings}. Truncate it, e.g. `tokenizer(text, truncation=True, "
                f"max_length={self.max_position_embeddings})`, or split the text into shorter pieces."
            )
        if length == 0:
            raise ValueError("The input has no tokens (input_ids of shape (batch, 0)); give at least one.")
        if not torch.compiler.is_compiling() and input_ids.numel():
            # An out-of-range id would otherwise surface as an index error deep inside the embedding lookup.
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(
                    f"Token ids must lie in [0, {self.vocab_size}), got ids from {low} to {high}. Use the model's "
                    "tokenizer (PerceiverTokenizer: UTF-8 bytes + 6 special tokens)."
                )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids have shape "
                f"{tuple(input_ids.shape)}; they must match (1 for tokens to attend to, 0 for padding)."
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs,
    ) -> InputArray:
        self._check(input_ids, attention_mask)
        if input_ids.dtype not in (torch.int32, torch.int64):
            input_ids = input_ids.long()  # the embedding lookup takes no other integer dtype (uint8 bytes, say)
        embeddings = self.embeddings(input_ids)
        positions = self.position_encoding.position_embeddings[: input_ids.shape[1]]
        return InputArray(embeddings, positions[None].to(embeddings.dtype), combine="add", attention_mask=attention_mask)
