"""`PerceiverIOConfig`: the latent core as flat fields, each I/O component as its own small dict.

The core (latents, encoder cross-attention, latent self-attention blocks) is described by flat fields
named as in transformers' `PerceiverConfig`, so its users find what they know. What differs between
tasks lives in three component dicts, each rebuilt into a module by its own registry:

* `input_adapter`: how a modality becomes the `(batch, M, C)` input array, e.g.
  `{"type": "image", "prep_type": "conv1x1", "out_channels": 256, "position_encoding": {...}}`
  (see `perceiver_hf.input_adapters`);
* `query_decoder`: the output queries and the decoder cross-attention, e.g.
  `{"query": {"type": "trainable", "num_queries": 1, "num_channels": 1024}, "num_heads": 1}`
  (see `PerceiverIODecoder`);
* `output_adapter`: how the decoder output becomes the task's output, e.g. `{"type": "flow", "rescale_factor": 100}`
  (see `perceiver_hf.output_adapters`).

A saved `config.json` therefore rebuilds every module of a checkpoint without hard-coded kwargs in heads.
DeepMind's architectures are in `perceiver_hf.presets`; the `for_*` constructors below build them.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from . import presets
from .from_transformers import is_transformers_config, translate_config

COMPONENTS = ("input_adapter", "query_decoder", "output_adapter")
# Keys of the component dicts that are sizes, counts or strides: positive integers (or lists of them) wherever they
# appear, so that a zero or negative size is refused here rather than deep inside a layer that cannot be built.
_COMPONENT_SIZES = frozenset({
    "vocab_size", "max_position_embeddings", "num_queries", "num_channels", "num_bands", "index_dims",
    "max_resolution", "in_channels", "out_channels", "spatial_downsample", "num_heads", "qk_channels", "v_channels",
    "widening_factor", "chunk_size", "output_channels", "samples_per_patch", "num_classes", "num_frames",
    "temporal_patch_size", "spatial_patch_size", "train_size", "min_padding_size",
})  # fmt: skip


def registered_type(registry: dict[str, type], kind: str | None, component: str) -> type:
    """The class a component dict's `"type"` names in `registry` (input adapters, output queries, output
    adapters), or a ValueError listing the types there are."""
    if kind not in registry:
        raise ValueError(f"Unknown {component} type {kind!r}; known types: {sorted(registry)}.")
    return registry[kind]


def _check_positive_int(name: str, value, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer{alternative}, got {value!r}.")


def _check_component_sizes(path: str, value) -> None:
    """Every size in a component dict (at any depth) is a positive integer, or a list of them."""
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{path}[{key!r}]"
        if key in _COMPONENT_SIZES and item is not None:
            for size in item if isinstance(item, (list, tuple)) else [item]:
                _check_positive_int(where, size)
        _check_component_sizes(where, item)


class PerceiverIOConfig(PreTrainedConfig):
    r"""
    Configuration of a Perceiver IO model (arXiv 2107.14795).

    Args:
        num_latents (`int`, defaults to 256): number of latent vectors (DeepMind's `z_index_dim`).
        d_latents (`int`, defaults to 1280): channels of each latent (`num_z_channels`).
        d_model (`int`, defaults to 768): channels of raw inputs when no `input_adapter` is configured, and
            the byte-embedding width of text adapters.
        num_blocks (`int`, defaults to 1): how often the block of self-attention layers is applied; the
            layers of the block share their weights across repetitions.
        num_self_attends_per_block (`int`, defaults to 26): self-attention layers per block.
        num_self_attention_heads / num_cross_attention_heads (`int`, defaults to 8): heads of the latent
            self-attention layers / of the encoder cross-attention.
        qk_channels, v_channels (`int`, *optional*): query-key and value channels of the encoder attention
            layers. Cross-attention defaults to the input channels (`cross_attention_shape_for_attention="kv"`)
            or the latent channels (`"q"`); self-attention to `d_latents`.
        self_attention_widening_factor / cross_attention_widening_factor (`int`, defaults to 1): MLP widths.
        use_query_residual (`bool`, defaults to `True`): residual around the encoder cross-attention.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation. `"gelu"` is exact (transformers' checkpoints);
            DeepMind's originals use the tanh approximation, `"gelu_pytorch_tanh"`.
        attention_probs_dropout_prob (`float`, defaults to 0.0): dropout on attention weights. Non-zero values
            keep PyTorch from using its fused CPU attention kernel and, in training, from folding the encoder's
            key/value projections, which costs time and memory: transformers' Perceiver defaults to 0.1, we to 0.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every layer norm (Haiku's and PyTorch's default).
        initializer_range (`float`, defaults to 0.02): std of the normal initialisation.
        input_chunk_size (`int`, *optional*, defaults to 4096): the encoder reads the input array this many
            rows at a time, so that no full-length copy of it (normalised, keys, values) is materialised whole
            at once. `None` reads it in one go.
        input_adapter (`dict`, *optional*): the input adapter. `None` means the inputs already are
            `(batch, M, d_model)` arrays.
        query_decoder (`dict`, *optional*): output queries and decoder cross-attention (folders saved before it
            had this name call it `decoder`; they load as they are).
        output_adapter (`dict`, *optional*): the output adapter (`None`: the head's usual one).
        vocab_size (`int`, *optional*): the token vocabulary of a text model; it is the text input adapter's
            `vocab_size` (setting one sets the other).
    """

    model_type = "perceiver_io"

    num_latents: int = 256
    d_latents: int = 1280
    d_model: int = 768
    num_blocks: int = 1
    num_self_attends_per_block: int = 26
    num_self_attention_heads: int = 8
    num_cross_attention_heads: int = 8
    qk_channels: int | None = None
    v_channels: int | None = None
    cross_attention_shape_for_attention: str = "kv"
    self_attention_widening_factor: int = 1
    cross_attention_widening_factor: int = 1
    use_query_residual: bool = True
    hidden_act: str = "gelu"
    attention_probs_dropout_prob: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    input_chunk_size: int | None = 4096
    input_adapter: dict[str, Any] | None = None
    query_decoder: dict[str, Any] | None = None
    output_adapter: dict[str, Any] | None = None

    def __post_init__(self, **kwargs):
        # `decoder` was the name of `query_decoder` (transformers reads an attribute called `decoder` as a text
        # sub-config); `vocab_size` lives in the text adapter. Neither becomes an attribute of its own.
        legacy_decoder = kwargs.pop("decoder", None)
        vocab_size = kwargs.pop("vocab_size", None)
        super().__post_init__(**kwargs)
        if legacy_decoder is not None:
            if self.query_decoder is not None and self.query_decoder != legacy_decoder:
                raise ValueError("Give the query decoder once: `query_decoder` (`decoder` is its former name).")
            self.query_decoder = legacy_decoder
        self._validate()
        if vocab_size is not None:
            adapter_vocab_size = (self.input_adapter or {}).get("vocab_size", vocab_size)
            if adapter_vocab_size != vocab_size:
                raise ValueError(
                    f"vocab_size={vocab_size} but input_adapter['vocab_size']={adapter_vocab_size}: they are one "
                    "setting, give it once."
                )
            self.vocab_size = vocab_size

    def _validate(self) -> None:
        for name in ("num_latents", "d_latents", "d_model", "num_blocks", "num_self_attends_per_block",
                     "num_self_attention_heads", "num_cross_attention_heads", "self_attention_widening_factor",
                     "cross_attention_widening_factor"):  # fmt: skip
            _check_positive_int(name, getattr(self, name))
        for name in ("qk_channels", "v_channels", "input_chunk_size"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name), " or None")
        for name in ("qk_channels", "v_channels"):
            for heads in ("num_self_attention_heads", "num_cross_attention_heads"):
                if getattr(self, name) is not None and getattr(self, name) % getattr(self, heads):
                    raise ValueError(
                        f"`{name}` ({getattr(self, name)}) must be divisible by `{heads}` ({getattr(self, heads)}): "
                        "heads split the channels evenly."
                    )
        if self.d_latents % self.num_self_attention_heads:
            raise ValueError(
                f"d_latents ({self.d_latents}) must be divisible by num_self_attention_heads "
                f"({self.num_self_attention_heads})."
            )
        if self.cross_attention_shape_for_attention not in ("q", "kv"):
            raise ValueError(
                f"`cross_attention_shape_for_attention` must be 'q' or 'kv', got "
                f"{self.cross_attention_shape_for_attention!r}."
            )
        if isinstance(self.hidden_act, str) and self.hidden_act not in ACT2FN:
            raise ValueError(f"Unknown `hidden_act` {self.hidden_act!r}; choose one of transformers' ACT2FN keys.")
        if not isinstance(self.use_query_residual, bool):
            raise ValueError(f"`use_query_residual` must be True or False, got {self.use_query_residual!r}.")
        dropout = self.attention_probs_dropout_prob
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(
                f"`attention_probs_dropout_prob` is a probability in [0, 1), got {dropout!r} (0 turns dropout off)."
            )
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
        for name in COMPONENTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"`{name}` must be a dict (or None), got {type(value).__name__}.")
            _check_component_sizes(name, value)

    @property
    def vocab_size(self) -> int | None:
        """The token vocabulary of a text model (its input adapter's), `None` for other inputs."""
        adapter = self.input_adapter or {}
        if adapter.get("type") != "text":
            return None
        return adapter.get("vocab_size", presets.BYTE_VOCAB_SIZE)

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        adapter = self.input_adapter or {}
        if adapter.get("type") != "text":
            raise ValueError(
                f"vocab_size={value} applies to text models, but this config's input adapter is "
                f"{adapter.get('type', 'array')!r}. Build a text model with `PerceiverIOConfig.for_masked_lm(vocab_size=...)` "
                "or `for_sequence_classification(vocab_size=...)`."
            )
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`vocab_size` must be a positive integer, got {value!r}.")
        self.input_adapter = {**adapter, "vocab_size": value}

    @classmethod
    def for_image_classification(cls, *args, **options) -> PerceiverIOConfig:
        """DeepMind's ImageNet architecture (`variant` "learned", "fourier" or "conv"), full size by default;
        see `presets.image_classification` (e.g. `num_latents=32, d_latents=64, num_blocks=1` for a small model)."""
        return cls(**presets.image_classification(*args, **options))

    @classmethod
    def for_multimodal_autoencoding(cls, *args, **options) -> PerceiverIOConfig:
        """DeepMind's Kinetics-700 video+audio+label autoencoder, full size by default; see
        `presets.multimodal_autoencoding`."""
        return cls(**presets.multimodal_autoencoding(*args, **options))

    @classmethod
    def for_optical_flow(cls, *args, **options) -> PerceiverIOConfig:
        """DeepMind's optical-flow architecture, full size by default; see `presets.optical_flow`."""
        return cls(**presets.optical_flow(*args, **options))

    @classmethod
    def for_masked_lm(cls, *args, **options) -> PerceiverIOConfig:
        """DeepMind's byte-level masked language model, full size by default (201M parameters); see
        `presets.masked_lm`."""
        return cls(**presets.masked_lm(*args, **options))

    @classmethod
    def for_sequence_classification(cls, *args, **options) -> PerceiverIOConfig:
        """The language model's encoder with one learned query decoding `num_labels` logits; see
        `presets.sequence_classification`."""
        return cls(**presets.sequence_classification(*args, **options))

    @classmethod
    def for_token_classification(cls, *args, **options) -> PerceiverIOConfig:
        """The language model's encoder and per-position decoder, each byte's decoded vector mapped to `num_labels`
        logits; see `presets.token_classification`."""
        return cls(**presets.token_classification(*args, **options))

    @classmethod
    def for_time_series_forecasting(cls, *args, **options) -> PerceiverIOConfig:
        """A forecaster: `context_length`, `prediction_length`, `num_channels`, `distribution_output` ("student_t"
        or "normal"; `loss="mse"` or `"mae"` for point forecasts), `scaling`; see `presets.time_series_forecasting`."""
        return cls(**presets.time_series_forecasting(*args, **options))

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs) -> tuple[dict[str, Any], dict[str, Any]]:
        """transformers' loading, with one addition: a transformers Perceiver config (`model_type "perceiver"`)
        reads as the equivalent perceiver_hf config (see `perceiver_hf.from_transformers`)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if is_transformers_config(config_dict):
            config_dict = translate_config(config_dict)
        return config_dict, kwargs

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in COMPONENTS:
            output[key] = copy.deepcopy(output.get(key))
        if self.vocab_size is not None:  # for readers of config.json; loading checks it against the adapter's
            output["vocab_size"] = self.vocab_size
        return output


__all__ = ["PerceiverIOConfig"]
