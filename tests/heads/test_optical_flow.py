"""PerceiverIOForOpticalFlow: drop-in parity with transformers' PerceiverForOpticalFlow, bounded-memory decoding,
training with an end-point-error loss, and clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import PerceiverForOpticalFlow, Trainer, TrainingArguments
from transformers.models.perceiver.modeling_perceiver import space_to_depth as transformers_space_to_depth

from perceiver_hf import PerceiverIOConfig, PerceiverIOForOpticalFlow
from perceiver_hf.input_adapters import space_to_depth
from perceiver_hf.presets import OPTICAL_FLOW_CORE, transformers_sizes
from tests.helpers import SMALL_CORE, assert_parity, perturb_, run_module
from tests.helpers import save_transformers_model as save_reference

SMALL = dict(SMALL_CORE, num_blocks=1, num_cross_attention_heads=1)
# transformers' deepmind/optical-flow-perceiver (322 query channels: 64 of patch features, 258 of positions).
OFFICIAL = transformers_sizes(OPTICAL_FLOW_CORE, d_model=322)


def save_transformers_model(folder: Path, train_size, **config) -> torch.nn.Module:
    return save_reference(PerceiverForOpticalFlow, folder, train_size=list(train_size), **config)


def small_model(train_size=(6, 10), **overrides) -> PerceiverIOForOpticalFlow:
    config = PerceiverIOConfig.for_optical_flow(
        train_size=train_size, out_channels=16, num_bands=4, **{**SMALL, **overrides}
    )
    return perturb_(PerceiverIOForOpticalFlow(config).eval())


def test_space_to_depth_matches_transformers():
    frames = torch.randn(2, 4, 3, 6, 8)
    for temporal, spatial in ((2, 1), (1, 2), (2, 2), (4, 1)):
        ours = space_to_depth(frames, temporal, spatial)
        assert torch.equal(ours, transformers_space_to_depth(frames, temporal, spatial))
    images = torch.randn(2, 3, 6, 8)
    assert torch.equal(space_to_depth(images, spatial_block_size=2), transformers_space_to_depth(images, 1, 2))


def test_small_model_matches_transformers(tmp_path):
    reference = save_transformers_model(tmp_path, train_size=(6, 10), **SMALL)
    inputs = torch.randn(2, 2, 27, 6, 10)
    with torch.no_grad():
        expected = reference(inputs=inputs, output_attentions=True, output_hidden_states=True)

    for implementation in ("eager", "sdpa"):
        model = PerceiverIOForOpticalFlow.from_pretrained(tmp_path, attn_implementation=implementation)
        with torch.no_grad():
            output = model(inputs=inputs, output_attentions=True, output_hidden_states=True)
        assert output.logits.shape == (2, 6, 10, 2)
        assert_parity(output.logits, expected.logits)
        for ours, theirs in zip(output.hidden_states, expected.hidden_states, strict=True):
            assert_parity(ours, theirs)
        for ours, theirs in zip(output.attentions, expected.attentions, strict=True):
            assert_parity(ours, theirs)
        # Encoder cross-attention, then the decoder's (one row per pixel).
        for ours, theirs in zip(output.cross_attentions, expected.cross_attentions, strict=True):
            assert_parity(ours, theirs)
        with torch.no_grad():
            ours_tuple = model(inputs=inputs, return_dict=False)
        assert len(ours_tuple) == len(reference(inputs=inputs, return_dict=False)) == 1


@pytest.mark.slow
def test_official_size_model_matches_transformers(tmp_path):
    reference = save_transformers_model(tmp_path, train_size=(368, 496), **OFFICIAL)
    inputs = torch.randn(1, 2, 27, 368, 496)
    with torch.no_grad():
        expected = reference(inputs=inputs).logits
    del reference

    for implementation in ("sdpa", "eager"):
        model = PerceiverIOForOpticalFlow.from_pretrained(tmp_path, attn_implementation=implementation)
        assert sum(p.numel() for p in model.parameters()) == 41_057_134  # DeepMind's count
        assert model.decoder.chunk_size < 368 * 496  # decoded in bounded memory
        with torch.no_grad():
            assert_parity(model(inputs=inputs).logits, expected)
        del model


def test_any_resolution_decodes_every_pixel():
    model = small_model()
    for height, width in ((6, 10), (9, 7), (1, 1)):
        with torch.no_grad():
            assert model(inputs=torch.randn(1, 2, 27, height, width)).logits.shape == (1, height, width, 2)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_chunked_decoding_equals_decoding_at_once(implementation):
    model = small_model(num_latents=16)
    model.config._attn_implementation = implementation
    inputs = torch.randn(2, 2, 27, 12, 20)  # 240 pixels
    with torch.no_grad():
        model.decoder.chunk_size = None
        at_once = model(inputs=inputs, output_attentions=True)
        for chunk_size in (7, 64, 1000):
            model.decoder.chunk_size = chunk_size
            chunked = model(inputs=inputs, output_attentions=True)
            torch.testing.assert_close(chunked.logits, at_once.logits, rtol=0, atol=1e-6)
            torch.testing.assert_close(chunked.cross_attentions[-1], at_once.cross_attentions[-1], rtol=0, atol=1e-6)


def test_default_chunk_size_is_configurable():
    config = PerceiverIOConfig.for_optical_flow(decoder_chunk_size=4096)
    assert config.query_decoder["chunk_size"] == 4096
    assert PerceiverIOConfig.for_optical_flow().query_decoder["chunk_size"] == 16384


def test_labels_give_the_end_point_error_in_pixels():
    model = small_model()
    inputs = torch.randn(2, 2, 27, 6, 10)
    with torch.no_grad():
        flow = model(inputs=inputs).logits * model.flow_scale_factor
    labels = flow + torch.tensor([3.0, 4.0])  # every vector off by 5 pixels
    labels[0, 0, 0] = float("nan")  # unknown ground truth is left out
    labels[1, 2, 3, 1] = float("inf")
    with torch.no_grad():
        loss = model(inputs=inputs, labels=labels).loss
    torch.testing.assert_close(loss, torch.tensor(5.0))


class _ConstantFlowPairs(torch.utils.data.Dataset):
    """Random frame pairs whose ground-truth flow is one constant vector: learnable in a few steps."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(8, 2, 27, 6, 10, generator=generator)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return {"inputs": self.inputs[index], "labels": torch.tensor([2.0, -1.0]).expand(6, 10, 2).clone()}


