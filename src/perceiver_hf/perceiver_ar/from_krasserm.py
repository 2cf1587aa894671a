"""krasserm/perceiver-io Perceiver AR checkpoints -> perceiver_hf: config and weights.

Such a folder (what that library's `save_pretrained` writes, e.g. the Hub's `krasserm/perceiver-ar-clm-base`) has a
`config.json` with `model_type "perceiver-ar-causal-language-model"` and the backend's arguments in `model_config`,
and a `pytorch_model.bin` (read with `weights_only=True`) whose names start with `backend_model.`. Used by
`from_pretrained` (which converts on the fly, also through the Auto classes) and by `conversion/convert_krasserm.py`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import PreTrainedConfig
from transformers.utils import cached_file

from ..from_transformers import HUB_KWARGS, read_config_dict
from ..rotary import inverse_frequencies
from .configuration import PerceiverARConfig

KRASSERM_MODEL_TYPE = "perceiver-ar-causal-language-model"

# krasserm's backend arguments -> PerceiverARConfig fields.
CONFIG_FIELDS = {
    "vocab_size": "vocab_size",
    "max_seq_len": "max_position_embeddings",
    "max_latents": "num_latents",
    "num_channels": "hidden_size",
    "num_heads": "num_attention_heads",
    "num_self_attention_layers": "num_hidden_layers",
    "num_self_attention_rotary_layers": "num_rotary_layers",
    "cross_attention_widening_factor": "cross_attention_widening_factor",
    "self_attention_widening_factor": "self_attention_widening_factor",
    "cross_attention_dropout": "prefix_dropout",
    "post_attention_dropout": "attention_dropout",
    "residual_dropout": "residual_dropout",
    "abs_pos_emb": "use_absolute_positions",
    "output_norm": "final_layer_norm",
    "output_bias": "output_bias",
    "init_scale": "initializer_range",
}
TOKEN_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id", "tokenizer_class")

_LAYER_PARTS = [
    (r"0\.module\.(?:q_norm|norm)\.", "attention.query_norm."),
    (r"0\.module\.kv_norm\.", "attention.kv_norm."),
    (r"0\.module\.attention\.q_proj\.", "attention.query."),
    (r"0\.module\.attention\.k_proj\.", "attention.key."),
    (r"0\.module\.attention\.v_proj\.", "attention.value."),
    (r"0\.module\.attention\.o_proj\.", "attention.output."),
    (r"1\.module\.0\.", "mlp_norm."),
    (r"1\.module\.1\.", "mlp.fc1."),
    (r"1\.module\.3\.", "mlp.fc2."),
]
STATE_DICT_RENAMES = [
    (r"_checkpoint_wrapped_module\.", ""),
    (r"^backend_model\.input_adapter\.txt_embedding\.", "perceiver_ar.token_embeddings."),
    (r"^backend_model\.input_adapter\.pos_embedding\.", "perceiver_ar.position_embeddings."),
    (r"^backend_model\.out_norm\.", "perceiver_ar.final_norm."),
    (r"^backend_model\.output_adapter\.bias$", "lm_head.bias"),
    (r"^backend_model\.cross_attention\.", "perceiver_ar.cross_attention."),
    (r"^backend_model\.self_attention\.(\d+)\.", r"perceiver_ar.self_attention_layers.\1."),
    *[
        (rf"^(perceiver_ar\.(?:cross_attention|self_attention_layers\.\d+))\.{part}", rf"\1.{new}")
        for part, new in _LAYER_PARTS
    ],
]
_INVERSE_FREQUENCIES = "backend_model.input_adapter.frq_pos_encoding.inv_freq"


class KrassermPerceiverARConfig(PreTrainedConfig):
    """krasserm/perceiver-io's config, registered so that the Auto classes recognise its folders; loading one
    gives a `PerceiverARForCausalLM` with the converted `PerceiverARConfig`."""

    model_type = KRASSERM_MODEL_TYPE
    model_config: dict | None = None


def is_krasserm_config(config_dict: dict[str, Any]) -> bool:
    return config_dict.get("model_type") == KRASSERM_MODEL_TYPE


def convert_config_dict(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the `PerceiverARConfig` equivalent to a krasserm `config.json` dict."""
    backend = config_dict.get("model_config")
    if not isinstance(backend, dict):
        raise ValueError(
            "A krasserm/perceiver-io config.json needs the backend's arguments in `model_config`; this one has none."
        )
    converted = {ours: backend[theirs] for theirs, ours in CONFIG_FIELDS.items() if theirs in backend}
    converted.update({name: config_dict[name] for name in TOKEN_FIELDS if config_dict.get(name) is not None})
    return {**converted, "architectures": ["PerceiverARForCausalLM"]}


