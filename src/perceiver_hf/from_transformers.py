"""transformers' Perceiver checkpoints (`model_type "perceiver"`) -> perceiver_hf: config and weights.

Used by `from_pretrained` (which converts on the fly) and by `conversion/convert_transformers.py` (which writes
a converted folder). transformers' parameter layout differs from ours only by names, so weights convert
with an ordered list of regular-expression renames; the converter then checks that every converted name is
a parameter of the target head and that no parameter of the head is left without a weight.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .configuration import (
    PerceiverIOConfig,
    classification_decoder_config,
    flow_adapter_config,
    flow_decoder_config,
    flow_output_config,
    fourier_position_encoding,
    masked_lm_decoder_config,
    multimodal_autoencoding_components,
    text_adapter_config,
    trainable_position_encoding,
)

# Keyword arguments of `from_pretrained` that say where to find files (and must reach the file look-ups).
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")

# transformers core fields that keep their meaning and name in PerceiverIOConfig.
_CORE_FIELDS = (
    "num_latents",
    "d_latents",
    "d_model",
    "num_blocks",
    "num_self_attends_per_block",
    "num_self_attention_heads",
    "num_cross_attention_heads",
    "qk_channels",
    "v_channels",
    "cross_attention_shape_for_attention",
    "self_attention_widening_factor",
    "cross_attention_widening_factor",
    "use_query_residual",
    "hidden_act",
    "attention_probs_dropout_prob",
    "initializer_range",
    "id2label",
    "label2id",
    "problem_type",
)


def _core_config(source: dict[str, Any]) -> dict[str, Any]:
    core = {name: source[name] for name in _CORE_FIELDS if name in source}
    # transformers' config says layer_norm_eps=1e-12, but its Perceiver builds every nn.LayerNorm with the
    # PyTorch default 1e-5; ours honours the field, so it must say what transformers actually computes.
    core["layer_norm_eps"] = 1e-5
    return core


def _image_classification_config(variant: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def convert(source: dict[str, Any]) -> dict[str, Any]:
        config = _core_config(source)
        if variant == "learned":
            size = source.get("image_size", 224)
            height, width = (size, size) if isinstance(size, int) else size
            adapter = {
                "type": "image",
                "prep_type": "conv1x1",
                "out_channels": 256,
                "position_encoding": trainable_position_encoding((height, width), 256),
                "project_pos_dim": 256,
            }
        elif variant == "fourier":
            adapter = {"type": "image", "prep_type": "pixels", "position_encoding": fourier_position_encoding(64, (224, 224))}
        else:
            adapter = {
                "type": "image",
                "prep_type": "conv",
                "out_channels": 64,
                # transformers' conv stem pads differently from DeepMind's; keep its outputs (see ConvStem).
                "conv_padding": "transformers",
                "position_encoding": fourier_position_encoding(64, (56, 56)),
            }
        # transformers decodes all three ImageNet models with a query residual.
        config.update(input_adapter=adapter, decoder=classification_decoder_config(config["d_latents"], True))
        return config

    return convert


def _multimodal_autoencoding_config(source: dict[str, Any]) -> dict[str, Any]:
    config = _core_config(source)
    output_shape = source.get("output_shape", [1, 16, 224, 224])
    image_size = source.get("image_size", 56)
    num_frames = source.get("num_frames", 16)
    components = multimodal_autoencoding_components(
        num_frames=num_frames,
        image_size=tuple(output_shape[2:4]),
        audio_samples_per_frame=source.get("audio_samples_per_frame", 1920),
        samples_per_patch=source.get("samples_per_patch", 16),
        num_labels=len(source["id2label"]) if source.get("id2label") else source.get("num_labels", 700),
        label_query_channels=source.get("_label_trainable_num_channels", 1024),
        decoder_output_channels=source.get("output_num_channels", 512),
    )
    # transformers' Fourier encodings of the video use max_resolution (num_frames, image_size, image_size), set
    # apart from the output size; its decoder's image grid is output_shape[1:] (batch dim first).
    image_positions = fourier_position_encoding(32, (num_frames, image_size, image_size))
    components["input_adapter"]["modalities"]["image"]["position_encoding"] = image_positions
    image_queries = components["decoder"]["query"]["modalities"]["image"]
    image_queries.update(index_dims=list(output_shape[1:4]), position_encoding=image_positions)
    config.update(components)
    return config


def _optical_flow_config(source: dict[str, Any]) -> dict[str, Any]:
    # transformers hard-codes the flow model's I/O: 64 patch channels and 64 Fourier bands at `train_size`.
    config = _core_config(source)
    train_size = source.get("train_size", [368, 496])
    adapter = flow_adapter_config(train_size)
    config.update(input_adapter=adapter, decoder=flow_decoder_config(adapter), output_adapter=flow_output_config(train_size))
    return config


def _text_config(task: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def convert(source: dict[str, Any]) -> dict[str, Any]:
        config = _core_config(source)
        max_positions = source.get("max_position_embeddings", 2048)
        config["input_adapter"] = text_adapter_config(source.get("vocab_size", 262), max_positions)
        if task == "masked_lm":
            # transformers hard-codes this decoder (8 heads, qk 8 * 32, values of d_model channels) and drops the
            # query mask, so padded positions keep transformers' logits.
            config["decoder"] = masked_lm_decoder_config(
                source.get("d_model", 768), max_positions, num_heads=8, qk_channels=256, mask_padded_queries=False
            )
        else:
            config["decoder"] = classification_decoder_config(source.get("d_latents", 1280), use_query_residual=True)
        return config

    return convert


# transformers architecture -> (our head class name, config converter).
ARCHITECTURES: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "PerceiverForImageClassificationLearned": ("PerceiverIOForImageClassification", _image_classification_config("learned")),
    "PerceiverForImageClassificationFourier": ("PerceiverIOForImageClassification", _image_classification_config("fourier")),
    "PerceiverForImageClassificationConvProcessing": ("PerceiverIOForImageClassification", _image_classification_config("conv")),
    "PerceiverForMultimodalAutoencoding": ("PerceiverIOForMultimodalAutoencoding", _multimodal_autoencoding_config),
    "PerceiverForOpticalFlow": ("PerceiverIOForOpticalFlow", _optical_flow_config),
}
ARCHITECTURES.update(
    {
        "PerceiverForMaskedLM": ("PerceiverIOForMaskedLM", _text_config("masked_lm")),
        "PerceiverForSequenceClassification": ("PerceiverIOForSequenceClassification", _text_config("classification")),
    }
)

# Ordered renames, applied one after the other to every transformers parameter name.
_LAYER_RENAMES = [
    (r"\.attention\.self\.layernorm1\.", ".attention.query_norm."),
    (r"\.attention\.self\.layernorm2\.", ".attention.kv_norm."),
    (r"\.attention\.self\.(query|key|value)\.", r".attention.\1."),
    (r"\.attention\.output\.dense\.", ".attention.output."),
    (r"\.layernorm\.", ".mlp_norm."),
    (r"\.mlp\.dense1\.", ".mlp.fc1."),
    (r"\.mlp\.dense2\.", ".mlp.fc2."),
]
STATE_DICT_RENAMES: list[tuple[str, str]] = [
    (r"^perceiver\.embeddings\.latents$", "perceiver.encoder.latents"),
    (r"^perceiver\.encoder\.self_attends\.", "perceiver.encoder.self_attention_layers."),
    (r"^perceiver\.input_preprocessor\.convnet_1x1\.", "perceiver.input_adapter.conv1x1."),
    (r"^perceiver\.input_preprocessor\.convnet\.", "perceiver.input_adapter.conv_stem."),
    (
        r"^perceiver\.input_preprocessor\.position_embeddings\.position_embeddings$",
        "perceiver.input_adapter.position_encoding.position_embeddings",
    ),
    (r"^perceiver\.input_preprocessor\.positions_projection\.", "perceiver.input_adapter.position_projection."),
    (r"^perceiver\.input_preprocessor\.conv_after_patches\.", "perceiver.input_adapter.patch_projection."),
    (r"^perceiver\.decoder\.decoder\.output_position_encodings\.position_embeddings$", "decoder.queries.queries"),
    (r"^perceiver\.decoder\.decoder\.decoding_cross_attention\.", "decoder.cross_attention."),
    (r"^perceiver\.decoder\.decoder\.final_layer\.", "decoder.output_projection."),
    # Multimodal autoencoding: per-modality paddings, mask tokens, label query and output adapters.
    (r"^perceiver\.input_preprocessor\.padding\.(\w+)$", r"perceiver.input_adapter.padding.\1.position_embeddings"),
    (r"^perceiver\.input_preprocessor\.mask\.(\w+)$", r"perceiver.input_adapter.mask_tokens.\1.position_embeddings"),
    (r"^perceiver\.decoder\.padding\.(\w+)$", r"decoder.queries.padding.\1.position_embeddings"),
    (
        r"^perceiver\.decoder\.modalities\.(\w+)\.decoder\.output_position_encodings\.position_embeddings$",
        r"decoder.queries.modalities.\1.queries",
    ),
    (r"^perceiver\.output_postprocessor\.modalities\.(\w+)\.classifier\.", r"output_adapters.\1.linear."),
    # Text: byte embeddings and positions; the masked-LM decoder is not wrapped in a classification decoder.
    (r"^perceiver\.input_preprocessor\.embeddings\.", "perceiver.input_adapter.embeddings."),
    (r"^perceiver\.input_preprocessor\.position_embeddings\.weight$", "perceiver.input_adapter.position_encoding.position_embeddings"),
    (r"^perceiver\.decoder\.output_position_encodings\.position_embeddings$", "decoder.queries.queries"),
    (r"^perceiver\.decoder\.decoding_cross_attention\.", "decoder.cross_attention."),
    (r"^embedding_decoder\.bias$", "output_adapter.bias"),
    *_LAYER_RENAMES,
]


def is_transformers_config(config_dict: dict[str, Any]) -> bool:
    return config_dict.get("model_type") == "perceiver"


def source_architecture(config_dict: dict[str, Any]) -> str:
    architectures = config_dict.get("architectures") or []
    for name in architectures:
        if name in ARCHITECTURES:
            return name
    raise ValueError(
        f"Cannot convert a transformers Perceiver checkpoint with architectures {architectures}: perceiver_hf "
        f"converts {sorted(ARCHITECTURES)}."
    )


def convert_config_dict(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the `PerceiverIOConfig` equivalent to a transformers `PerceiverConfig` dict."""
    head, convert = ARCHITECTURES[source_architecture(config_dict)]
    return {**convert(config_dict), "architectures": [head]}


