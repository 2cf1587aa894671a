"""transformers' Perceiver checkpoints (`model_type "perceiver"`) load into perceiver_hf: a config translator and
a table of weight renames.

`PerceiverIOConfig` reads a transformers Perceiver `config.json` as the equivalent perceiver_hf config
(`translate_config`), and `from_pretrained` loads the weights through transformers' own loader with
`WEIGHT_RENAMES` as its `key_mapping` (the parameter layouts differ only by names), then checks that every
weight found its parameter. Folders, the Hub and the Hub cache (offline too) work as for any model.

The renames are not registered in transformers' conversion registry (`register_checkpoint_conversion_mapping`):
registered renames are reversed when a model is saved, which would write transformers' names into perceiver_hf
folders. A converted model saves in perceiver_hf's own names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import presets

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


def _core(source: dict[str, Any]) -> dict[str, Any]:
    core = {name: source[name] for name in _CORE_FIELDS if name in source}
    # transformers' config says layer_norm_eps=1e-12, but its Perceiver builds every nn.LayerNorm with the
    # PyTorch default 1e-5; ours honours the field, so it must say what transformers actually computes.
    core["layer_norm_eps"] = 1e-5
    return core


def _image_classification(variant: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def translate(source: dict[str, Any]) -> dict[str, Any]:
        if variant == "learned":
            adapter = presets.imagenet_adapter_config("learned", source.get("image_size", 224))
        elif variant == "fourier":  # transformers fixes the Fourier resolution at 224x224
            adapter = presets.imagenet_adapter_config("fourier")
        else:  # transformers' conv stem pads differently from DeepMind's; keep its outputs (see ConvStem)
            adapter = presets.imagenet_adapter_config("conv", conv_padding="transformers")
        core = _core(source)
        # transformers decodes all three ImageNet models with a query residual.
        decoder = presets.classification_decoder_config(core["d_latents"], use_query_residual=True)
        return {**core, "input_adapter": adapter, "query_decoder": decoder, "output_adapter": {"type": "classification"}}

    return translate


def _multimodal_autoencoding(source: dict[str, Any]) -> dict[str, Any]:
    output_shape = source.get("output_shape", [1, 16, 224, 224])
    image_size = source.get("image_size", 56)
    num_frames = source.get("num_frames", 16)
    components = presets.multimodal_autoencoding_components(
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
    image_positions = presets.fourier_position_encoding(32, (num_frames, image_size, image_size))
    components["input_adapter"]["modalities"]["image"]["position_encoding"] = image_positions
    image_queries = components["query_decoder"]["query"]["modalities"]["image"]
    image_queries.update(index_dims=list(output_shape[1:4]), position_encoding=image_positions)
    return {**_core(source), **components}


def _optical_flow(source: dict[str, Any]) -> dict[str, Any]:
    # transformers hard-codes the flow model's I/O: 64 patch channels and 64 Fourier bands at `train_size`.
    train_size = source.get("train_size", list(presets.OPTICAL_FLOW_TRAIN_SIZE))
    adapter = presets.flow_adapter_config(train_size)
    return {
        **_core(source),
        "input_adapter": adapter,
        "query_decoder": presets.flow_decoder_config(adapter),
        "output_adapter": presets.flow_output_config(train_size),
    }


def _text(task: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def translate(source: dict[str, Any]) -> dict[str, Any]:
        max_positions = source.get("max_position_embeddings", 2048)
        adapter = presets.text_adapter_config(source.get("vocab_size", presets.BYTE_VOCAB_SIZE), max_positions)
        if task == "masked_lm":
            # transformers hard-codes this decoder (8 heads, qk 8 * 32, values of d_model channels) and drops the
            # query mask, so padded positions keep transformers' logits.
            decoder = presets.masked_lm_decoder_config(
                source.get("d_model", 768), max_positions, num_heads=8, qk_channels=256, mask_padded_queries=False
            )
            output = {"type": "tied_embeddings"}
        else:
            decoder = presets.classification_decoder_config(source.get("d_latents", 1280), use_query_residual=True)
            output = {"type": "classification"}
        return {**_core(source), "input_adapter": adapter, "query_decoder": decoder, "output_adapter": output}

    return translate


# transformers architecture -> (our head class name, config translator).
ARCHITECTURES: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "PerceiverForImageClassificationLearned": ("PerceiverIOForImageClassification", _image_classification("learned")),
    "PerceiverForImageClassificationFourier": ("PerceiverIOForImageClassification", _image_classification("fourier")),
    "PerceiverForImageClassificationConvProcessing": ("PerceiverIOForImageClassification", _image_classification("conv")),
    "PerceiverForMultimodalAutoencoding": ("PerceiverIOForMultimodalAutoencoding", _multimodal_autoencoding),
    "PerceiverForOpticalFlow": ("PerceiverIOForOpticalFlow", _optical_flow),
    "PerceiverForMaskedLM": ("PerceiverIOForMaskedLM", _text("masked_lm")),
    "PerceiverForSequenceClassification": ("PerceiverIOForSequenceClassification", _text("classification")),
}

_LAYER_RENAMES = {
    r"\.attention\.self\.layernorm1\.": ".attention.query_norm.",
    r"\.attention\.self\.layernorm2\.": ".attention.kv_norm.",
    r"\.attention\.self\.(query|key|value)\.": r".attention.\1.",
    r"\.attention\.output\.dense\.": ".attention.output.",
    r"\.layernorm\.": ".mlp_norm.",
    r"\.mlp\.dense1\.": ".mlp.fc1.",
    r"\.mlp\.dense2\.": ".mlp.fc2.",
}
# transformers' parameter names -> ours, applied in order (transformers' `key_mapping` of `from_pretrained`).
WEIGHT_RENAMES: dict[str, str] = {
    r"^perceiver\.embeddings\.latents$": "perceiver.encoder.latents",
    r"^perceiver\.encoder\.self_attends\.": "perceiver.encoder.self_attention_layers.",
    r"^perceiver\.input_preprocessor\.convnet_1x1\.": "perceiver.input_adapter.conv1x1.",
    r"^perceiver\.input_preprocessor\.convnet\.": "perceiver.input_adapter.conv_stem.",
    r"^perceiver\.input_preprocessor\.position_embeddings\.position_embeddings$": (
        "perceiver.input_adapter.position_encoding.position_embeddings"
    ),
    r"^perceiver\.input_preprocessor\.positions_projection\.": "perceiver.input_adapter.position_projection.",
    r"^perceiver\.input_preprocessor\.conv_after_patches\.": "perceiver.input_adapter.patch_projection.",
    r"^perceiver\.decoder\.decoder\.output_position_encodings\.position_embeddings$": "decoder.queries.queries",
    r"^perceiver\.decoder\.decoder\.decoding_cross_attention\.": "decoder.cross_attention.",
    r"^perceiver\.decoder\.decoder\.final_layer\.": "decoder.output_projection.",
    # Multimodal autoencoding: per-modality paddings, mask tokens, label query and output adapters.
    r"^perceiver\.input_preprocessor\.padding\.(\w+)$": r"perceiver.input_adapter.padding.\1.position_embeddings",
    r"^perceiver\.input_preprocessor\.mask\.(\w+)$": r"perceiver.input_adapter.mask_tokens.\1.position_embeddings",
    r"^perceiver\.decoder\.padding\.(\w+)$": r"decoder.queries.padding.\1.position_embeddings",
    r"^perceiver\.decoder\.modalities\.(\w+)\.decoder\.output_position_encodings\.position_embeddings$": (
        r"decoder.queries.modalities.\1.queries"
    ),
    r"^perceiver\.output_postprocessor\.modalities\.(\w+)\.classifier\.": r"output_adapters.\1.linear.",
    # Text: byte embeddings and positions; the masked-LM decoder is not wrapped in a classification decoder.
    r"^perceiver\.input_preprocessor\.embeddings\.": "perceiver.input_adapter.embeddings.",
    r"^perceiver\.input_preprocessor\.position_embeddings\.weight$": (
        "perceiver.input_adapter.position_encoding.position_embeddings"
    ),
    r"^perceiver\.decoder\.output_position_encodings\.position_embeddings$": "decoder.queries.queries",
    r"^perceiver\.decoder\.decoding_cross_attention\.": "decoder.cross_attention.",
    r"^embedding_decoder\.bias$": "output_adapter.bias",
    **_LAYER_RENAMES,
}


def is_transformers_config(config_dict: dict[str, Any]) -> bool:
    return config_dict.get("model_type") == "perceiver"


def source_architecture(config_dict: dict[str, Any]) -> str:
    """The transformers head class a Perceiver config was saved by (one perceiver_hf can load)."""
    architectures = config_dict.get("architectures") or []
    for name in architectures:
        if name in ARCHITECTURES:
            return name
    raise ValueError(
        f"Cannot convert a transformers Perceiver checkpoint with architectures {architectures}: perceiver_hf "
        f"converts {sorted(ARCHITECTURES)}."
    )


def translate_config(config_dict: dict[str, Any]) -> dict[str, Any]:
    """The perceiver_hf config dict equivalent to a transformers `PerceiverConfig` dict."""
    head, translate = ARCHITECTURES[source_architecture(config_dict)]
    return {**translate(config_dict), "model_type": "perceiver_io", "architectures": [head]}


def read_config_dict(source: str | Path, hub_kwargs: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The raw `config.json` of a folder or Hub repository, or `None` when it has none.

    Raises transformers' own `OSError` when `source` is neither a folder nor a repository that can be reached
    (or found in the Hub cache): that is not a folder without a config."""
    from transformers.utils import cached_file

    # transformers' look-up returns None for a missing config.json and raises for an unreachable Hub, where
    # `_raise_exceptions_for_missing_entries=False` would return None for both.
    path = cached_file(str(source), "config.json", **(hub_kwargs or {}))
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def transformers_source_config(source, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The config dict of `source` if it is a transformers Perceiver checkpoint, else `None`.

    An unreachable `source` raises here, with the error transformers' loader would give: its first step is this
    same look-up, and retrying it would double the Hub client's retries before the user sees the error."""
    if source is None:
        return None
    try:
        config_dict = read_config_dict(source, {k: kwargs[k] for k in HUB_KWARGS if k in kwargs})
    except ValueError:
        return None  # a malformed config.json: the regular loading path reports it
    return config_dict if config_dict is not None and is_transformers_config(config_dict) else None


def load_transformers_checkpoint(cls, load: Callable, source, source_config: dict[str, Any], *model_args, **kwargs):
    """`cls.from_pretrained(source)` for a transformers Perceiver checkpoint: `load` (transformers' own
    `from_pretrained`) reads the translated config and the renamed weights; nothing may be left over."""
    head = ARCHITECTURES[source_architecture(source_config)][0]
    # Heads that start from a masked LM (`perceiver_hf.heads.from_masked_lm`) name it in `masked_lm_replaces`.
    starts_from = "PerceiverIOForMaskedLM" if getattr(cls, "masked_lm_replaces", ()) else None
    if cls.__name__ not in (head, "PerceiverIOModel") and head != starts_from:
        raise ValueError(
            f"{source} is a transformers {source_architecture(source_config)} checkpoint, which loads into {head} "
            f"(or PerceiverIOModel), not {cls.__name__}."
        )
    want_info = kwargs.pop("output_loading_info", False)
    model, info = load(source, *model_args, key_mapping=WEIGHT_RENAMES, output_loading_info=True, **kwargs)
    # A head checkpoint legitimately has weights the bare encoder (PerceiverIOModel) does not use.
    unexpected = info["unexpected_keys"] if cls.__name__ == head else []
    # Shapes may differ only where the caller asked for it (e.g. a new classifier with another num_labels).
    mismatched = [] if kwargs.get("ignore_mismatched_sizes") else info.get("mismatched_keys")
    if info["missing_keys"] or unexpected or mismatched:
        raise ValueError(
            f"Converting {source} into {cls.__name__} left parameters without weights "
            f"{sorted(info['missing_keys'])[:5]}, weights without parameters {sorted(unexpected)[:5]}, "
            f"mismatched shapes {list(mismatched or [])[:5]}."
        )
    # transformers keeps the renames to save in the loaded layout; this model saves in perceiver_hf's.
    model._weight_conversions = []
    model.config.name_or_path = str(source)
    return (model, info) if want_info else model
