"""perceiver_hf folders work like any transformers model: Auto classes, pipelines, the Hub cache, Accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    PerceiverConfig,
    PerceiverForImageClassificationFourier,
    PerceiverImageProcessor,
    pipeline,
)

from perceiver_hf import PerceiverIOConfig, PerceiverIOForImageClassification, PerceiverIOModel
from tests.helpers import assert_parity, perturb_

LABELS = {0: "cat", 1: "dog", 2: "bird"}


def save_classifier(folder: Path, variant: str = "fourier") -> PerceiverIOForImageClassification:
    config = PerceiverIOConfig.for_image_classification(
        variant, image_size=32, num_labels=3, num_latents=8, d_latents=32, num_blocks=1,
        num_self_attends_per_block=2, num_self_attention_heads=4,
    )
    config.id2label, config.label2id = LABELS, {v: k for k, v in LABELS.items()}
    model = perturb_(PerceiverIOForImageClassification(config)).eval()
    model.save_pretrained(folder)
    PerceiverImageProcessor(crop_size={"height": 40, "width": 40}, size={"height": 32, "width": 32}).save_pretrained(folder)
    return model


def an_image() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_auto_classes_load_perceiver_hf_folders(tmp_path):
    save_classifier(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), PerceiverIOConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), PerceiverIOModel)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path), PerceiverIOForImageClassification)


def test_image_classification_pipeline_returns_config_labels(tmp_path):
    model = save_classifier(tmp_path)
    classifier = pipeline("image-classification", model=str(tmp_path))
    predictions = classifier(an_image(), top_k=3)
    assert {p["label"] for p in predictions} == set(LABELS.values())
    pixel_values = PerceiverImageProcessor.from_pretrained(tmp_path)(an_image(), return_tensors="pt").pixel_values
    with torch.no_grad():
        probabilities = model(pixel_values=pixel_values).logits.softmax(-1)[0]
    assert predictions[0]["label"] == LABELS[int(probabilities.argmax())]
    assert predictions[0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_image_feature_extraction_pipeline_returns_the_latents(tmp_path):
    save_classifier(tmp_path)
    extractor = pipeline("image-feature-extraction", model=str(tmp_path))
    features = np.asarray(extractor(an_image()))
    assert features.shape == (1, 8, 32)  # (batch, num_latents, d_latents)
    pixel_values = PerceiverImageProcessor.from_pretrained(tmp_path)(an_image(), return_tensors="pt").pixel_values
    with torch.no_grad():
        latents = AutoModel.from_pretrained(tmp_path)(pixel_values=pixel_values).last_hidden_state
    np.testing.assert_allclose(features, latents.numpy(), atol=1e-5)


def test_device_map_auto_and_bfloat16_through_accelerate(tmp_path):
    model = save_classifier(tmp_path, "learned")
    loaded = PerceiverIOForImageClassification.from_pretrained(tmp_path, device_map="auto", dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in loaded.parameters())
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(pixel_values=pixel_values).logits
        logits = loaded(pixel_values=pixel_values).logits
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - reference).abs().max() <= 0.05 * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("variant", ["learned", "conv"])
def test_weights_offloaded_by_accelerate_still_compute_the_same_logits(tmp_path, variant):
    model = save_classifier(tmp_path, variant)
    # Too little memory for any module: Accelerate offloads everything to disk and loads each module's
    # weights only while its forward runs.
    offloaded = PerceiverIOForImageClassification.from_pretrained(
        tmp_path, device_map="auto", max_memory={"cpu": "60KB"}, offload_folder=str(tmp_path / "offload")
    )
    assert "disk" in set(offloaded.hf_device_map.values())
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert_parity(offloaded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits, 1e-5)


def write_hub_cache(cache: Path, repo_id: str, files_from: Path, revision: str = "0123456789abcdef0123456789abcdef01234567") -> None:
    """Lay out `files_from` as huggingface_hub caches a downloaded repository."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in files_from.iterdir():
        blob = repo / "blobs" / f"blob-{file.name}"
        blob.parent.mkdir(exist_ok=True)
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def run_offline(cache: Path, code: str) -> str:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "home")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_repo_ids_load_from_the_hub_cache_offline(tmp_path):
    ours, theirs, cache = tmp_path / "ours", tmp_path / "theirs", tmp_path / "hub"
    save_classifier(ours)
    reference = PerceiverForImageClassificationFourier(
        PerceiverConfig(num_latents=8, d_latents=32, d_model=16, num_blocks=1, num_self_attends_per_block=2,
                        num_self_attention_heads=4, num_cross_attention_heads=1, num_labels=3)
    )
    perturb_(reference.eval()).save_pretrained(theirs)
    write_hub_cache(cache, "perceiver-hf/tiny-fourier", ours)
    write_hub_cache(cache, "deepmind/tiny-vision-perceiver-fourier", theirs)

    output = run_offline(
        cache,
        """
        import json, torch, numpy as np
        from PIL import Image
        from transformers import AutoModelForImageClassification, pipeline
        import perceiver_hf
        model = AutoModelForImageClassification.from_pretrained("perceiver-hf/tiny-fourier")
        classifier = pipeline("image-classification", model="perceiver-hf/tiny-fourier")
        image = Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8))
        converted = perceiver_hf.PerceiverIOForImageClassification.from_pretrained("deepmind/tiny-vision-perceiver-fourier")
        logits = converted(pixel_values=torch.ones(1, 3, 16, 16)).logits
        print(json.dumps({"model": type(model).__name__, "label": classifier(image)[0]["label"], "logits": logits.tolist()}))
        """,
    )
    result = json.loads(output.strip().splitlines()[-1])
    assert result["model"] == "PerceiverIOForImageClassification" and result["label"] in LABELS.values()
    with torch.no_grad():
        expected = reference(inputs=torch.ones(1, 3, 16, 16)).logits
    assert_parity(torch.tensor(result["logits"]), expected)
