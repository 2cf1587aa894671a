"""`perceiver_hf.visualization.attention_maps`: the encoder's cross-attention drawn over images, flow frames, video
frames (PNG grids) and text (HTML)."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import PerceiverTokenizer

from perceiver_hf import (
    PerceiverIOConfig,
    PerceiverIOForImageClassification,
    PerceiverIOForMultimodalAutoencoding,
    PerceiverIOForOpticalFlow,
    PerceiverIOForTokenClassification,
)
from perceiver_hf.visualization import _heat_map, attention_maps, encoder_attention
from tests.helpers import load_example, perturb_

TINY = dict(num_latents=8, d_latents=32, num_self_attends_per_block=1, num_self_attention_heads=2)


def image_classifier(variant: str = "conv") -> PerceiverIOForImageClassification:
    config = PerceiverIOConfig.for_image_classification(variant, image_size=32, num_labels=3, num_blocks=1, **TINY)
    return perturb_(PerceiverIOForImageClassification(config).eval(), scale=1.0)


def tiles(path, count: int) -> list[np.ndarray]:
    """The picture tiles of a one-row grid (4-pixel gaps, a 16-pixel label strip above each tile)."""
    sheet = np.asarray(Image.open(path).convert("RGB"))
    width = (sheet.shape[1] - 4) // count - 4
    return [sheet[20 : 20 + width, 4 + i * (width + 4) : 4 + i * (width + 4) + width] for i in range(count)]


@pytest.mark.parametrize("variant, grid", [("conv", (8, 8)), ("fourier", (32, 32))])
def test_image_attention_is_the_encoders_and_drawn_per_latent(tmp_path, variant, grid):
    model = image_classifier(variant)
    pixel_values = torch.randn(1, 3, 32, 32)
    weights, _ = encoder_attention(model, torch.cat([pixel_values, torch.randn(1, 3, 32, 32)]))  # the first example's
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, output_attentions=True).cross_attentions[0][0].mean(0)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(-1), torch.ones(8))
    assert weights.shape == (8, grid[0] * grid[1])

    path = attention_maps(model, pixel_values, latents=[2, 5], output=tmp_path / "maps.png", columns=3)
    assert path == tmp_path / "maps.png" and list(tmp_path.iterdir()) == [path]  # nothing else left behind
    picture, *maps = tiles(path, 3)
    assert picture.shape == (160, 160, 3) and len(maps) == 2
    for latent, tile in zip([2, 5], maps):
        # The brightest part of each tile is where that latent attends most.
        attention = weights[latent].reshape(grid).numpy()
        row, column = np.unravel_index(attention.argmax(), grid)
        cell = 160 // grid[0]
        brightest = tile.astype(float).sum(-1)[row * cell : (row + 1) * cell, column * cell : (column + 1) * cell]
        assert brightest.mean() >= np.percentile(tile.astype(float).sum(-1), 90)


def test_a_heat_map_is_bright_where_the_attention_is():
    weights = np.zeros((4, 4))
    weights[1, 2] = 1.0
    heat = _heat_map(np.full((40, 40, 3), 128, np.uint8), weights).astype(float).sum(-1)
    row, column = np.unravel_index(heat.argmax(), heat.shape)
    assert (row // 10, column // 10) == (1, 2)


def test_optical_flow_and_video_frames(tmp_path):
    flow = perturb_(PerceiverIOForOpticalFlow(PerceiverIOConfig.for_optical_flow(train_size=(12, 16), **TINY)).eval())
    path = attention_maps(flow, inputs=torch.rand(1, 2, 27, 12, 16) * 2 - 1, latents=[0, 1], output=tmp_path / "flow.png")
    assert Image.open(path).size == (3 * (160 + 4) + 4, 120 + 16 + 8)  # 12x16 frames enlarged 10x

    config = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=2, image_size=16, audio_samples_per_frame=32, samples_per_patch=16, num_labels=5, image_num_bands=2,
        audio_num_bands=2, label_query_channels=8, decoder_output_channels=8, num_latents=8, d_latents=16,
        num_self_attends_per_block=1, num_self_attention_heads=2,
    )  # fmt: skip
    autoencoder = perturb_(PerceiverIOForMultimodalAutoencoding(config).eval())
    inputs = {"image": torch.rand(1, 2, 3, 16, 16), "audio": torch.rand(1, 64, 1), "label": torch.zeros(1, 5)}
    first = np.asarray(Image.open(attention_maps(autoencoder, inputs=inputs, frame=0, latents=[3], output=tmp_path / "a.png")))
    second = np.asarray(Image.open(attention_maps(autoencoder, inputs=inputs, frame=1, latents=[3], output=tmp_path / "b.png")))
    assert first.shape == second.shape and not np.array_equal(first, second)  # each frame its own rows
    with pytest.raises(ValueError, match=r"frame must be in \[0, 2\)"):
        attention_maps(autoencoder, inputs=inputs, frame=2, output=tmp_path / "c.png")


def test_text_attention_colours_characters_not_bytes(tmp_path):
    config = PerceiverIOConfig.for_token_classification(
        num_labels=3, d_model=16, qk_channels=16, num_cross_attention_heads=2, decoder_num_heads=2, decoder_qk_channels=16,
        max_position_embeddings=64, **TINY,
    )  # fmt: skip
    model = perturb_(PerceiverIOForTokenClassification(config).eval(), scale=1.0)
    text = "5 € <b>&</b>"
    input_ids = PerceiverTokenizer()(text, return_tensors="pt")["input_ids"]
    path = attention_maps(model, input_ids=input_ids, latents=[0, 4], output=tmp_path / "text.html")
    document = path.read_text(encoding="utf-8")
    assert document.count("<h3>latent") == 2
    weights, _ = encoder_attention(model, input_ids)
    section = document.split("<h3>latent 4</h3>")[1]
    spans = re.findall(r'<span title="([0-9.]+)"[^>]*>([^<]*)</span>', section)
    assert [html.unescape(character) for _, character in spans] == ["[CLS]", *text, "[SEP]"]
    euro = next(float(weight) for weight, character in spans if character == "€")
    assert euro == pytest.approx(weights[4, 3:6].sum().item(), abs=1e-4)  # the three bytes of one character


def test_bad_requests_are_refused_clearly_and_leave_no_file(tmp_path):
    model = image_classifier()
    pixel_values = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"latents must be indices in \[0, 8\).*got \[8\]"):
        attention_maps(model, pixel_values, latents=[8], output=tmp_path / "a.png")
    with pytest.raises(ValueError, match="ending in .png"):
        attention_maps(model, pixel_values, output=tmp_path / "a.html")
    with pytest.raises(ValueError, match="pass `pixel_values`"):
        attention_maps(model, output=tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"head must be in \[0, 1\)"):
        attention_maps(model, pixel_values, head=1, output=tmp_path / "a.png")
    with pytest.raises(TypeError, match="perceiver_hf model"):
        attention_maps(torch.nn.Linear(2, 2), pixel_values, output=tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_example_script_draws_held_out_digits_and_text(tmp_path):
    from perceiver_hf.demo import digits_config
    from perceiver_hf.demo.digits import digits_image_processor

    example = load_example("attention_maps")
    perturb_(PerceiverIOForImageClassification(digits_config())).save_pretrained(tmp_path / "digits")
    digits_image_processor().save_pretrained(tmp_path / "digits")
    example.main([str(tmp_path / "digits"), "--digits", "0", "1", "2", "--count", "4", "--output", str(tmp_path / "d.png")])
    assert Image.open(tmp_path / "d.png").size == (5 * (160 + 4) + 4, 3 * (160 + 16 + 8))  # a row per digit

    text_model = PerceiverIOForTokenClassification(PerceiverIOConfig.for_token_classification(
        num_labels=3, d_model=16, qk_channels=16, num_cross_attention_heads=2, decoder_num_heads=2, decoder_qk_channels=16,
        max_position_embeddings=32, **TINY))  # fmt: skip
    text_model.save_pretrained(tmp_path / "text")
    example.main([str(tmp_path / "text"), "--text", "A text longer than 32 bytes is truncated, not refused.",
                  "--latents", "1", "3", "--output", str(tmp_path / "t.html")])  # fmt: skip
    assert (tmp_path / "t.html").read_text(encoding="utf-8").count("<h3>latent") == 2
    with pytest.raises(SystemExit, match="no image file"):
        example.main([str(tmp_path / "digits"), "--image", str(tmp_path / "missing.png"), "--output", str(tmp_path / "x.png")])
