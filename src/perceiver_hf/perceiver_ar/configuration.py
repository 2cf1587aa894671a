"""`PerceiverARConfig`: Perceiver AR (arXiv 2202.07765) in transformers' field names."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN


class PerceiverARConfig(PreTrainedConfig):
    r"""
    Configuration of a Perceiver AR causal language model. Defaults are krasserm/perceiver-io's
    (`CausalSequenceModelConfig`); its names are given in parentheses.

    Args:
        vocab_size (`int`, defaults to 262): token vocabulary (262: `PerceiverTokenizer`'s bytes + specials).
        max_position_embeddings (`int`, defaults to 4096): longest sequence, prefix + latents (`max_seq_len`).
        num_latents (`int`, defaults to 512): how many of the last positions are latents by default (`max_latents`).
        hidden_size (`int`, defaults to 512): channels of every position (`num_channels`).
        num_attention_heads (`int`, defaults to 8): heads of the cross- and self-attention (`num_heads`).
        num_hidden_layers (`int`, defaults to 8): causal self-attention layers over the latents
            (`num_self_attention_layers`); the one cross-attention layer comes on top.
        num_rotary_layers (`int`, defaults to 1): how many of the first self-attention layers rotate queries and
            keys (`num_self_attention_rotary_layers`); -1 means all. The cross-attention always rotates.
        cross_attention_widening_factor, self_attention_widening_factor (`int`, defaults to 4): MLP widths.
        prefix_dropout (`float`, defaults to 0.5): in training, that fraction of the prefix positions is dropped
            before the cross-attention, the same count in every row (`cross_attention_dropout`).
        attention_dropout (`float`, defaults to 0.0): dropout on attention weights (`post_attention_dropout`).
        residual_dropout (`float`, defaults to 0.0): dropout on each block's output before its residual.
        use_absolute_positions (`bool`, defaults to `True`): add learned absolute position embeddings to the token
            embeddings; rotary embeddings then turn only the first half of each head's channels (`abs_pos_emb`).
        final_layer_norm (`bool`, defaults to `False`): layer-normalise the last hidden states (`output_norm`).
        output_bias (`bool`, defaults to `True`): a bias on the logits, which are the hidden states times the
            (tied) token embeddings.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation (exact GELU).
        layer_norm_eps (`float`, defaults to 1e-5), initializer_range (`float`, defaults to 0.02) (`init_scale`).
    """

    model_type = "perceiver_ar"

    vocab_size: int = 262
    max_position_embeddings: int = 4096
    num_latents: int = 512
    hidden_size: int = 512
    num_attention_heads: int = 8
    num_hidden_layers: int = 8
    num_rotary_layers: int = 1
    cross_attention_widening_factor: int = 4
    self_attention_widening_factor: int = 4
    prefix_dropout: float = 0.5
    attention_dropout: float = 0.0
    residual_dropout: float = 0.0
    use_absolute_positions: bool = True
    final_layer_norm: bool = False
    output_bias: bool = True
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("vocab_size", "max_position_embeddings", "num_latents", "hidden_size", "num_attention_heads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        if self.num_latents > self.max_position_embeddings:
            raise ValueError(
                f"num_latents ({self.num_latents}) must not exceed max_position_embeddings "
                f"({self.max_position_embeddings})."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.rotated_channels_per_head % 2:
            raise ValueError(
                f"Rotary embeddings turn channel pairs: {self.rotated_channels_per_head} rotated channels per head "
                "is odd. Choose hidden_size / num_attention_heads divisible by 4 (by 2 without absolute positions)."
            )
        if not 0.0 <= self.prefix_dropout < 1.0:
            raise ValueError(f"prefix_dropout must lie in [0, 1), got {self.prefix_dropout}.")
        if isinstance(self.hidden_act, str) and self.hidden_act not in ACT2FN:
            raise ValueError(f"Unknown `hidden_act` {self.hidden_act!r}; choose one of transformers' ACT2FN keys.")

    @property
    def max_prefix_len(self) -> int:
        """The longest prefix that leaves room for `num_latents` latents."""
        return self.max_position_embeddings - self.num_latents

    @property
    def rotated_channels_per_head(self) -> int:
        head_dim = self.hidden_size // self.num_attention_heads
        # With absolute position embeddings, relative (rotary) positions take only half of each head.
        return head_dim // 2 if self.use_absolute_positions else head_dim
