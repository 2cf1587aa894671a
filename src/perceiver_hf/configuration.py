"""`PerceiverIOConfig`: the latent core as flat fields, each I/O component as its own small dict.

The core (latents, encoder cross-attention, latent self-attention blocks) is described by flat fields
named as in transformers' `PerceiverConfig`, so its users find what they know. What differs between
tasks lives in three component dicts, each rebuilt into a module by its own constructor:

* `input_adapter`: how a modality becomes the `(batch, M, C)` input array, e.g.
  `{"type": "image", "prep_type": "conv1x1", "out_channels": 256, "position_encoding": {...}}`;
* `decoder`: the output queries and the decoder cross-attention, e.g.
  `{"query": {"type": "trainable", "num_queries": 1, "num_channels": 1024}, "num_heads": 1}`;
* `output_adapter`: task-specific output settings a head needs (flow rescaling, modality post-processors).

A saved `config.json` therefore rebuilds every module of a checkpoint without hard-coded kwargs in heads.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .position import build_position_encoding

# DeepMind's Haiku code uses `jax.nn.gelu`, whose default is the tanh approximation; transformers'
# checkpoints use the exact erf form ("gelu"). Both are in ACT2FN: "gelu" and "gelu_pytorch_tanh".
DEEPMIND_GELU = "gelu_pytorch_tanh"

_IMAGENET_SIZE = (224, 224)


def fourier_position_encoding(
    num_bands: int, max_resolution, concat_pos: bool = True, sine_only: bool = False
) -> dict[str, Any]:
    """Config dict of a Fourier position encoding."""
    return {
        "type": "fourier",
        "num_bands": int(num_bands),
        "max_resolution": [int(r) for r in max_resolution],
        "concat_pos": concat_pos,
        "sine_only": sine_only,
    }


def trainable_position_encoding(index_dims, num_channels: int) -> dict[str, Any]:
    """Config dict of a learned position encoding table."""
    dims = [int(index_dims)] if isinstance(index_dims, int) else [int(d) for d in index_dims]
    return {"type": "trainable", "index_dims": dims, "num_channels": int(num_channels)}


def image_adapter_config(
    variant: str,
    image_size=_IMAGENET_SIZE,
    conv_padding: str = "tf_same",
    in_channels: int = 3,
) -> dict[str, Any]:
    """Input adapter of DeepMind's ImageNet models: `"learned"`, `"fourier"` or `"conv"` preprocessing."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if variant == "learned":
        return {
            "type": "image",
            "prep_type": "conv1x1",
            "in_channels": in_channels,
            "out_channels": 256,
            "position_encoding": trainable_position_encoding((height, width), 256),
            "project_pos_dim": 256,
            "concat_or_add_pos": "concat",
        }
    if variant == "fourier":
        return {
            "type": "image",
            "prep_type": "pixels",
            "in_channels": in_channels,
            "position_encoding": fourier_position_encoding(64, (height, width)),
            "concat_or_add_pos": "concat",
        }
    if variant == "conv":
        # The conv stem downsamples by 4 (stride-2 conv, stride-2 max-pool).
        return {
            "type": "image",
            "prep_type": "conv",
            "in_channels": in_channels,
            "out_channels": 64,
            "conv_padding": conv_padding,
            "position_encoding": fourier_position_encoding(64, (height // 4, width // 4)),
            "concat_or_add_pos": "concat",
        }
    raise ValueError(f"Unknown image classification variant {variant!r}; expected 'learned', 'fourier' or 'conv'.")


def classification_decoder_config(num_channels: int, use_query_residual: bool) -> dict[str, Any]:
    """One learned query cross-attends to the latents; its output is projected to `num_labels` logits."""
    return {
        "query": {"type": "trainable", "num_queries": 1, "num_channels": int(num_channels)},
        "num_heads": 1,
        "use_query_residual": use_query_residual,
        "final_project": True,
    }


def multimodal_autoencoding_components(
    num_frames: int = 16,
    image_size=_IMAGENET_SIZE,
    audio_samples_per_frame: int = 1920,
    samples_per_patch: int = 16,
    num_labels: int = 700,
    spatial_patch_size: int = 4,
    image_num_bands: int = 32,
    audio_num_bands: int = 192,
    label_query_channels: int = 1024,
    decoder_output_channels: int = 512,
    decoder_chunk_size: int = 8192,
    loss_weights: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """`input_adapter`, `decoder` and `output_adapter` of DeepMind's video+audio+label autoencoder.

    Inputs: audio patches with 1-D Fourier positions, video patches with 3-D Fourier positions of the patch grid,
    and an always-masked one-hot label, padded to a common width (min. 4 learned channels). Decoder queries: one
    per audio patch and one per pixel (Fourier positions, as DeepMind places subsampled queries), and one learned
    label query, padded to a common width (min. 2). Outputs: samples per patch, RGB per pixel, class logits.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    num_samples = num_frames * audio_samples_per_frame
    patch_grid = (num_frames, height // spatial_patch_size, width // spatial_patch_size)
    image_positions = fourier_position_encoding(image_num_bands, patch_grid)
    audio_positions = fourier_position_encoding(audio_num_bands, (num_samples,))
    return {
        "input_adapter": {
            "type": "multimodal",
            "min_padding_size": 4,
            "mask_probs": {"audio": 0.0, "image": 0.0, "label": 1.0},
            "modalities": {
                "audio": {"type": "audio", "samples_per_patch": samples_per_patch, "position_encoding": audio_positions},
                "image": {
                    "type": "video_patches",
                    "in_channels": 3,
                    "spatial_patch_size": spatial_patch_size,
                    "temporal_patch_size": 1,
                    "position_encoding": image_positions,
                },
                "label": {"type": "one_hot", "num_classes": num_labels},
            },
        },
        "decoder": {
            "query": {
                "type": "multimodal",
                "min_padding_size": 2,
                "modalities": {
                    "audio": {
                        "type": "fourier",
                        "index_dims": [num_samples // samples_per_patch],
                        "position_encoding": audio_positions,
                    },
                    "image": {"type": "fourier", "index_dims": [num_frames, height, width], "position_encoding": image_positions},
                    "label": {"type": "trainable", "num_queries": 1, "num_channels": label_query_channels},
                },
            },
            "num_heads": 1,
            "use_query_residual": False,
            "final_project": True,
            "output_channels": decoder_output_channels,
            "chunk_size": decoder_chunk_size,
        },
        "output_adapter": {
            "modalities": {
                "audio": {"type": "audio", "samples_per_patch": samples_per_patch},
                "image": {"type": "pixels", "num_channels": 3},
                "label": {"type": "classification", "num_classes": num_labels},
            },
            "loss_weights": dict(loss_weights or {"audio": 1.0, "image": 1.0, "label": 1.0}),
        },
    }


# DeepMind's optical-flow model was trained on 368x496 frame pairs (AutoFlow).
OPTICAL_FLOW_TRAIN_SIZE = (368, 496)


def flow_adapter_config(
    train_size=OPTICAL_FLOW_TRAIN_SIZE, out_channels: int = 64, num_bands: int = 64, in_channels: int = 27
) -> dict[str, Any]:
    """Input adapter of DeepMind's optical-flow model: two frames of 3x3 patches, a linear layer, Fourier positions."""
    return {
        "type": "flow",
        "in_channels": int(in_channels),
        "num_frames": 2,
        "out_channels": int(out_channels),
        "position_encoding": fourier_position_encoding(num_bands, train_size),
    }


def flow_decoder_config(input_adapter: dict[str, Any], chunk_size: int | None = 16384) -> dict[str, Any]:
    """Every row of the input array (one per pixel) queries the latents for its two flow channels, `chunk_size`
    pixels at a time."""
    content_channels = input_adapter["out_channels"] or input_adapter["num_frames"] * input_adapter["in_channels"]
    query_channels = content_channels + build_position_encoding(input_adapter["position_encoding"]).num_channels
    return {
        "query": {"type": "inputs", "num_channels": int(query_channels)},
        "num_heads": 1,
        "use_query_residual": False,
        "final_project": True,
        "output_channels": 2,
        "chunk_size": chunk_size,
    }


def flow_output_config(
    train_size=OPTICAL_FLOW_TRAIN_SIZE, rescale_factor: float = 100.0, flow_scale_factor: float = 20.0
) -> dict[str, Any]:
    """The decoder output is divided by `rescale_factor` (the model's `logits`, as transformers returns them);
    `logits * flow_scale_factor` is the flow in pixels (what DeepMind's colab returns). `train_size` is the
    frame size the model was trained on, which the pipeline tiles larger frames into."""
    return {
        "rescale_factor": float(rescale_factor),
        "flow_scale_factor": float(flow_scale_factor),
        "train_size": [int(d) for d in train_size],
    }


def text_adapter_config(vocab_size: int = 262, max_position_embeddings: int = 2048) -> dict[str, Any]:
    """Input adapter of the byte-level language models: token embeddings plus learned positions, added."""
    return {"type": "text", "vocab_size": int(vocab_size), "max_position_embeddings": int(max_position_embeddings)}


def masked_lm_decoder_config(
    d_model: int,
    max_position_embeddings: int,
    num_heads: int = 8,
    qk_channels: int = 256,
    mask_padded_queries: bool = True,
) -> dict[str, Any]:
    """One learned query per byte position cross-attends to the latents, keeping `d_model` channels for the
    logits tied to the byte embeddings. Only as many queries as the input has positions are decoded.

    `mask_padded_queries`: DeepMind's colab passes the input mask as the decoder's query mask, so padded
    positions get a zero attention output (their logits are then the same for every padded position);
    transformers' `PerceiverForMaskedLM` ignores the query mask. Real positions are identical either way.
    """
    return {
        "query": {
            "type": "trainable",
            "num_queries": int(max_position_embeddings),
            "num_channels": int(d_model),
            "match_input_length": True,
        },
        "num_heads": num_heads,
        "qk_channels": qk_channels,
        "v_channels": int(d_model),
        "use_query_residual": False,
        "final_project": False,
        "mask_padded_queries": mask_padded_queries,
    }


def token_classification_decoder_config(
    d_model: int, max_position_embeddings: int, num_heads: int = 8, qk_channels: int = 256, mask_padded_queries: bool = True
) -> dict[str, Any]:
    """The masked language model's decoder (one learned query per byte position), its output projected to
    `num_labels` per position instead of tied to the byte embeddings, so a masked LM's decoder carries over."""
    decoder = masked_lm_decoder_config(d_model, max_position_embeddings, num_heads, qk_channels, mask_padded_queries)
    return {**decoder, "final_project": True}


# DeepMind's `language_perceiver_io_bytes` encoder (transformers' `deepmind/language-perceiver`).
_LANGUAGE_CORE = {
    "num_latents": 256,
    "d_latents": 1280,
    "d_model": 768,
    "num_blocks": 1,
    "num_self_attends_per_block": 26,
    "num_self_attention_heads": 8,
    "num_cross_attention_heads": 8,
    "qk_channels": 256,
    "hidden_act": DEEPMIND_GELU,
}


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
        input_adapter (`dict`, *optional*): the input adapter (see `perceiver_hf.adapters`). `None` means the
            inputs already are `(batch, M, d_model)` arrays.
        decoder (`dict`, *optional*): output queries and decoder cross-attention (see `PerceiverIODecoder`).
        output_adapter (`dict`, *optional*): task-specific output settings used by heads.
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
    decoder: dict[str, Any] | None = None
    output_adapter: dict[str, Any] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("num_latents", "d_latents", "num_blocks", "num_self_attends_per_block"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("num_self_attention_heads", "num_cross_attention_heads"):
            heads = getattr(self, name)
            if not isinstance(heads, int) or heads < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {heads!r}.")
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
        if self.input_chunk_size is not None and self.input_chunk_size < 1:
            raise ValueError(f"`input_chunk_size` must be a positive integer or None, got {self.input_chunk_size}.")

    @classmethod
    def for_image_classification(
        cls,
        variant: str = "learned",
        image_size=_IMAGENET_SIZE,
        num_labels: int = 1000,
        decoder_query_residual: bool | None = None,
        **overrides,
    ) -> PerceiverIOConfig:
        """DeepMind's ImageNet architecture (`variant` "learned", "fourier" or "conv"), full size by default.

        `overrides` replace any core field (e.g. `num_latents=32, d_latents=64, num_blocks=1` for a small
        model). DeepMind's learned-position model decodes without a query residual, the other two with one.
        """
        core = {
            "num_latents": 512,
            "d_latents": 1024,
            "num_blocks": 8,
            "num_self_attends_per_block": 6,
            "num_self_attention_heads": 8,
            "num_cross_attention_heads": 1,
            "hidden_act": DEEPMIND_GELU,
        }
        adapter_kwargs = {k: overrides.pop(k) for k in ("conv_padding", "in_channels") if k in overrides}
        core.update(overrides)
        if decoder_query_residual is None:
            decoder_query_residual = variant != "learned"
        return cls(
            **core,
            input_adapter=image_adapter_config(variant, image_size, **adapter_kwargs),
            decoder=classification_decoder_config(core["d_latents"], decoder_query_residual),
            num_labels=num_labels,
        )

    @classmethod
    def for_multimodal_autoencoding(
        cls,
        num_frames: int = 16,
        image_size=_IMAGENET_SIZE,
        audio_samples_per_frame: int = 1920,
        samples_per_patch: int = 16,
        num_labels: int | None = None,
        **overrides,
    ) -> PerceiverIOConfig:
        """DeepMind's Kinetics-700 video+audio+label autoencoder, full size by default (16 frames of 224x224,
        30,720 audio samples, 700 classes or as many as `id2label` names). `overrides` replace core fields or
        `multimodal_autoencoding_components` options."""
        if num_labels is None:
            num_labels = len(overrides["id2label"]) if overrides.get("id2label") else 700
        component_options = {
            key: overrides.pop(key)
            for key in (
                "spatial_patch_size",
                "image_num_bands",
                "audio_num_bands",
                "label_query_channels",
                "decoder_output_channels",
                "decoder_chunk_size",
                "loss_weights",
            )
            if key in overrides
        }
        core = {
            "num_latents": 784,
            "d_latents": 512,
            "d_model": 704,
            "num_blocks": 1,
            "num_self_attends_per_block": 8,
            "num_self_attention_heads": 8,
            "num_cross_attention_heads": 1,
            "hidden_act": DEEPMIND_GELU,
        }
        core.update(overrides)
        components = multimodal_autoencoding_components(
            num_frames, image_size, audio_samples_per_frame, samples_per_patch, num_labels, **component_options
        )
        labels = {} if core.get("id2label") else {"num_labels": num_labels}
        return cls(**core, **components, **labels, architectures=["PerceiverIOForMultimodalAutoencoding"])

    @classmethod
    def for_optical_flow(
        cls, train_size=OPTICAL_FLOW_TRAIN_SIZE, decoder_chunk_size: int | None = 16384, **overrides
    ) -> PerceiverIOConfig:
        """DeepMind's optical-flow architecture (2048 x 512 latents, 24 self-attention layers), full size by default.

        `overrides` replace core fields (e.g. `num_latents=16, d_latents=32, num_self_attends_per_block=2` for a
        small model); `out_channels` and `num_bands` resize the input adapter. `decoder_chunk_size` pixels are
        decoded at a time (`None`: all at once).
        """
        core = {
            "num_latents": 2048,
            "d_latents": 512,
            "num_blocks": 1,
            "num_self_attends_per_block": 24,
            "num_self_attention_heads": 16,
            "num_cross_attention_heads": 1,
            "hidden_act": DEEPMIND_GELU,
        }
        adapter_kwargs = {k: overrides.pop(k) for k in ("out_channels", "num_bands") if k in overrides}
        core.update(overrides)
        adapter = flow_adapter_config(train_size, **adapter_kwargs)
        return cls(
            **core,
            input_adapter=adapter,
            decoder=flow_decoder_config(adapter, decoder_chunk_size),
            output_adapter=flow_output_config(train_size),
        )

    @classmethod
    def for_masked_lm(
        cls,
        vocab_size: int = 262,
        max_position_embeddings: int = 2048,
        decoder_num_heads: int = 8,
        decoder_qk_channels: int = 256,
        mask_padded_queries: bool = True,
        **overrides,
    ) -> PerceiverIOConfig:
        """DeepMind's byte-level masked language model, full size by default (201M parameters).

        `overrides` replace core fields (e.g. `d_model=64, d_latents=128, num_self_attends_per_block=2`); value
        channels default to `d_latents` as in DeepMind's model. See `masked_lm_decoder_config` for the rest.
        """
        core = {**_LANGUAGE_CORE, **overrides}
        core.setdefault("v_channels", core["d_latents"])
        decoder = masked_lm_decoder_config(
            core["d_model"], max_position_embeddings, decoder_num_heads, decoder_qk_channels, mask_padded_queries
        )
        return cls(**core, input_adapter=text_adapter_config(vocab_size, max_position_embeddings), decoder=decoder)

    @classmethod
    def for_sequence_classification(
        cls,
        num_labels: int = 2,
        vocab_size: int = 262,
        max_position_embeddings: int = 2048,
        **overrides,
    ) -> PerceiverIOConfig:
        """The language model's encoder with one learned query decoding `num_labels` logits (with a query
        residual, as transformers' `PerceiverForSequenceClassification`). `overrides` replace core fields."""
        core = {**_LANGUAGE_CORE, **overrides}
        core.setdefault("v_channels", core["d_latents"])
        return cls(
            **core,
            input_adapter=text_adapter_config(vocab_size, max_position_embeddings),
            decoder=classification_decoder_config(core["d_latents"], use_query_residual=True),
            num_labels=num_labels,
        )

    @classmethod
    def for_token_classification(
        cls,
        num_labels: int | None = None,
        max_position_embeddings: int = 2048,
        vocab_size: int = 262,
        decoder_num_heads: int = 8,
        decoder_qk_channels: int = 256,
        mask_padded_queries: bool = True,
        **overrides,
    ) -> PerceiverIOConfig:
        """The language model's encoder and per-position decoder, each position's output projected to `num_labels`
        logits (one label per byte): `num_labels`, or as many as `id2label` names (default 2). `overrides` replace
        core fields, as in `for_masked_lm`."""
        if num_labels is None:
            num_labels = len(overrides["id2label"]) if overrides.get("id2label") else 2
        core = {**_LANGUAGE_CORE, **overrides}
        core.setdefault("v_channels", core["d_latents"])
        decoder = token_classification_decoder_config(
            core["d_model"], max_position_embeddings, decoder_num_heads, decoder_qk_channels, mask_padded_queries
        )
        return cls(
            **core,
            input_adapter=text_adapter_config(vocab_size, max_position_embeddings),
            decoder=decoder,
            num_labels=num_labels,
        )

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("input_adapter", "decoder", "output_adapter"):
            output[key] = copy.deepcopy(output.get(key))
        return output


__all__ = [
    "DEEPMIND_GELU",
    "PerceiverIOConfig",
    "OPTICAL_FLOW_TRAIN_SIZE",
    "classification_decoder_config",
    "flow_adapter_config",
    "flow_decoder_config",
    "flow_output_config",
    "fourier_position_encoding",
    "image_adapter_config",
    "masked_lm_decoder_config",
    "multimodal_autoencoding_components",
    "text_adapter_config",
    "token_classification_decoder_config",
    "trainable_position_encoding",
]
