"""Drop-in parity with transformers' Perceiver image classifiers: same weights, same logits (<= 1e-4 relative).

Each test saves a transformers model with perturbed random weights, loads the folder with
`PerceiverIOForImageClassification.from_pretrained` (which converts config and weights on the fly) and
compares outputs in eager and SDPA attention, at small sizes and at the official ImageNet architecture.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    PerceiverForImageClassificationConvProcessing,
    PerceiverForImageClassificationFourier,
    PerceiverForImageClassificationLearned,
)

from perceiver_hf import PerceiverIOForImageClassification
from perceiver_hf.presets import IMAGENET_CORE, transformers_sizes
from tests.helpers import SMALL_CORE, assert_parity, run_module, save_transformers_model

VARIANTS = {
    "learned": PerceiverForImageClassificationLearned,
    "fourier": PerceiverForImageClassificationFourier,
    "conv": PerceiverForImageClassificationConvProcessing,
}
SMALL = dict(SMALL_CORE, d_model=16, num_cross_attention_heads=1, num_labels=7)
# transformers' deepmind/vision-perceiver-* checkpoints.
OFFICIAL = transformers_sizes(IMAGENET_CORE, d_model=512, num_labels=1000)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_small_models_match_transformers(variant, tmp_path):
    size = 16 if variant != "conv" else 32
    reference = save_transformers_model(VARIANTS[variant], tmp_path, image_size=size, **SMALL)
    pixel_values = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference(inputs=pixel_values, output_attentions=True, output_hidden_states=True)

    for implementation in ("eager", "sdpa"):
        model = PerceiverIOForImageClassification.from_pretrained(tmp_path, attn_implementation=implementation)
        with torch.no_grad():
            output = model(pixel_values=pixel_values, output_attentions=True, output_hidden_states=True)
        assert_parity(output.logits, expected.logits)
        # Drop-in: the same output fields, holding the same tensors.
        assert len(output.hidden_states) == len(expected.hidden_states)
        for ours, theirs in zip(output.hidden_states, expected.hidden_states):
            assert_parity(ours, theirs)
        assert len(output.attentions) == len(expected.attentions)
        assert len(output.cross_attentions) == len(expected.cross_attentions) == 2
        for ours, theirs in zip(output.attentions + output.cross_attentions, expected.attentions + expected.cross_attentions):
            assert_parity(ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_official_size_models_match_transformers(variant, tmp_path):
    # The learned model's position table fixes 224x224 inputs; Fourier positions accept any size, so the
    # other two run on smaller images to keep the test quick (the architecture is the official one).
    # With noise 0.1 on every weight the 48 latent layers amplify float32 rounding about a thousandfold: each
    # implementation's float32 logits then differ from its own float64 logits by ~1e-4, and a 1e-4 comparison
    # of two float32 implementations would test the machine's summation order. 0.02 keeps the network
    # well-conditioned while every weight still matters (as in the language test);
    # `test_official_size_fourier_model_matches_transformers_in_float64` checks the arithmetic exactly.
    size = 224 if variant == "learned" else 64
    reference = save_transformers_model(VARIANTS[variant], tmp_path, image_size=224, noise=0.02, **OFFICIAL)
    pixel_values = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = reference(inputs=pixel_values).logits
    del reference

    for implementation in ("eager", "sdpa"):
        model = PerceiverIOForImageClassification.from_pretrained(tmp_path, attn_implementation=implementation)
        assert sum(p.numel() for p in model.parameters()) > 40_000_000
        with torch.no_grad():
            assert_parity(model(pixel_values=pixel_values).logits, expected)


def _float64_linear_positions(index_dims, output_range=(-1.0, 1.0), device=None):
    """transformers' `build_linear_positions`, but in float64 (it hard-codes float32)."""
    ranges = [torch.linspace(*output_range, steps=n, dtype=torch.float64, device=device) for n in index_dims]
    return torch.stack(torch.meshgrid(*ranges, indexing="ij"), dim=-1)