def convert_state_dict(state_dict: dict[str, torch.Tensor], config: PerceiverARConfig) -> dict[str, torch.Tensor]:
    """Rename krasserm's parameters to perceiver_hf's; its stored rotary frequencies must be the config's."""
    stored = state_dict.get(_INVERSE_FREQUENCIES)
    if stored is not None:
        expected = inverse_frequencies(config.rotated_channels_per_head)
        if stored.shape != expected.shape or not torch.allclose(stored.float(), expected):
            raise ValueError(
                f"The checkpoint's rotary frequencies {stored.tolist()} are not those its config implies "
                f"({expected.tolist()}); perceiver_hf computes them from the config."
            )
    converted = {}
    for name, tensor in state_dict.items():
        if name == _INVERSE_FREQUENCIES:
            continue
        for pattern, replacement in STATE_DICT_RENAMES:
            name = re.sub(pattern, replacement, name)
        converted[name] = tensor
    return converted


def write_converted_checkpoint(
    source: str | Path, output_dir: str | Path, config_dict: dict[str, Any], hub_kwargs: dict[str, Any] | None = None
) -> PerceiverARConfig:
    """Write `config.json` and `model.safetensors` of the perceiver_hf equivalent of a krasserm checkpoint."""
    config = PerceiverARConfig(**convert_config_dict(config_dict))
    state_dict = convert_state_dict(load_krasserm_weights(source, hub_kwargs or {}), config)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(output_dir)
    tensors = {name: tensor.contiguous() for name, tensor in state_dict.items()}
    save_file(tensors, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    return config


def krasserm_source_config(source: str | Path | None, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The config dict of `source` if it is a krasserm Perceiver AR checkpoint, else `None`."""
    if source is None:
        return None
    try:
        config_dict = read_config_dict(source, {k: kwargs[k] for k in HUB_KWARGS if k in kwargs})
    except ValueError:
        return None  # a malformed config.json: the regular loading path reports it (an OSError is raised as is)
    return config_dict if config_dict is not None and is_krasserm_config(config_dict) else None


def load_krasserm_weights(source: str | Path, hub_kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The `pytorch_model.bin` of a krasserm folder or Hub id, read with `weights_only=True` (no code runs)."""
    path = cached_file(str(source), "pytorch_model.bin", _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if path is None:
        raise FileNotFoundError(f"{source} has no pytorch_model.bin, where krasserm/perceiver-io keeps its weights.")
    return torch.load(path, map_location="cpu", weights_only=True)


def from_pretrained_krasserm(cls, source, config_dict: dict[str, Any], *model_args, **kwargs):
    """`cls.from_pretrained` on a krasserm folder: convert into a temporary folder and load that, checking that
    every weight found its parameter."""
    from .modeling import PerceiverARPreTrainedModel

    if isinstance(kwargs.get("config"), KrassermPerceiverARConfig):
        kwargs.pop("config")  # what the Auto classes pass: the converted config replaces it
    hub_kwargs = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
    want_info = kwargs.pop("output_loading_info", False)
    with tempfile.TemporaryDirectory(prefix="perceiver_hf_") as folder:
        write_converted_checkpoint(source, folder, config_dict, hub_kwargs)
        loader = super(PerceiverARPreTrainedModel, cls).from_pretrained
        model, info = loader(folder, *model_args, output_loading_info=True, **kwargs)
    unexpected = info["unexpected_keys"] if cls.__name__ == "PerceiverARForCausalLM" else []
    if info["missing_keys"] or unexpected or info.get("mismatched_keys"):
        raise ValueError(
            f"Converting {source} into {cls.__name__} left parameters without weights "
            f"{sorted(info['missing_keys'])[:5]}, weights without parameters {sorted(unexpected)[:5]}, "
            f"mismatched shapes {list(info.get('mismatched_keys') or [])[:5]}."
        )
    model.config.name_or_path = str(source)
    return (model, info) if want_info else model


class KrassermPerceiverARLoader:
    """Stands for `PerceiverARForCausalLM` in `AutoModelForCausalLM`'s table for krasserm configs."""

    config_class = KrassermPerceiverARConfig

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        from .causal_lm import PerceiverARForCausalLM

        kwargs.pop("config", None)
        return PerceiverARForCausalLM.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
