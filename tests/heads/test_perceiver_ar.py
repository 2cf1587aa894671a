"""Perceiver AR as users run it: forward, loss, cache, generate (greedy, beams, sampling, streaming, past the
context), padding, compilation, training (prefix dropout, gradient checkpointing, Trainer), pipelines, bad input."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    PerceiverTokenizer,
    TextStreamer,
    Trainer,
    TrainingArguments,
    pipeline,
)

from perceiver_hf import PerceiverARConfig, PerceiverARForCausalLM
from perceiver_hf.perceiver_ar.inputs import cache_field, drop_prefix_positions
from tests.helpers import assert_parity

pytestmark = pytest.mark.usefixtures("single_thread")


def small_config(**overrides) -> PerceiverARConfig:
    fields = {
        "vocab_size": 262,
        "max_position_embeddings": 48,
        "num_latents": 8,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_rotary_layers": 1,
        "prefix_dropout": 0.0,
    }
    return PerceiverARConfig(**{**fields, **overrides})


def small_model(**overrides) -> PerceiverARForCausalLM:
    torch.manual_seed(0)
    return PerceiverARForCausalLM(small_config(**overrides)).eval()


def prompt(batch: int = 2, length: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(6, 262, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_logits_cover_the_latents_and_the_loss_the_tokens_they_predict():
    model = small_model()
    input_ids = prompt(length=20)
    out = model(input_ids, labels=input_ids, prefix_len=5)
    assert out.logits.shape == (2, 15, 262) and out.prefix_len == 5
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 262), input_ids[:, 6:].reshape(-1))
    assert torch.allclose(out.loss, expected)
    assert model(input_ids).logits.shape == (2, 8, 262)  # default: the last num_latents positions
    full = model(input_ids, prefix_len=5, output_attentions=True, output_hidden_states=True)
    # The cross-attention's weights (latents x prefix + latents), then each self-attention layer's.
    assert [tuple(a.shape) for a in full.attentions] == [(2, 4, 15, 20), (2, 4, 15, 15), (2, 4, 15, 15)]
    assert len(full.hidden_states) == 4 and full.hidden_states[-1].shape == (2, 15, 32)
    assert_parity(full.logits, out.logits, 1e-5)  # eager weights, same numbers


@pytest.mark.parametrize(
    "overrides",
    [{}, {"use_absolute_positions": False, "final_layer_norm": True, "output_bias": False, "num_rotary_layers": -1}],
    ids=["default", "options"],
)
@torch.no_grad()
def test_cached_steps_equal_full_forwards_while_latents_grow(overrides):
    model = small_model(**overrides)
    input_ids = prompt(length=16)
    out = model(input_ids[:, :10], prefix_len=8, use_cache=True)
    cache = out[cache_field(type(out))]  # `cache` in recent transformers, `past_key_values` before
    for end in range(11, 17):
        step = model(input_ids[:, end - 1 : end], past_key_values=cache, use_cache=True).logits[:, -1]
        full = model(input_ids[:, :end], prefix_len=8).logits[:, -1]
        assert_parity(step, full, 1e-5)

    sequences = {
        use_cache: model.generate(
            input_ids[:, :10], num_latents=2, max_new_tokens=6, do_sample=False, use_cache=use_cache
        )
        for use_cache in (False, True)
    }
    assert torch.equal(sequences[False], sequences[True])


def test_beam_search_and_sampling_run_past_the_context():
    model = small_model()
    length = 3 * model.config.max_position_embeddings
    for use_cache in (False, True):
        beams = model.generate(prompt(), num_latents=4, num_beams=3, max_new_tokens=length, use_cache=use_cache)
        assert beams.shape == (2, 12 + length)
    # Beam search reorders the cache (rotary positions included): with and without it the beams agree while
    # the latents grow.
    short = [
        model.generate(prompt(), num_latents=2, num_beams=3, max_new_tokens=5, use_cache=c) for c in (False, True)
    ]
    assert torch.equal(short[0], short[1])
    torch.manual_seed(0)
    sampled = model.generate(
        prompt(), do_sample=True, temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=60, num_return_sequences=2
    )
    assert sampled.shape == (4, 72) and int(sampled.min()) >= 0 and int(sampled.max()) < 262


def test_text_streamer_prints_what_generate_returns():
    model = small_model()
    tokenizer = PerceiverTokenizer()
    streamed = io.StringIO()
    with redirect_stdout(streamed):
        sequences = model.generate(
            prompt(batch=1), max_new_tokens=10, streamer=TextStreamer(tokenizer, skip_prompt=True)
        )
    assert streamed.getvalue().rstrip("\n") == tokenizer.decode(sequences[0, 12:])


@torch.no_grad()
def test_left_padded_rows_agree_with_unpadded_ones():
    model = small_model()
    long, short = prompt(batch=1, length=16)[0], prompt(batch=1, length=11, seed=2)[0]
    batch = torch.stack([long, torch.cat([torch.zeros(5, dtype=torch.long), short])])
    mask = torch.ones_like(batch)
    mask[1, :5] = 0
    padded = model(batch, attention_mask=mask, prefix_len=8).logits
    assert_parity(padded[1], model(short[None], prefix_len=3).logits[0], 1e-5)
    assert_parity(padded[0], model(long[None], prefix_len=8).logits[0], 1e-5)

    generated = model.generate(batch, attention_mask=mask, num_latents=4, max_new_tokens=40, do_sample=False)
    alone = model.generate(short[None], num_latents=4, max_new_tokens=5, do_sample=False)
    assert torch.equal(generated[1, 5:21], alone[0])  # until the padded row's window starts to slide


def test_compiles_to_one_graph():
    model = small_model()
    input_ids = prompt(length=20)
    with torch.no_grad():
        expected = model(input_ids, prefix_len=6, use_cache=False).logits
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        assert_parity(compiled(input_ids, prefix_len=6, use_cache=False).logits, expected, 1e-5)


def test_transformers_exporter_gives_the_eager_logits_and_cache():
    # transformers' exporter compares every tensor of the output, the cache's buffers included: their room for
    # later tokens holds zeros, not uninitialised memory.
    from transformers.exporters.exporter_dynamo import DynamoConfig, DynamoExporter
    from transformers.exporters.utils import get_leaf_tensors

    model, inputs = small_model(), {"input_ids": prompt(length=12)}
    with torch.no_grad():
        eager = get_leaf_tensors(model(**inputs))
        exported = get_leaf_tensors(DynamoExporter().export(model, inputs, config=DynamoConfig(dynamic=False))(**inputs))
    assert "logits" in eager and any(name.endswith("_key_buffer") for name in eager)
    torch.testing.assert_close(exported, eager, rtol=1e-5, atol=1e-5)


def test_prefix_dropout_keeps_the_same_count_in_every_row_in_order():
    prefix = torch.arange(2 * 10, dtype=torch.float32).view(2, 10, 1).expand(-1, -1, 3)
    positions = torch.arange(10).expand(2, -1)
    padding = torch.ones(2, 14, dtype=torch.bool)
    padding[0, :2] = False
    kept, kept_positions, kept_padding = drop_prefix_positions(0.45, prefix, positions, padding)
    assert kept.shape == (2, 6, 3) and kept_positions.shape == (2, 6) and kept_padding.shape == (2, 10)
    for row in range(2):
        assert (kept_positions[row].diff() > 0).all()  # order kept
        assert torch.equal(kept[row, :, 0], prefix[row, kept_positions[row], 0])
    assert torch.equal(kept_padding[0, :6], kept_positions[0] >= 2)

    model = small_model(prefix_dropout=0.5).train()
    seen = []
    # The layer takes (hidden_states, prefix) positionally: reentrant checkpointing replays it from those.
    model.perceiver_ar.cross_attention.register_forward_pre_hook(lambda module, args: seen.append(args[1].shape))
    model(prompt(length=20), prefix_len=12)
    assert seen == [torch.Size([2, 6, 32])]


@pytest.mark.parametrize(
    "checkpointing", [{}, {"use_reentrant": True}, {"use_reentrant": False}], ids=["default", "reentrant", "non-reentrant"]
)
def test_gradient_checkpointing_gives_the_same_gradients(checkpointing):
    input_ids = prompt(length=24)
    gradients, mlp_calls = [], []
    for checkpointed in (False, True):
        model = small_model().train()
        if checkpointed:
            # Reentrant checkpointing replays a layer from its positional tensors only: the prefix must be one.
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
        calls, mlp = [], model.perceiver_ar.cross_attention.mlp
        mlp.forward = lambda hidden, forward=mlp.forward, calls=calls: calls.append(1) or forward(hidden)
        model(input_ids, labels=input_ids, prefix_len=10).loss.backward()
        gradients.append({name: p.grad for name, p in model.named_parameters()})
        mlp_calls.append(len(calls))
    assert mlp_calls == [1, 2]  # recomputed in the backward pass
    for name, gradient in gradients[0].items():
        assert_parity(gradients[1][name], gradient, 1e-5)


def test_trainer_with_labels_equal_to_input_ids(tmp_path):
    model = small_model(prefix_dropout=0.5).train()
    data = [{"input_ids": row, "labels": row} for row in prompt(batch=16, length=40)]
    arguments = TrainingArguments(
        tmp_path,
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1,
        save_strategy="no",
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=data, processing_class=PerceiverTokenizer())
    result = trainer.train()
    assert result.global_step == 4 and torch.isfinite(torch.tensor(result.training_loss))


def test_text_generation_pipeline_on_a_saved_folder(tmp_path):
    model = small_model()
    tokenizer = PerceiverTokenizer(padding_side="left")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.lm_head.weight is reloaded.perceiver_ar.token_embeddings.weight  # tied on loading
    generator = pipeline("text-generation", model=str(tmp_path))
    results = generator(["Hello Perceiver", "Hi"], max_new_tokens=8, do_sample=False, num_latents=4)
    assert all(r[0]["generated_text"].startswith(p) for r, p in zip(results, ["Hello Perceiver", "Hi"]))


def test_bad_input_is_named_with_the_fix():
    model = small_model()
    ids = prompt(length=20)
    with pytest.raises(ValueError, match=r"prefix_len \(20\) is out of range \[0, 20\)"):
        model(ids, prefix_len=20)
    with pytest.raises(ValueError, match="prefix_len"):
        model(ids, prefix_len=-1)
    with pytest.raises(ValueError, match="max_position_embeddings - num_latents = 40"):
        model(prompt(length=48), prefix_len=41)
    with pytest.raises(ValueError, match=r"num_latents=9 is out of range: it must lie in \[1, 8\]"):
        model.generate(ids, num_latents=9)
    with pytest.raises(ValueError, match=r"keep the last 48 \(input_ids\[:, -48:\]"):
        model(prompt(length=49))
    with pytest.raises(ValueError, match="Keep its last 48 tokens"):
        model.generate(prompt(length=49))
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0
    with pytest.raises(ValueError, match="right padding.*padding_side = 'left'"):
        model(ids, attention_mask=mask)
    with pytest.raises(ValueError, match=r"labels must have the shape of input_ids \(2, 20\)"):
        model(ids, labels=ids[:, 1:])
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 262\)"):
        model(ids + 300)
    with pytest.raises(TypeError, match="integer tensor"):
        model(ids.float())
    with pytest.raises(ValueError, match="hidden_size"):
        PerceiverARConfig(hidden_size=30, num_attention_heads=4)
