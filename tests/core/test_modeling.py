"""The latent core: shared blocks, chunked decoding, gradient checkpointing, torch.compile."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import PerceiverIOConfig, PerceiverIOForImageClassification, PerceiverIOModel
from perceiver_hf.core.decoder import PerceiverIODecoder
from perceiver_hf.input_array import InputArray
from tests.helpers import assert_parity, perturb_

SMALL = dict(num_latents=8, d_latents=32, num_blocks=3, num_self_attends_per_block=2, num_self_attention_heads=4)


def small_classifier(variant="learned", image_size=16, **overrides) -> PerceiverIOForImageClassification:
    config = PerceiverIOConfig.for_image_classification(variant, image_size=image_size, num_labels=5, **{**SMALL, **overrides})
    return perturb_(PerceiverIOForImageClassification(config)).eval()


def test_blocks_share_their_weights():
    model = small_classifier()
    deeper = small_classifier(num_blocks=8)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in deeper.parameters())
    output = model(pixel_values=torch.randn(1, 3, 16, 16), output_hidden_states=True, output_attentions=True)
    # transformers' layout: the latents before every layer, and after every block.
    assert len(output.hidden_states) == 3 * (2 + 1)
    assert len(output.attentions) == 3 * 2 and output.attentions[0].shape == (1, 4, 8, 8)
    assert output.cross_attentions[0].shape == (1, 1, 8, 16 * 16) and output.cross_attentions[1].shape == (1, 1, 1, 8)


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_decoding_queries_in_chunks_gives_the_same_outputs(chunk_size):
    config = PerceiverIOConfig(
        **SMALL,
        query_decoder={"query": {"type": "trainable", "num_queries": 10, "num_channels": 6}, "num_heads": 2, "output_channels": 3},
    )
    decoder = perturb_(PerceiverIODecoder(config)).eval()
    latents, inputs = torch.randn(2, 8, 32), InputArray(torch.randn(2, 4, 6))
    with torch.no_grad():
        whole, whole_weights = decoder(latents, inputs, output_attentions=True)
        chunked, chunked_weights = decoder(latents, inputs, output_attentions=True, chunk_size=chunk_size)
        shrunk, _ = decoder(latents, inputs, chunk_size=chunk_size, postprocess=lambda out, start, end: out.sum(-1))
    assert whole.shape == (2, 10, 3)
    assert_parity(chunked, whole, 1e-6)
    assert_parity(chunked_weights, whole_weights, 1e-6)
    assert_parity(shrunk, whole.sum(-1), 1e-6)


def test_bare_model_returns_the_latents():
    model = PerceiverIOModel(PerceiverIOConfig.for_image_classification("fourier", **SMALL)).eval()
    output = model(pixel_values=torch.randn(2, 3, 10, 12))  # Fourier positions: any resolution
    assert output.last_hidden_state.shape == (2, 8, 32)
    assert model(pixel_values=torch.randn(2, 3, 10, 12), return_dict=False)[0].shape == (2, 8, 32)


def test_config_return_dict_false_gives_tuples_from_every_forward():
    model = small_classifier("fourier")
    pixel_values = torch.randn(2, 3, 10, 12)
    expected = model(pixel_values=pixel_values, output_hidden_states=True)
    model.config.return_dict = False
    logits, hidden_states = model(pixel_values=pixel_values, output_hidden_states=True)
    assert torch.equal(logits, expected.logits) and len(hidden_states) == len(expected.hidden_states)
    assert model(pixel_values=pixel_values, return_dict=True).logits.shape == (2, 5)


def test_learned_positions_interpolate_on_request():
    model = small_classifier()
    with torch.no_grad():
        assert model(pixel_values=torch.randn(1, 3, 24, 20), interpolate_pos_encoding=True).logits.shape == (1, 5)


def test_gradient_checkpointing_recomputes_layers_and_keeps_gradients(monkeypatch):
    model = small_classifier("conv", image_size=32).train()
    pixel_values, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 3])
    # Count the runs of a layer's MLP (module hooks do not fire during checkpoint recomputation).
    calls, mlp = [], model.perceiver.encoder.self_attention_layers[0].mlp
    monkeypatch.setattr(mlp, "forward", lambda hidden, forward=mlp.forward, **kwargs: calls.append(1) or forward(hidden, **kwargs))

    def gradients():
        model.zero_grad()
        calls.clear()
        model(pixel_values=pixel_values, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    assert len(calls) == 3  # the shared layer runs once per block
    model.activation_checkpointing_enable()
    checkpointed = gradients()
    assert len(calls) == 6  # ... and again in the backward pass
    assert plain.keys() == checkpointed.keys() and len(plain) == len(list(model.parameters()))
    for name in plain:
        assert_parity(checkpointed[name], plain[name], 1e-6)


@pytest.mark.parametrize("variant", ["learned", "fourier"])
def test_compiles_with_fullgraph(variant):
    # input_chunk_size below the input length: the block-wise reading of the input array compiles too.
    model = small_classifier(variant, image_size=16, input_chunk_size=100)
    pixel_values = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits
        compiled = torch.compile(model, fullgraph=True)
        assert_parity(compiled(pixel_values=pixel_values).logits, expected, 1e-5)


def test_inputs_are_cast_to_the_model_dtype():
    model = small_classifier()
    with torch.no_grad():
        logits = model(pixel_values=torch.randn(1, 3, 16, 16, dtype=torch.float64)).logits
    assert logits.dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU form of README's bf16 line")
def test_readme_bf16_training_arguments_train_on_a_cpu(tmp_path):
    from transformers import Trainer, TrainingArguments

    # README: on a CPU, transformers takes bf16 autocast only with use_cpu=True (without it: "Your setup doesn't
    # support bf16/gpu").
    with pytest.raises(ValueError, match="use_cpu"):
        TrainingArguments(output_dir=str(tmp_path), bf16=True)
    arguments = TrainingArguments(
        output_dir=str(tmp_path), bf16=True, use_cpu=True, max_steps=2, per_device_train_batch_size=2,
        report_to=[], save_strategy="no",
    )  # fmt: skip
    model = small_classifier().train()
    dataset = [{"pixel_values": torch.randn(3, 16, 16), "labels": torch.tensor(i % 5)} for i in range(4)]
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset)
    trainer.train()
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    assert losses and torch.isfinite(torch.tensor(losses)).all()
    assert all(p.dtype == torch.float32 for p in model.parameters())
