"""The folded decoder computes what the plain decoder computes, for any layer shape it accepts."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import PerceiverIOConfig, PerceiverIOForMultimodalAutoencoding
from perceiver_hf.core.rewrites.folded_decoder import (
    AffineMap,
    FoldedCrossAttentionDecoder,
    _orthonormal_factor,
    can_fold,
)
from perceiver_hf.queries import FactoredQueries
from tests.helpers import assert_parity, perturb_


def model(hidden_act: str = "gelu", num_heads: int = 1, **decoder) -> PerceiverIOForMultimodalAutoencoding:
    config = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=2,
        image_size=(8, 12),
        audio_samples_per_frame=8,
        samples_per_patch=4,
        num_labels=6,
        num_latents=8,
        d_latents=32,
        num_self_attends_per_block=1,
        num_self_attention_heads=4,
        image_num_bands=3,
        audio_num_bands=4,
        label_query_channels=24,
        decoder_output_channels=20,
        hidden_act=hidden_act,
    )
    config.query_decoder.update(num_heads=num_heads, **decoder)
    torch.manual_seed(0)
    return perturb_(PerceiverIOForMultimodalAutoencoding(config).eval())


def clip(batch: int = 2) -> dict[str, torch.Tensor]:
    return {"image": torch.rand(batch, 2, 3, 8, 12), "audio": torch.rand(batch, 16, 1) * 2 - 1, "label": torch.zeros(batch, 6)}


@pytest.mark.parametrize(
    "hidden_act, num_heads, decoder",
    [
        ("gelu", 1, {}),
        ("gelu_pytorch_tanh", 2, {}),
        ("relu", 4, {"qk_channels": 16, "v_channels": 48}),  # more value channels than query channels: QR fallback
        ("silu", 2, {"widening_factor": 2}),
    ],
)
def test_folded_equals_plain_decoding(hidden_act, num_heads, decoder):
    autoencoder = model(hidden_act, num_heads, **decoder)
    inputs = clip()
    points = {"image": torch.tensor([191, 0, 17, 96, 95]), "audio": torch.tensor([3, 1])}
    with torch.no_grad():
        input_array, encoded = autoencoder.perceiver.encode(inputs)
        latents = encoded.last_hidden_state
        for subsampled in (None, points):  # whole grid rows (broadcast logits) and arbitrary points (gathered)
            for chunk_size in (None, 13):
                plain, _ = autoencoder.decode(latents, input_array, subsampled, chunk_size, folded=False)
                folded, _ = autoencoder.decode(latents, input_array, subsampled, chunk_size, folded=True)
                assert plain.keys() == folded.keys()
                for name in plain:
                    assert_parity(folded[name], plain[name], tolerance=1e-5)


def test_folding_is_chosen_for_many_queries_only():
    autoencoder = model()
    inputs = clip()
    with torch.no_grad():
        input_array, encoded = autoencoder.perceiver.encode(inputs)
        few = {"image": torch.arange(3), "audio": torch.arange(1)}
        calls = []
        original = FoldedCrossAttentionDecoder.__init__

        def spy(self, *args, **kwargs):
            calls.append(True)
            original(self, *args, **kwargs)

        FoldedCrossAttentionDecoder.__init__ = spy
        try:
            autoencoder.decode(encoded.last_hidden_state, input_array, few)
            assert not calls  # 5 queries: the plain decoder
            autoencoder.decode(encoded.last_hidden_state, input_array)
            assert calls  # 201 queries, more than the 26 query channels
        finally:
            FoldedCrossAttentionDecoder.__init__ = original


def test_layers_with_query_residual_are_not_folded():
    autoencoder = model(use_query_residual=True)
    maps = autoencoder.decoder.cross_attention.maps()
    assert not can_fold(maps)
    with pytest.raises(ValueError, match="without query residual"):
        FoldedCrossAttentionDecoder(maps, torch.zeros(1, 8, 32))


def test_composed_affine_map_applies_layers_in_order():
    first, second = torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)
    x = torch.randn(7, 5)
    composed = AffineMap.compose(first, None, second)
    torch.testing.assert_close((x.double() @ composed.weight.T + composed.bias).float(), second(first(x)))


def test_factored_queries_without_tables_are_refused():
    autoencoder = model()
    layer = FoldedCrossAttentionDecoder(autoencoder.decoder.cross_attention.maps(), torch.zeros(1, 8, 32))
    constant_only = FactoredQueries([], torch.zeros(3, 0, dtype=torch.long), torch.zeros(26))
    with pytest.raises(ValueError, match="without tables"):
        layer.logits(constant_only)


def test_orthonormal_factor_of_rank_deficient_centred_weights():
    # As many value channels as query channels (transformers' default): centring leaves rank C - 1, and the
    # Gram matrix's Cholesky factorisation can succeed on rounding errors with a basis that is not orthonormal.
    generator = torch.Generator().manual_seed(0)
    for channels, value_channels in ((26, 26), (26, 48), (40, 24)):
        for _ in range(10):  # Cholesky succeeds on some of these draws only
            weight = torch.randn(channels, value_channels, generator=generator, dtype=torch.float64)
            centred = weight - weight.mean(dim=0, keepdim=True)
            basis, factor = _orthonormal_factor(centred)
            torch.testing.assert_close(basis.T @ basis, torch.eye(basis.shape[1], dtype=torch.float64))
            torch.testing.assert_close(basis @ factor, centred)
