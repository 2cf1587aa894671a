"""Processors, the tokenizer and the pipelines under drawn inputs: frames of any size, channel count and dtype,
any text. Each call either gives a correct output (its documented shape, finite, offsets inside the text) or
refuses with a `ValueError`/`TypeError` that says something; never an error from deep inside numpy or torch."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import PerceiverTokenizer, pipeline

from perceiver_hf import (
    PerceiverIOByteTokenizer,
    PerceiverIOConfig,
    PerceiverIOFlowProcessor,
    PerceiverIOForMultimodalAutoencoding,
    PerceiverIOForOpticalFlow,
    PerceiverIOForTokenClassification,
    PerceiverIOVideoAutoencodingProcessor,
)
from tests.helpers import perturb_

CORE = {"num_latents": 8, "d_latents": 16, "num_self_attends_per_block": 1, "num_self_attention_heads": 2}
DTYPES = [np.uint8, np.float32, np.float64, np.int64, np.bool_]
STRATEGIES = ("none", "simple", "first", "average", "max")


def refused_clearly(call) -> object | None:
    """The call's result, or None when it was refused with a ValueError/TypeError that says something."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        assert len(str(error)) > 20, f"an error that says nothing: {error!r}"
        return None


def sizes(largest: int):
    """0, or a size that cannot be read as a channel count (a 3x1x1 frame is ambiguous, as in transformers)."""
    return st.sampled_from([0]) | st.integers(5, largest)


@st.composite
def frames(draw, count=st.integers(0, 4), height=sizes(20), width=sizes(24)):
    """A stack of frames `(count, height, width[, channels])`, as an array or a list of arrays."""
    shape = [draw(count), draw(height), draw(width)]
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape += [] if channels is None else [channels]
    dtype = draw(st.sampled_from(DTYPES))
    values = np.random.default_rng(draw(st.integers(0, 2**16))).uniform(0, 255, size=shape)
    array = values.astype(dtype) if dtype is not np.bool_ else values > 127
    return list(array) if draw(st.booleans()) else array


@cache
def saved_models(root) -> dict[str, str]:
    """Tiny models saved with what each pipeline loads beside them."""
    torch.manual_seed(0)
    folders = {name: root / name for name in ("flow", "video", "tagger")}
    flow = PerceiverIOConfig.for_optical_flow(train_size=(6, 8), out_channels=16, num_bands=4, **CORE)
    perturb_(PerceiverIOForOpticalFlow(flow)).save_pretrained(folders["flow"])
    PerceiverIOFlowProcessor(tile_size=(6, 8), min_overlap=2).save_pretrained(folders["flow"])
    video = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=2, image_size=8, audio_samples_per_frame=16, samples_per_patch=8, num_labels=3,
        spatial_patch_size=4, image_num_bands=2, audio_num_bands=2, label_query_channels=8,
        decoder_output_channels=16, decoder_chunk_size=50, **CORE,
    )  # fmt: skip
    perturb_(PerceiverIOForMultimodalAutoencoding(video)).save_pretrained(folders["video"])
    PerceiverIOVideoAutoencodingProcessor.from_model_config(video).save_pretrained(folders["video"])
    tagger = PerceiverIOConfig.for_token_classification(
        num_labels=3, d_model=16, qk_channels=16, decoder_num_heads=1, decoder_qk_channels=16,
        max_position_embeddings=48, **CORE,
    )  # fmt: skip
    perturb_(PerceiverIOForTokenClassification(tagger), scale=1.0).save_pretrained(folders["tagger"])
    PerceiverTokenizer(model_max_length=48).save_pretrained(folders["tagger"])
    return {name: str(folder) for name, folder in folders.items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return saved_models(tmp_path_factory.mktemp("models"))


@given(pair=frames())
def test_the_flow_processor_gives_patches_of_each_pair_or_a_clear_error(pair):
    processor = PerceiverIOFlowProcessor(tile_size=(6, 8), min_overlap=2)
    inputs = refused_clearly(lambda: processor(pair)["inputs"])
    if inputs is not None:
        height, width = np.asarray(pair[0]).shape[:2]
        assert inputs.shape[1:3] == (2, 27) and inputs.shape[-2:] == (height, width)
        assert torch.isfinite(inputs).all()


@given(video=frames(count=st.integers(0, 5)), samples=st.none() | st.integers(0, 50))
def test_the_video_processor_gives_the_models_inputs_or_a_clear_error(video, samples):
    processor = PerceiverIOVideoAutoencodingProcessor(num_frames=2, frame_size={"height": 8, "width": 8}, audio_samples_per_frame=16, num_labels=3)
    audio = None if samples is None else np.linspace(-1, 1, samples, dtype=np.float32)
    inputs = refused_clearly(lambda: processor(video, audio=audio)["inputs"])
    if inputs is not None:
        assert inputs["image"].shape == (1, 2, 3, 8, 8) and inputs["audio"].shape == (1, 32, 1)
        assert all(torch.isfinite(value).all() for value in inputs.values())


@given(text=st.text(max_size=30) | st.lists(st.text(max_size=10), max_size=3) | st.integers() | st.none())
def test_the_byte_tokenizer_gives_ids_and_offsets_into_the_text_or_a_clear_error(text):
    tokenizer = PerceiverIOByteTokenizer()
    encoded = refused_clearly(lambda: tokenizer(text, return_offsets_mapping=True))
    if encoded is None:
        return
    texts, ids, offsets = ([text], [encoded["input_ids"]], [encoded["offset_mapping"]]) if isinstance(text, str) else (
        text, encoded["input_ids"], encoded["offset_mapping"])  # fmt: skip
    for one, row, spans in zip(texts, ids, offsets, strict=True):
        assert row == PerceiverTokenizer()(one)["input_ids"]  # transformers' ids ("[SEP]" in a text is the token)
        assert all(0 <= start <= end <= len(one) for start, end in spans)


@given(text=st.text(max_size=60) | st.integers() | st.none(), strategy=st.sampled_from(STRATEGIES))
def test_the_token_classification_pipeline_gives_spans_of_the_text_or_a_clear_error(models, text, strategy):
    tagger = pipeline("token-classification", model=models["tagger"], aggregation_strategy=strategy)
    entities = refused_clearly(lambda: tagger(text))
    if entities is None:
        return
    for entity in entities:
        assert 0 <= entity["start"] <= entity["end"] <= len(text)
        assert entity["word"] == text[entity["start"] : entity["end"]] or strategy == "none"
        assert 0.0 <= entity["score"] <= 1.0


@given(pair=frames(count=st.integers(1, 3), height=sizes(13), width=sizes(17)))
def test_the_flow_pipeline_gives_a_flow_per_pixel_or_a_clear_error(models, pair):
    estimator = pipeline("optical-flow", model=models["flow"])
    result = refused_clearly(lambda: estimator(pair, progress=False))
    if result is not None:
        height, width = np.asarray(pair[0]).shape[:2]
        assert result["flow"].shape == (height, width, 2) and np.isfinite(result["flow"]).all()


@given(video=frames(count=st.integers(0, 4), height=sizes(12), width=sizes(12)))
def test_the_video_pipeline_reconstructs_the_clip_or_says_why_not(models, video):
    autoencoder = pipeline("video-autoencoding", model=models["video"])
    result = refused_clearly(lambda: autoencoder(video))
    if result is not None:
        assert result["video"].shape == (2, 8, 8, 3) and result["audio"].shape == (32,)
        assert np.isfinite(result["audio"]).all()