def convert_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename transformers' Perceiver parameters to perceiver_hf's."""
    converted = {}
    for name, tensor in state_dict.items():
        for pattern, replacement in STATE_DICT_RENAMES:
            name = re.sub(pattern, replacement, name)
        converted[name] = tensor
    return converted


def _resolve(source: str | Path, filename: str, hub_kwargs: dict[str, Any]) -> str | None:
    from transformers.utils import cached_file

    return cached_file(
        str(source), filename, _raise_exceptions_for_missing_entries=False, **hub_kwargs
    )


def read_config_dict(source: str | Path, hub_kwargs: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The raw `config.json` of a folder or Hub repository, or `None` when it has none."""
    path = _resolve(source, "config.json", hub_kwargs or {})
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_state_dict(source: str | Path, hub_kwargs: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Weights of a folder or Hub repository: safetensors (single or sharded) or a PyTorch pickle loaded with
    `weights_only=True`, so that a checkpoint cannot run code."""
    hub_kwargs = hub_kwargs or {}
    single = _resolve(source, "model.safetensors", hub_kwargs)
    if single is not None:
        return load_file(single)
    index = _resolve(source, "model.safetensors.index.json", hub_kwargs)
    if index is not None:
        with open(index, encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle)["weight_map"].values()))
        state_dict = {}
        for shard in shards:
            state_dict.update(load_file(_resolve(source, shard, hub_kwargs)))
        return state_dict
    pickled = _resolve(source, "pytorch_model.bin", hub_kwargs)
    if pickled is not None:
        return torch.load(pickled, map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"No weights found in {source}: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin."
    )


def write_converted_checkpoint(
    source: str | Path,
    output_dir: str | Path,
    config_dict: dict[str, Any],
    hub_kwargs: dict[str, Any] | None = None,
) -> PerceiverIOConfig:
    """Write `config.json` and `model.safetensors` of the perceiver_hf equivalent of a transformers checkpoint.

    Loading that folder (as `from_pretrained` does) checks that every weight found its parameter.
    """
    config = PerceiverIOConfig(**convert_config_dict(config_dict))
    save_config_and_weights(config, convert_state_dict(load_state_dict(source, hub_kwargs)), output_dir)
    return config


def save_config_and_weights(config, state_dict: dict[str, torch.Tensor], output_dir: str | Path) -> None:
    """`config.json` and `model.safetensors` of a converted checkpoint."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(output_dir)
    tensors = {name: tensor.contiguous() for name, tensor in state_dict.items()}
    save_file(tensors, str(output_dir / "model.safetensors"), metadata={"format": "pt"})


def transformers_source_config(source: str | Path | None, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The config dict of `source` if it is a transformers Perceiver checkpoint, else `None`."""
    return source_config_if(source, kwargs, is_transformers_config)


def source_config_if(
    source: str | Path | None, kwargs: dict[str, Any], accepts: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The config dict of `source` (a folder or Hub id; `kwargs` of `from_pretrained`) if `accepts` it, else `None`."""
    if source is None:
        return None
    hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
    try:
        config_dict = read_config_dict(source, hub_kwargs)
    except (OSError, ValueError):
        return None  # let the regular loading path report what is wrong with `source`
    return config_dict if config_dict is not None and accepts(config_dict) else None
