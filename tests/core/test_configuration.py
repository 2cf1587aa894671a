"""PerceiverIOConfig: presets match DeepMind's models, every module rebuilds from the saved config, the config
follows transformers' conventions (no `decoder` sub-config, a top-level `vocab_size`), and old folders load."""

from __future__ import annotations

import json

import pytest
import torch

from perceiver_hf import DEEPMIND_GELU, PerceiverIOConfig, PerceiverIOForImageClassification, PerceiverIOForMaskedLM
from perceiver_hf.presets import text_adapter_config


@pytest.mark.parametrize("variant, parameters", [("learned", 62_255_848), ("fourier", 48_440_627), ("conv", 48_646_522)])
def test_imagenet_presets_have_deepmind_parameter_counts(variant, parameters):
    config = PerceiverIOConfig.for_image_classification(variant)
    assert config.hidden_act == DEEPMIND_GELU
    with torch.device("meta"):
        model = PerceiverIOForImageClassification(config)
    assert sum(p.numel() for p in model.parameters()) == parameters  # DeepMind's official checkpoints


def test_saved_config_rebuilds_the_same_model(tmp_path):
    config = PerceiverIOConfig.for_image_classification("conv", image_size=32, num_labels=4, num_latents=4, d_latents=16, num_blocks=2)
    config.save_pretrained(tmp_path)
    reloaded = PerceiverIOConfig.from_pretrained(tmp_path)
    assert reloaded.input_adapter == config.input_adapter and reloaded.query_decoder == config.query_decoder
    shapes = {k: v.shape for k, v in PerceiverIOForImageClassification(config).state_dict().items()}
    assert shapes == {k: v.shape for k, v in PerceiverIOForImageClassification(reloaded).state_dict().items()}


@pytest.mark.parametrize(
    "preset",
    [
        lambda: PerceiverIOConfig.for_masked_lm(),
        lambda: PerceiverIOConfig.for_sequence_classification(),
        lambda: PerceiverIOConfig.for_image_classification("fourier"),
        lambda: PerceiverIOConfig.for_optical_flow(),
        lambda: PerceiverIOConfig.for_multimodal_autoencoding(),
    ],
)
def test_the_text_config_is_the_config_itself(preset):
    # transformers takes an attribute called `decoder` for a text sub-config (Trainer with a tokenizer reads its
    # eos_token_id): the query decoder must not be one.
    config = preset()
    assert config.get_text_config() is config
    assert config.get_text_config(decoder=True) is config
    assert not hasattr(config, "decoder")


def test_folders_saved_with_the_former_decoder_name_load_and_save_the_new_one(tmp_path):
    config = PerceiverIOConfig.for_sequence_classification(num_labels=3, d_model=16, d_latents=32)
    saved = config.to_dict()
    saved["decoder"] = saved.pop("query_decoder")
    (tmp_path / "config.json").write_text(json.dumps(saved))
    reloaded = PerceiverIOConfig.from_pretrained(tmp_path)
    assert reloaded.query_decoder == config.query_decoder and not hasattr(reloaded, "decoder")
    reloaded.save_pretrained(tmp_path / "again")
    written = json.loads((tmp_path / "again" / "config.json").read_text())
    assert "decoder" not in written and written["query_decoder"] == config.query_decoder
    assert PerceiverIOConfig(decoder=config.query_decoder).query_decoder == config.query_decoder
    with pytest.raises(ValueError, match="Give the query decoder once"):
        PerceiverIOConfig(decoder=config.query_decoder, query_decoder={"query": {"type": "inputs", "num_channels": 4}})


def test_vocab_size_is_the_text_adapters():
    config = PerceiverIOConfig.for_masked_lm(vocab_size=300, d_model=16, d_latents=32, qk_channels=16, num_self_attends_per_block=1)
    assert config.vocab_size == 300 == config.input_adapter["vocab_size"]
    direct = PerceiverIOConfig(vocab_size=280, input_adapter={"type": "text", "max_position_embeddings": 16})
    assert direct.vocab_size == 280 == direct.input_adapter["vocab_size"]
    config.vocab_size = 310  # e.g. transformers' resize_token_embeddings
    assert config.input_adapter["vocab_size"] == 310
    assert PerceiverIOConfig.from_dict(config.to_dict()).vocab_size == 310
    assert PerceiverIOConfig.for_image_classification("fourier").vocab_size is None
    assert PerceiverIOConfig().vocab_size is None


