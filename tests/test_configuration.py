"""PerceiverIOConfig: presets match DeepMind's models, every module rebuilds from the saved config."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import DEEPMIND_GELU, PerceiverIOConfig, PerceiverIOForImageClassification


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
    assert reloaded.input_adapter == config.input_adapter and reloaded.decoder == config.decoder
    shapes = {k: v.shape for k, v in PerceiverIOForImageClassification(config).state_dict().items()}
    assert shapes == {k: v.shape for k, v in PerceiverIOForImageClassification(reloaded).state_dict().items()}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_latents": 0}, "`num_latents` must be a positive integer"),
        ({"d_latents": 30, "num_self_attention_heads": 8}, r"d_latents \(30\) must be divisible by num_self_attention_heads \(8\)"),
        ({"cross_attention_shape_for_attention": "k"}, "must be 'q' or 'kv'"),
        ({"hidden_act": "swishy"}, "Unknown `hidden_act` 'swishy'"),
        ({"input_chunk_size": 0}, "`input_chunk_size` must be a positive integer or None"),
    ],
)
def test_invalid_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        PerceiverIOConfig(**overrides)


def test_unknown_components_are_refused():
    with pytest.raises(ValueError, match="Unknown input adapter type 'smell'"):
        PerceiverIOForImageClassification(PerceiverIOConfig(input_adapter={"type": "smell"}, decoder={"query": {"type": "trainable", "num_queries": 1, "num_channels": 8}}))
    with pytest.raises(ValueError, match="Unknown image classification variant 'patches'"):
        PerceiverIOConfig.for_image_classification("patches")