@pytest.mark.slow
def test_official_size_fourier_model_matches_transformers_in_float64(tmp_path, monkeypatch):
    """The official Fourier architecture with strongly perturbed weights (noise 0.1, where float32 rounding is
    amplified to ~1e-4), both implementations in float64 with their Fourier features built in float64: the
    remaining difference is float64 rounding, so agreement to 1e-10 proves the arithmetic is the same."""
    from transformers.models.perceiver import modeling_perceiver

    reference = save_transformers_model(VARIANTS["fourier"], tmp_path, image_size=224, **OFFICIAL).double()
    pixel_values = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    # transformers builds positions in float32 and its frequency bands in the default dtype.
    monkeypatch.setattr(modeling_perceiver, "build_linear_positions", _float64_linear_positions)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad():
            expected = reference(inputs=pixel_values).logits
    finally:
        torch.set_default_dtype(default_dtype)
    del reference

    for implementation in ("eager", "sdpa"):
        model = PerceiverIOForImageClassification.from_pretrained(
            tmp_path, attn_implementation=implementation, dtype=torch.float64
        )
        with torch.no_grad():
            logits = model(pixel_values=pixel_values).logits
        assert logits.dtype == torch.float64
        assert_parity(logits, expected, tolerance=1e-10)


@pytest.mark.parametrize(
    "labels, problem_type",
    [
        (torch.tensor([1, 6]), "single_label_classification"),
        (torch.rand(2, 7), "multi_label_classification"),
    ],
)
def test_losses_match_transformers(tmp_path, labels, problem_type):
    reference = save_transformers_model(VARIANTS["fourier"], tmp_path, image_size=16, problem_type=problem_type, **SMALL)
    pixel_values = torch.randn(2, 3, 16, 16)
    model = PerceiverIOForImageClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        expected = reference(inputs=pixel_values, labels=labels).loss
        assert_parity(model(pixel_values=pixel_values, labels=labels).loss, expected)


def test_regression_loss_matches_transformers(tmp_path):
    reference = save_transformers_model(VARIANTS["fourier"], tmp_path, image_size=16, **{**SMALL, "num_labels": 1})
    pixel_values, labels = torch.randn(2, 3, 16, 16), torch.randn(2)
    model = PerceiverIOForImageClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        assert_parity(model(pixel_values=pixel_values, labels=labels).loss, reference(inputs=pixel_values, labels=labels).loss)


def test_tuple_outputs_match_transformers(tmp_path):
    reference = save_transformers_model(VARIANTS["learned"], tmp_path, image_size=16, **SMALL)
    pixel_values = torch.randn(2, 3, 16, 16)
    model = PerceiverIOForImageClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        ours = model(inputs=pixel_values, labels=torch.tensor([0, 1]), return_dict=False)
        theirs = reference(inputs=pixel_values, labels=torch.tensor([0, 1]), return_dict=False)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert_parity(a, b)


def test_convert_transformers_script_writes_a_reloadable_folder(tmp_path):
    source, target = tmp_path / "transformers", tmp_path / "converted"
    reference = save_transformers_model(VARIANTS["conv"], source, image_size=32, **SMALL)
    run_module("conversion.convert_transformers", source, "--output", target, check=True, capture_output=True)
    assert (target / "model.safetensors").is_file() and (target / "config.json").is_file()
    assert '"model_type": "perceiver_io"' in (target / "config.json").read_text()
    pixel_values = torch.randn(2, 3, 32, 32)
    model = PerceiverIOForImageClassification.from_pretrained(target)
    with torch.no_grad():
        assert_parity(model(pixel_values=pixel_values).logits, reference(inputs=pixel_values).logits)


def test_bare_encoder_loads_a_transformers_classifier_checkpoint(tmp_path):
    from perceiver_hf import PerceiverIOModel

    reference = save_transformers_model(VARIANTS["fourier"], tmp_path, image_size=16, **SMALL)
    pixel_values = torch.randn(1, 3, 16, 16)
    encoder = PerceiverIOModel.from_pretrained(tmp_path)
    with torch.no_grad():
        latents = encoder(pixel_values=pixel_values).last_hidden_state
        expected = reference.perceiver(inputs=pixel_values).last_hidden_state
    assert_parity(latents, expected)


def test_interpolated_positions_match_transformers(tmp_path):
    reference = save_transformers_model(VARIANTS["learned"], tmp_path, image_size=16, **SMALL)
    pixel_values = torch.randn(2, 3, 24, 20)
    model = PerceiverIOForImageClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        expected = reference(inputs=pixel_values, interpolate_pos_encoding=True).logits
        assert_parity(model(pixel_values=pixel_values, interpolate_pos_encoding=True).logits, expected)