def test_vocab_size_builds_the_embeddings_and_the_tied_logits():
    config = PerceiverIOConfig.for_masked_lm(
        vocab_size=270, max_position_embeddings=8, d_model=16, d_latents=32, qk_channels=16,
        num_self_attends_per_block=1, decoder_qk_channels=16,
    )
    model = PerceiverIOForMaskedLM(config)
    assert model.perceiver.input_adapter.embeddings.num_embeddings == 270 == model.output_adapter.bias.shape[0]
    assert model(input_ids=torch.randint(0, 270, (1, 5))).logits.shape == (1, 5, 270)


def test_vocab_size_is_not_silently_ignored():
    with pytest.raises(ValueError, match="vocab_size=300 applies to text models, but this config's input adapter is 'array'"):
        PerceiverIOConfig(vocab_size=300)
    with pytest.raises(ValueError, match=r"vocab_size=300 but input_adapter\['vocab_size'\]=262"):
        PerceiverIOConfig(vocab_size=300, input_adapter=text_adapter_config(262))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_latents": 0}, "`num_latents` must be a positive integer"),
        ({"d_latents": 30, "num_self_attention_heads": 8}, r"d_latents \(30\) must be divisible by num_self_attention_heads \(8\)"),
        ({"cross_attention_shape_for_attention": "k"}, "must be 'q' or 'kv'"),
        ({"hidden_act": "swishy"}, "Unknown `hidden_act` 'swishy'"),
        ({"input_chunk_size": 0}, "`input_chunk_size` must be a positive integer or None"),
        ({"query_decoder": [1, 2]}, "`query_decoder` must be a dict"),
        ({"attention_probs_dropout_prob": 1.5}, r"`attention_probs_dropout_prob` is a probability in \[0, 1\), got 1.5"),
        ({"qk_channels": 12, "num_self_attention_heads": 1, "num_cross_attention_heads": 8}, r"`qk_channels` \(12\) must be divisible by `num_cross_attention_heads` \(8\)"),
        ({"layer_norm_eps": 0.0}, "`layer_norm_eps` must be a positive number"),
        ({"d_model": True}, "`d_model` must be a positive integer, got True"),
        ({"input_adapter": {"type": "text", "vocab_size": 262, "max_position_embeddings": 0}},
         r"`input_adapter\['max_position_embeddings'\]` must be a positive integer, got 0"),
        ({"query_decoder": {"query": {"type": "trainable", "num_queries": -1, "num_channels": 8}}},
         r"`query_decoder\['query'\]\['num_queries'\]` must be a positive integer, got -1"),
    ],
)
def test_invalid_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        PerceiverIOConfig(**overrides)


def test_unknown_components_are_refused():
    decoder = {"query": {"type": "trainable", "num_queries": 1, "num_channels": 8}}
    with pytest.raises(ValueError, match="Unknown input adapter type 'smell'"):
        PerceiverIOForImageClassification(PerceiverIOConfig(input_adapter={"type": "smell"}, query_decoder=decoder))
    with pytest.raises(ValueError, match="Unknown output adapter type 'sound'"):
        PerceiverIOForImageClassification(PerceiverIOConfig(query_decoder=decoder, output_adapter={"type": "sound"}, num_labels=2))
    with pytest.raises(ValueError, match=r"Unknown output query type 'smells'; known types: \['fourier', "):
        PerceiverIOForImageClassification(PerceiverIOConfig(query_decoder={"query": {"type": "smells"}}, num_labels=2))
    with pytest.raises(ValueError, match="Unknown image classification variant 'patches'"):
        PerceiverIOConfig.for_image_classification("patches")


def test_a_classifier_needs_a_label():
    decoder = {"query": {"type": "trainable", "num_queries": 1, "num_channels": 8}}
    config = PerceiverIOConfig(query_decoder=decoder, output_adapter={"type": "classification"})
    config.num_labels = 0
    with pytest.raises(ValueError, match="A classifier needs at least one label, got num_labels=0"):
        PerceiverIOForImageClassification(config)
