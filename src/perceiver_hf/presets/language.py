"""DeepMind's byte-level language model (`language_perceiver_io_bytes`, transformers' `deepmind/language-perceiver`)
as a masked language model, its encoder with a classification query, and its encoder and per-position decoder with
a label per byte."""

from __future__ import annotations

from typing import Any

from .components import deepmind_core
from .image import classification_decoder_config

# The encoder of `language_perceiver_io_bytes` (201M parameters with the masked-LM decoder).
LANGUAGE_CORE = deepmind_core(
    num_latents=256, d_latents=1280, num_blocks=1, num_self_attends_per_block=26,
    num_self_attention_heads=8, num_cross_attention_heads=8, d_model=768, qk_channels=256,
)
BYTE_VOCAB_SIZE = 262  # 256 bytes + 6 special tokens (PerceiverTokenizer)


def text_adapter_config(vocab_size: int = BYTE_VOCAB_SIZE, max_position_embeddings: int = 2048) -> dict[str, Any]:
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


def _language_core(overrides: dict[str, Any]) -> dict[str, Any]:
    core = {**LANGUAGE_CORE, **overrides}
    core.setdefault("v_channels", core["d_latents"])  # DeepMind's value channels are the latent channels
    return core


def masked_lm(
    vocab_size: int = BYTE_VOCAB_SIZE,
    max_position_embeddings: int = 2048,
    decoder_num_heads: int = 8,
    decoder_qk_channels: int = 256,
    mask_padded_queries: bool = True,
    **overrides,
) -> dict[str, Any]:
    """The byte-level masked language model; `overrides` replace core fields."""
    core = _language_core(overrides)
    decoder = masked_lm_decoder_config(
        core["d_model"], max_position_embeddings, decoder_num_heads, decoder_qk_channels, mask_padded_queries
    )
    return {
        **core,
        "input_adapter": text_adapter_config(vocab_size, max_position_embeddings),
        "query_decoder": decoder,
        "output_adapter": {"type": "tied_embeddings"},
    }


def sequence_classification(
    num_labels: int = 2, vocab_size: int = BYTE_VOCAB_SIZE, max_position_embeddings: int = 2048, **overrides
) -> dict[str, Any]:
    """The language model's encoder with one learned query decoding `num_labels` logits (with a query residual,
    as transformers' `PerceiverForSequenceClassification`); `overrides` replace core fields."""
    core = _language_core(overrides)
    return {
        **core,
        "input_adapter": text_adapter_config(vocab_size, max_position_embeddings),
        "query_decoder": classification_decoder_config(core["d_latents"], use_query_residual=True),
        "output_adapter": {"type": "classification"},
        "num_labels": num_labels,
    }


def token_classification(
    num_labels: int | None = None,
    vocab_size: int = BYTE_VOCAB_SIZE,
    max_position_embeddings: int = 2048,
    decoder_num_heads: int = 8,
    decoder_qk_channels: int = 256,
    mask_padded_queries: bool = True,
    queries_add_inputs: bool = False,
    query_input_window: int = 0,
    class_weights=None,
    **overrides,
) -> dict[str, Any]:
    """The masked language model's encoder and per-position decoder, each position's decoded vector mapped to
    `num_labels` logits (one label per byte) by the output adapter instead of tied to the byte embeddings, so a
    masked LM's decoder carries over whole. `num_labels` defaults to as many as `id2label` names (else 2);
    `queries_add_inputs` adds each byte's input row (embedding + position) to its query, `query_input_window=w` a
    learned map of the rows around it too; `class_weights` weight the loss per label; `overrides` replace core
    fields."""
    if num_labels is None:
        num_labels = len(overrides["id2label"]) if overrides.get("id2label") else 2
    config = masked_lm(
        vocab_size, max_position_embeddings, decoder_num_heads, decoder_qk_channels, mask_padded_queries, **overrides
    )
    if queries_add_inputs or query_input_window:
        config["query_decoder"]["query"].update(add_inputs=True, input_window=int(query_input_window))
    output_adapter = {"type": "token_classification"}
    if class_weights is not None:
        output_adapter["class_weights"] = [float(weight) for weight in class_weights]
    return {**config, "output_adapter": output_adapter, "num_labels": num_labels}
