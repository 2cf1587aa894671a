"""DeepMind's byte-level masked language model (`language_perceiver_io_bytes.pickle`).

The colab embeds UTF-8 bytes (+6 special ids, vocabulary 262) with `hk.Embed`, adds a trainable position
encoding, encodes with a `PerceiverEncoder`, decodes one trainable query per position with a `BasicDecoder`
(no final projection, no query residual) and reads logits off the byte embeddings (`EmbeddingDecoder`). It
passes the input mask as the decoder's query mask too, so the converted config keeps `mask_padded_queries`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import PerceiverTokenizer

from perceiver_hf import PerceiverIOConfig
from perceiver_hf.presets import BYTE_VOCAB_SIZE, masked_lm_decoder_config, text_adapter_config

from ..haiku_checkpoint import CheckpointError, HaikuParams
from . import DeepMindTask, core_config

D_MODEL, D_LATENTS, MAX_SEQ_LEN = 768, 1280, 2048


def official_config() -> dict[str, Any]:
    """The colab's constructor arguments, in the layout of the fixture's `config.json`."""
    return {
        "D_MODEL": D_MODEL,
        "D_LATENTS": D_LATENTS,
        "MAX_SEQ_LEN": MAX_SEQ_LEN,
        "vocab_size": 262,
        "encoder_config": {
            "num_self_attends_per_block": 26,
            "num_blocks": 1,
            "z_index_dim": 256,
            "num_z_channels": D_LATENTS,
            "num_self_attend_heads": 8,
            "num_cross_attend_heads": 8,
            "qk_channels": 8 * 32,
            "v_channels": D_LATENTS,
            "use_query_residual": True,
            "cross_attend_widening_factor": 1,
            "self_attend_widening_factor": 1,
        },
        "decoder_config": {
            "output_num_channels": D_LATENTS,
            "position_encoding_type": "trainable",
            "output_index_dims": MAX_SEQ_LEN,
            "num_z_channels": D_LATENTS,
            "qk_channels": 8 * 32,
            "v_channels": D_MODEL,
            "num_heads": 8,
            "final_project": False,
            "use_query_residual": False,
            "trainable_position_encoding_kwargs": {"num_channels": D_MODEL},
        },
    }


def _check_decoder(decoder: dict[str, Any], d_model: int, max_seq_len: int) -> None:
    """The converted head ties logits to the embeddings, which fixes what DeepMind's decoder may be."""
    expected = {
        "position_encoding_type": "trainable",
        "final_project": False,
        "use_query_residual": False,
        "output_index_dims": max_seq_len,
    }
    for key, value in expected.items():
        if decoder.get(key, value) != value:
            raise CheckpointError(
                f"The language model's decoder must have {key}={value!r} (its output feeds the tied byte embeddings), "
                f"but the DeepMind config says {decoder[key]!r}."
            )
    query_channels = decoder.get("trainable_position_encoding_kwargs", {}).get("num_channels", d_model)
    if query_channels != d_model:
        raise CheckpointError(f"Decoder queries must have D_MODEL={d_model} channels, the config says {query_channels}.")


def build_config(deepmind: dict[str, Any]) -> PerceiverIOConfig:
    d_model, max_seq_len = deepmind["D_MODEL"], deepmind["MAX_SEQ_LEN"]
    decoder = deepmind["decoder_config"]
    _check_decoder(decoder, d_model, max_seq_len)
    decoder_config = masked_lm_decoder_config(
        d_model,
        max_seq_len,
        num_heads=decoder.get("num_heads", 1),
        qk_channels=decoder.get("qk_channels"),
        mask_padded_queries=True,
    )
    # DeepMind's values default to the query-key width, which defaults to the latents' ("kv" attention shape).
    decoder_config["v_channels"] = decoder.get("v_channels") or decoder.get("qk_channels") or decoder["num_z_channels"]
    return PerceiverIOConfig(
        **core_config(deepmind["encoder_config"]),
        d_model=d_model,
        input_adapter=text_adapter_config(deepmind.get("vocab_size", BYTE_VOCAB_SIZE), max_seq_len),
        query_decoder=decoder_config,
        output_adapter={"type": "tied_embeddings"},
        architectures=["PerceiverIOForMaskedLM"],
    )


def convert(params: HaikuParams, deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, torch.Tensor]:
    encoder = deepmind["encoder_config"]
    weights = params.encoder("perceiver_encoder", "perceiver.encoder", encoder["num_self_attends_per_block"])
    weights["perceiver.input_adapter.embeddings.weight"] = params.take("embed", "embeddings")
    weights["perceiver.input_adapter.position_encoding.position_embeddings"] = params.take(
        "trainable_position_encoding", "pos_embs"
    )
    weights["decoder.queries.queries"] = params.take("basic_decoder/~/trainable_position_encoding", "pos_embs")
    weights.update(params.attention_layer("basic_decoder/cross_attention", "decoder.cross_attention", True))
    weights["output_adapter.bias"] = params.take("embedding_decoder", "bias")
    return weights


def write_processor(folder: Path, deepmind: dict[str, Any], config: PerceiverIOConfig) -> None:
    """transformers' byte tokenizer is DeepMind's `BytesTokenizer` (UTF-8 + 6, same special ids), plus the
    [CLS]/[SEP] it adds around each text."""
    PerceiverTokenizer(model_max_length=deepmind["MAX_SEQ_LEN"]).save_pretrained(folder)


# The card's usage example: DeepMind's colab sentence, or the longest shorter one the converted model takes.
EXAMPLE_SENTENCES = (
    "This is an incomplete sentence where some words are missing.",
    "Some words are missing.",
    "A word is missing.",
    "Missing.",
)


def card_values(deepmind: dict[str, Any], config: PerceiverIOConfig) -> dict[str, Any]:
    """The usage example's sentence and masked bytes, fitted to the converted model's positions.

    The last word (with its space and full stop) is masked byte by byte, as the colab masks " missing."."""
    max_length = config.input_adapter["max_position_embeddings"]
    fitting = [text for text in EXAMPLE_SENTENCES if len(text.encode()) + 2 <= max_length]  # + [CLS], [SEP]
    if not fitting:
        return {"example_text": None}
    text = fitting[0]
    cut = max(text.rfind(" "), 0)  # 0: a one-word sentence is masked whole
    prefix, masked = text[:cut], text[cut:]
    start = len(prefix.encode()) + 1  # after [CLS]
    return {
        "example_text": text,
        "example_prefix": prefix,
        "example_masked": masked,
        "example_mask_start": start,
        "example_mask_end": start + len(masked.encode()),
        "example_num_tokens": len(text.encode()) + 2,
    }


TASKS = [
    DeepMindTask(
        name="language",
        filename="language_perceiver_io_bytes.pickle",
        head="PerceiverIOForMaskedLM",
        official_config=official_config(),
        build_config=build_config,
        convert=convert,
        write_processor=write_processor,
        model_card="language-perceiver-io-bytes.md",
        summary="Byte-level masked language model (UTF-8 bytes, 2048 positions)",
        card_values=card_values,
    )
]