def test_trainer_fine_tunes_with_end_point_error(tmp_path):
    model = small_model()
    model.train()
    dataset = _ConstantFlowPairs()
    batch = {"inputs": dataset.inputs[:4], "labels": torch.stack([dataset[i]["labels"] for i in range(4)])}
    with torch.no_grad():
        before = model(**batch).loss.item()
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=30,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(model=model, args=arguments, train_dataset=dataset).train()
    with torch.no_grad():
        after = model(**batch).loss.item()
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize(
    "checkpointing", [{}, {"use_reentrant": True}, {"use_reentrant": False}], ids=["default", "reentrant", "non-reentrant"]
)
def test_gradient_checkpointing_gives_the_same_gradients(checkpointing):
    # The input array is read by the encoder and is the decoder's queries too; 4 decoded chunks share the latents'
    # keys and values. Reentrant checkpointing used to backpropagate through both twice.
    model = small_model().train()
    model.decoder.chunk_size = 16
    inputs, labels = torch.randn(1, 2, 27, 6, 10), torch.randn(1, 6, 10, 2)
    model(inputs=inputs, labels=labels).loss.backward()
    # The encoder's key bias gets no gradient: it shifts every logit of a row alike, which softmax ignores.
    plain = {name: p.grad for name, p in model.named_parameters()}
    assert sum(grad is not None and grad.abs().sum() > 0 for grad in plain.values()) >= len(plain) - 1
    model.zero_grad(set_to_none=True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing or None)
    model(inputs=inputs, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        if plain[name] is None:
            assert p.grad is None or not p.grad.any(), name
        else:
            torch.testing.assert_close(p.grad, plain[name], rtol=1e-5, atol=1e-6, msg=name)


def test_an_attention_mask_of_the_wrong_shape_is_named():
    # One row per pixel: a (batch, width) mask, as a text-minded caller might build, is refused with the shape.
    model = small_model()
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 10\), but the input array has 60 rows"):
        model(inputs=torch.randn(2, 2, 27, 6, 10), attention_mask=torch.ones(2, 10))
    masked = model(inputs=torch.randn(2, 2, 27, 6, 10), attention_mask=torch.ones(2, 60)).logits
    assert masked.shape == (2, 6, 10, 2)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (torch.randn(1, 1, 27, 6, 10), "Expected 2 frames"),
        (torch.randn(1, 3, 27, 6, 10), "Expected 2 frames"),
        (torch.randn(1, 2, 3, 6, 10), "Expected 27 channels"),
        (torch.randn(1, 2, 6, 10, 27), "channels-last"),
        (torch.randn(2, 27, 6, 10), "rank-4"),
        (torch.zeros(1, 2, 27, 6, 10, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_inputs_raise_clear_errors(inputs, message):
    model = small_model()
    with pytest.raises(ValueError, match=message) as error:
        model(inputs=inputs)
    assert "PerceiverIOFlowProcessor" in str(error.value)  # says how to fix it


def test_bad_labels_raise_clear_errors():
    model = small_model()
    with pytest.raises(ValueError, match="channels-first"):
        model(inputs=torch.randn(1, 2, 27, 6, 10), labels=torch.randn(1, 2, 6, 10))
    with pytest.raises(ValueError, match="You have to specify `inputs`"):
        model()


def test_convert_transformers_script_writes_a_flow_folder(tmp_path):
    source, target = tmp_path / "transformers", tmp_path / "converted"
    reference = save_transformers_model(source, train_size=(12, 16), **SMALL)
    run_module("conversion.convert_transformers", source, "--output", target, check=True, capture_output=True)
    assert (target / "preprocessor_config.json").is_file()  # the frame-pair processor, for the pipeline
    inputs = torch.randn(1, 2, 27, 12, 16)
    model = PerceiverIOForOpticalFlow.from_pretrained(target)
    with torch.no_grad():
        assert_parity(model(inputs=inputs).logits, reference(inputs=inputs).logits)
