"""Position encodings follow DeepMind's conventions (and transformers' Perceiver, which follows them too)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.perceiver import modeling_perceiver as reference

from perceiver_hf.position import (
    FourierPositionEncoding,
    TimeEncoding,
    TrainablePositionEncoding,
    build_position_encoding,
    linear_positions,
)


def numpy_fourier_features(index_dims, num_bands, max_resolution):
    """The documented convention, written out independently: [pos, sin (dim-major, band-minor), cos]."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in index_dims]
    positions = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(index_dims))
    frequencies = np.stack([np.linspace(1.0, r / 2, num_bands, dtype=np.float32) for r in max_resolution])
    scaled = (positions[:, :, None] * frequencies[None]).reshape(len(positions), -1)
    return np.concatenate([positions, np.sin(np.pi * scaled), np.cos(np.pi * scaled)], axis=-1)


def test_fourier_features_follow_deepmind_conventions():
    encoding = FourierPositionEncoding(num_bands=4, max_resolution=(8, 10))
    features = encoding((8, 10))
    assert features.shape == (80, encoding.num_channels) == (80, 2 + 2 * 2 * 4)
    np.testing.assert_allclose(features.numpy(), numpy_fourier_features((8, 10), 4, (8, 10)), atol=2e-6)
    # Row-major flattening with an 'ij' grid: row 1 is (y=-1, x=-1+2/9).
    assert features[1, 0] == -1.0 and features[1, 1] == pytest.approx(-1 + 2 / 9)


def test_fourier_features_match_transformers_at_any_resolution():
    encoding = FourierPositionEncoding(num_bands=64, max_resolution=(224, 224))
    theirs = reference.PerceiverFourierPositionEncoding(num_bands=64, max_resolution=(224, 224))
    for size in [(224, 224), (96, 160)]:  # computed, so any input resolution works
        expected = theirs(size, batch_size=1, device=torch.device("cpu"), dtype=torch.float32)[0]
        torch.testing.assert_close(encoding(size), expected, rtol=0, atol=1e-6)


def test_any_block_of_rows_equals_the_same_rows_of_the_full_grid():
    encoding = FourierPositionEncoding(num_bands=6, max_resolution=(16, 5, 7), sine_only=True)
    full = encoding((16, 5, 7))
    assert torch.equal(encoding((16, 5, 7), start=123, end=301), full[123:301])
    # Flat index 40 of a (16, 5, 7) grid is (1, 0, 5).
    torch.testing.assert_close(linear_positions((16, 5, 7), 40, 41)[0], torch.tensor([-1 + 2 / 15, -1.0, -1 + 2 * 5 / 6]))


def test_explicit_positions_are_encoded_as_given():
    encoding = FourierPositionEncoding(num_bands=3, max_resolution=(30,), concat_pos=False)
    positions = torch.tensor([[-1.0], [0.25]])
    features = encoding(None, positions=positions)
    expected = torch.cat([torch.sin(torch.pi * positions * torch.linspace(1, 15, 3)), torch.cos(torch.pi * positions * torch.linspace(1, 15, 3))], -1)
    torch.testing.assert_close(features, expected)


def test_fourier_encoding_has_no_parameters_or_buffers():
    encoding = FourierPositionEncoding(num_bands=64, max_resolution=(368, 496))
    assert not list(encoding.parameters()) and not list(encoding.buffers())
    assert encoding.state_dict() == {}


def test_trainable_encoding_interpolates_like_transformers():
    ours = TrainablePositionEncoding((8, 8), num_channels=5)
    theirs = reference.PerceiverTrainablePositionEncoding(index_dims=64, num_channels=5)
    theirs.position_embeddings.data.copy_(ours.position_embeddings.data)
    assert torch.equal(ours(), ours.position_embeddings)
    resized = ours((12, 10), interpolate=True)
    assert resized.shape == (120, 5)
    torch.testing.assert_close(resized, theirs(None, interpolate_pos_encoding=True, input_size=(12, 10)))


def test_trainable_encoding_refuses_another_shape_without_interpolation():
    with pytest.raises(ValueError, match=r"trained for index shape \(8, 8\).*\(12, 10\).*interpolate_pos_encoding=True"):
        TrainablePositionEncoding((8, 8), num_channels=5)((12, 10))


def test_position_encodings_are_built_from_config_dicts():
    assert isinstance(build_position_encoding({"type": "fourier", "num_bands": 2, "max_resolution": [4]}), FourierPositionEncoding)
    assert build_position_encoding({"type": "trainable", "index_dims": [3, 4], "num_channels": 2}).position_embeddings.shape == (12, 2)
    with pytest.raises(ValueError, match="Unknown position encoding type 'sinusoid'"):
        build_position_encoding({"type": "sinusoid"})


def test_time_encoding_is_the_step_and_geometric_sines_and_cosines():
    encoding = TimeEncoding(num_bands=4, max_period=64.0, min_period=4.0)
    steps = torch.tensor([[-10.0, 0.0, 3.0, 1000.0]])  # any offset, past or future, has an encoding
    features = encoding(steps, dtype=torch.float64)
    periods = np.geomspace(4.0, 64.0, 4)
    angles = 2 * np.pi * steps.double().numpy()[0, :, None] / periods
    expected = np.concatenate([steps.double().numpy()[0, :, None] / 64.0, np.sin(angles), np.cos(angles)], axis=-1)
    assert features.shape == (1, 4, encoding.num_channels) == (1, 4, 9)
    np.testing.assert_allclose(features[0].numpy(), expected, atol=1e-12)


def test_time_encoding_appends_time_features_and_checks_their_shape():
    encoding = TimeEncoding(num_bands=2, num_time_features=3)
    steps, extra = torch.arange(5.0)[None], torch.randn(2, 5, 3)
    features = encoding(steps, extra)
    assert features.shape == (2, 5, 5 + 3) and torch.equal(features[..., 5:], extra)
    assert torch.equal(features[0, :, :5], features[1, :, :5])
    with pytest.raises(ValueError, match=r"pass `time_features` of shape \(batch, 5, 3\)"):
        encoding(steps)
    with pytest.raises(ValueError, match=r"Expected `time_features` of shape \(batch, 5, 3\), got \(2, 5, 2\)"):
        encoding(steps, extra[..., :2])
    with pytest.raises(ValueError, match="0 < min_period < max_period"):
        TimeEncoding(num_bands=2, max_period=1.0)
