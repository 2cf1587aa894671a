"""PerceiverIOForMultimodalAutoencoding: drop-in parity with transformers' PerceiverForMultimodalAutoencoding,
full reconstruction in one call, and training with a per-modality reconstruction loss.

transformers' model only decodes subsampled outputs; its documented way to reconstruct a clip is to call the
whole model once per chunk of output indices. Ours must equal the concatenation of those chunks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import PerceiverForMultimodalAutoencoding

from perceiver_hf import PerceiverIOConfig, PerceiverIOForMultimodalAutoencoding, PerceiverIOVideoAutoencodingProcessor
from perceiver_hf.presets import VIDEO_AUTOENCODING_CORE, transformers_sizes
from tests.helpers import SMALL_CORE, assert_parity, perturb_, save_transformers_model

# A small model with transformers' layout: 2 frames of 12x16 (non-square, to catch height/width swaps), 24 audio
# samples in patches of 4, 80 classes. transformers fixes the Fourier bands (192 audio, 32 video).
FRAMES, HEIGHT, WIDTH, SAMPLES, CLASSES = 2, 12, 16, 24, 80
SMALL = dict(
    SMALL_CORE,
    d_model=84,
    num_blocks=1,
    num_cross_attention_heads=1,
    num_labels=CLASSES,
    image_size=3,
    num_frames=FRAMES,
    audio_samples_per_frame=SAMPLES // FRAMES,
    samples_per_patch=4,
    output_shape=[1, FRAMES, HEIGHT, WIDTH],
    output_num_channels=24,
    _label_trainable_num_channels=40,
)
# transformers' deepmind/multimodal-perceiver.
OFFICIAL = transformers_sizes(VIDEO_AUTOENCODING_CORE, num_labels=700)


def clip(batch: int = 2, frames: int = FRAMES, size=(HEIGHT, WIDTH), samples: int = SAMPLES, classes: int = CLASSES):
    return {
        "image": torch.rand(batch, frames, 3, *size),
        "audio": torch.rand(batch, samples, 1) * 2 - 1,
        "label": torch.zeros(batch, classes),
    }


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transformers")
    torch.manual_seed(0)
    reference = save_transformers_model(PerceiverForMultimodalAutoencoding, folder, **SMALL)
    return reference, folder


def test_subsampled_outputs_match_transformers(small_models):
    reference, folder = small_models
    inputs = clip()
    points = {"image": torch.randperm(FRAMES * HEIGHT * WIDTH)[:40], "audio": torch.tensor([5, 0, 3]), "label": None}
    with torch.no_grad():
        expected = reference(inputs=inputs, subsampled_output_points=points, output_attentions=True, output_hidden_states=True)
    for implementation in ("eager", "sdpa"):
        model = PerceiverIOForMultimodalAutoencoding.from_pretrained(folder, attn_implementation=implementation)
        with torch.no_grad():
            output = model(inputs=inputs, subsampled_output_points=points, output_attentions=True, output_hidden_states=True)
        assert output.logits.keys() == expected.logits.keys()
        for name in expected.logits:
            assert_parity(output.logits[name], expected.logits[name])
        for ours, theirs in zip(output.hidden_states + output.attentions, expected.hidden_states + expected.attentions, strict=True):
            assert_parity(ours, theirs)
        for ours, theirs in zip(output.cross_attentions, expected.cross_attentions, strict=True):
            assert_parity(ours, theirs)


def test_one_call_equals_transformers_chunked_reconstruction(small_models):
    """What transformers' documented loop returns, chunk by chunk, our model returns in one call."""
    reference, folder = small_models
    inputs = clip()
    chunks, pixels, patches = 4, FRAMES * HEIGHT * WIDTH, SAMPLES // 4
    expected = {"image": [], "audio": []}
    with torch.no_grad():
        for index in range(chunks):
            points = {
                "image": torch.arange(index * pixels // chunks, (index + 1) * pixels // chunks),
                "audio": torch.arange(index * patches // chunks, (index + 1) * patches // chunks),
                "label": None,
            }
            logits = reference(inputs=inputs, subsampled_output_points=points).logits
            expected["image"].append(logits["image"])
            expected["audio"].append(logits["audio"])
    expected = {"image": torch.cat(expected["image"], 1), "audio": torch.cat(expected["audio"], 1), "label": logits["label"]}

    model = PerceiverIOForMultimodalAutoencoding.from_pretrained(folder)
    with torch.no_grad():
        logits = model(inputs=inputs, chunk_size=50).logits  # 391 queries, straddling modalities in chunks
        input_array, encoded = model.perceiver.encode(inputs)
        for folded in (True, False):
            decoded, _ = model.decode(encoded.last_hidden_state, input_array, chunk_size=64, folded=folded)
            for name in expected:
                assert_parity(decoded[name], expected[name])
        reconstruction = model.reconstruct(inputs)
    for name in expected:
        assert_parity(logits[name], expected[name])
    # reconstruct() lays the outputs out like the inputs.
    assert reconstruction["image"].shape == inputs["image"].shape
    assert reconstruction["audio"].shape == inputs["audio"].shape
    torch.testing.assert_close(reconstruction["image"].permute(0, 1, 3, 4, 2).reshape(2, -1, 3), logits["image"])
    torch.testing.assert_close(reconstruction["audio"][..., 0], logits["audio"])


def test_modalities_by_name_equal_the_inputs_dict(small_models):
    _, folder = small_models
    model = PerceiverIOForMultimodalAutoencoding.from_pretrained(folder)
    inputs = clip()
    points = {"image": torch.arange(5), "audio": torch.arange(2)}
    with torch.no_grad():
        by_name = model(image=inputs["image"], audio=inputs["audio"], subsampled_output_points=points).logits
        as_dict = model(inputs=inputs, subsampled_output_points=points).logits
    for name in as_dict:
        torch.testing.assert_close(by_name[name], as_dict[name])


def test_tuple_outputs_match_transformers(small_models):
    reference, folder = small_models
    inputs = clip(batch=1)
    points = {"image": torch.arange(10), "audio": torch.arange(2)}
    model = PerceiverIOForMultimodalAutoencoding.from_pretrained(folder)
    with torch.no_grad():
        (ours,) = model(inputs=inputs, subsampled_output_points=points, return_dict=False)
        (theirs,) = reference(inputs=inputs, subsampled_output_points=points, return_dict=False)
    for name in theirs:
        assert_parity(ours[name], theirs[name])


@pytest.mark.slow
def test_official_size_matches_transformers(tmp_path):
    """Full size, batch 1, one forward of transformers and one encoding per implementation (decoded with the
    folded and the plain decoder).

    The weights are perturbed by 0.02 rather than the usual 0.1: with 0.1 noise on every weight, each 1,026-wide
    layer multiplies activations by ~3 and the outputs reach ~200, where float32 rounding alone moves them by
    ~1e-4 relative (transformers' own float32 output is 1.2e-4 away from its float64 output; ours is as close to
    float64, but rounds differently). At 0.02 the outputs are O(1), like a trained model's, and parity holds
    with a wide margin (~2e-6)."""
    torch.manual_seed(0)
    reference = save_transformers_model(PerceiverForMultimodalAutoencoding, tmp_path, noise=0.02, **OFFICIAL)
    inputs = clip(batch=1, frames=16, size=(224, 224), samples=30720, classes=700)
    points = {"image": torch.randperm(16 * 224 * 224)[:1500], "audio": torch.arange(0, 1920, 97), "label": None}
    with torch.no_grad():
        expected = reference(inputs=inputs, subsampled_output_points=points).logits
    del reference

    for implementation in ("eager", "sdpa"):
        model = PerceiverIOForMultimodalAutoencoding.from_pretrained(tmp_path, attn_implementation=implementation)
        assert sum(p.numel() for p in model.parameters()) == 19_858_855  # DeepMind's official parameter count
        with torch.no_grad():
            input_array, encoded = model.perceiver.encode(inputs)
            for folded in (True, False):
                logits, _ = model.decode(encoded.last_hidden_state, input_array, points, folded=folded)
                for name in expected:
                    assert_parity(logits[name], expected[name])


def small_model(**overrides) -> PerceiverIOForMultimodalAutoencoding:
    config = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=FRAMES,
        image_size=(HEIGHT, WIDTH),
        audio_samples_per_frame=SAMPLES // FRAMES,
        samples_per_patch=4,
        num_labels=CLASSES,
        num_latents=8,
        d_latents=32,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        image_num_bands=3,
        audio_num_bands=5,
        label_query_channels=40,
        decoder_output_channels=24,
        **overrides,
    )
    return PerceiverIOForMultimodalAutoencoding(config)


def test_reconstruct_returns_the_raw_outputs_and_post_process_clamps_them():
    # README's path: processor -> reconstruct -> post_process. reconstruct() is not clamped (DeepMind's colab
    # returns the raw outputs too); post_process() clamps pixels into uint8 frames and samples into [-1, 1].
    torch.manual_seed(0)
    model = small_model().eval()
    processor = PerceiverIOVideoAutoencodingProcessor.from_model_config(model.config)
    frames = np.random.default_rng(0).integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    with torch.no_grad():
        reconstruction = model.reconstruct(**processor(frames, audio=np.zeros(SAMPLES, np.float32)))
    image = reconstruction["image"]
    assert (image < 0).any() or (image > 1).any()  # an untrained model reconstructs outside [0, 1]
    decoded = processor.post_process(reconstruction)
    expected = (image.clamp(0, 1).permute(0, 1, 3, 4, 2) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(decoded["video"], expected)
    assert np.abs(decoded["audio"]).max() <= 1.0


def test_loss_weights_modalities_and_gathers_subsampled_targets():
    model = small_model(loss_weights={"image": 2.0, "audio": 0.5, "label": 1.0})
    inputs, label = clip(), torch.tensor([3, 7])
    points = {"image": torch.tensor([100, 5, 300]), "audio": torch.tensor([1, 4])}
    output = model(inputs=inputs, subsampled_output_points=points, labels=label)
    pixels = inputs["image"].permute(0, 1, 3, 4, 2).reshape(2, -1, 3)[:, points["image"]]
    samples = inputs["audio"].reshape(2, 6, 4)[:, points["audio"]].reshape(2, -1)
    expected = {
        "image": torch.nn.functional.mse_loss(output.logits["image"], pixels),
        "audio": torch.nn.functional.mse_loss(output.logits["audio"], samples),
        "label": torch.nn.functional.cross_entropy(output.logits["label"], label),
    }
    for name, loss in expected.items():
        torch.testing.assert_close(output.modality_losses[name], loss)
    torch.testing.assert_close(output.loss, 2.0 * expected["image"] + 0.5 * expected["audio"] + expected["label"])
    # Targets may be any subset of the modalities; class probabilities work as label targets.
    soft = torch.softmax(torch.randn(2, CLASSES), -1)
    only_label = model(inputs=inputs, subsampled_output_points=points, labels={"label": soft})
    torch.testing.assert_close(only_label.loss, torch.nn.functional.cross_entropy(output.logits["label"], soft))


def test_a_few_training_steps_reduce_the_reconstruction_loss():
    torch.manual_seed(0)
    model = small_model().train()
    inputs = clip()  # uniform noise: only the pixels' mean is learnable in a few steps, not the audio
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    points = {"image": torch.randperm(FRAMES * HEIGHT * WIDTH)[:64], "audio": torch.randperm(6)[:3]}
    image_losses = []
    for _ in range(10):
        output = model(inputs=inputs, subsampled_output_points=points, labels={"image": inputs["image"], "audio": inputs["audio"]})
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        image_losses.append(output.modality_losses["image"].item())
    assert image_losses[-1] < 0.5 * image_losses[0]


def test_trainer_fine_tunes_with_the_default_collator(tmp_path):
    """Flat examples (`image`, `audio`, `labels`) need no custom collator: labels as class indices reconstruct
    the inputs and classify the clip."""
    from transformers import Trainer, TrainingArguments

    model = small_model()
    examples = [
        {"image": torch.rand(FRAMES, 3, HEIGHT, WIDTH), "audio": torch.rand(SAMPLES, 1) * 2 - 1, "labels": i % CLASSES}
        for i in range(4)
    ]
    before = model.decoder.output_projection.weight.detach().clone()
    arguments = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2, report_to=[], save_strategy="no", use_cpu=True
    )
    result = Trainer(model=model, args=arguments, train_dataset=examples).train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.equal(before, model.decoder.output_projection.weight.detach())


def test_saved_model_reloads_with_the_same_outputs(tmp_path):
    model = small_model().eval()
    perturb_(model)
    inputs = clip()
    model.save_pretrained(tmp_path)
    reloaded = PerceiverIOForMultimodalAutoencoding.from_pretrained(tmp_path)
    with torch.no_grad():
        for name, value in model(inputs=inputs).logits.items():
            torch.testing.assert_close(reloaded(inputs=inputs).logits[name], value)


def test_bad_calls_are_named():
    model = small_model()
    inputs = clip()
    with pytest.raises(ValueError, match="You have to specify `inputs`"):
        model(inputs=None)
    with pytest.raises(ValueError, match="cannot use both `inputs` and"):
        model(inputs=inputs, image=inputs["image"])
    with pytest.raises(ValueError, match=r"names \['video'\]"):
        model(inputs=inputs, subsampled_output_points={"video": torch.arange(3)})
    with pytest.raises(ValueError, match="image target must have the input layout"):
        model(inputs=inputs, labels={"image": inputs["image"].permute(0, 1, 3, 4, 2)})
    with pytest.raises(ValueError, match="class indices"):
        model(inputs=inputs, labels={"label": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=r"labels name modalities \['text'\]"):
        model(inputs=inputs, labels={"text": torch.zeros(2)})
    with pytest.raises(ValueError, match="Folded decoding is for inference"):
        input_array, encoded = model.perceiver.encode(inputs)
        model.decode(encoded.last_hidden_state, input_array, folded=True)
