"""Every head held to transformers' model conventions, the ones its generic test suite checks: batching
equivalence, eager and SDPA attention agreeing on padded batches (fp32 and bf16), save/load and config round
trips, and `torch.export`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from transformers import AutoConfig

from perceiver_hf import (
    PerceiverIOConfig,
    PerceiverIOForImageClassification,
    PerceiverIOForMaskedLM,
    PerceiverIOForMultimodalAutoencoding,
    PerceiverIOForOpticalFlow,
    PerceiverIOForSequenceClassification,
    PerceiverIOForTimeSeriesForecasting,
    PerceiverIOModel,
)
from tests.helpers import perturb_

CORE = {"num_latents": 8, "d_latents": 16, "num_self_attends_per_block": 2, "num_self_attention_heads": 2, "num_cross_attention_heads": 1}
TEXT = {"vocab_size": 40, "max_position_embeddings": 12, "d_model": 16, "qk_channels": 16, "v_channels": 16, **CORE}


@dataclass
class Head:
    model_class: type
    config: Callable[[], PerceiverIOConfig]
    inputs: Callable[[int], dict]  # batch size -> forward kwargs
    output: str = "logits"


def _text(batch: int) -> dict:
    return {"input_ids": torch.randint(6, 40, (batch, 9))}


HEADS = {
    "model-text": Head(
        PerceiverIOModel,
        lambda: PerceiverIOConfig.for_masked_lm(decoder_num_heads=1, decoder_qk_channels=16, **TEXT),
        lambda batch: {"inputs": torch.randint(6, 40, (batch, 9))},
        output="last_hidden_state",
    ),
    "masked-lm": Head(
        PerceiverIOForMaskedLM,
        lambda: PerceiverIOConfig.for_masked_lm(decoder_num_heads=1, decoder_qk_channels=16, **TEXT),
        _text,
    ),
    "sequence-classification": Head(
        PerceiverIOForSequenceClassification,
        lambda: PerceiverIOConfig.for_sequence_classification(num_labels=3, **TEXT),
        _text,
    ),
    "image-learned": Head(
        PerceiverIOForImageClassification,
        lambda: PerceiverIOConfig.for_image_classification("learned", image_size=8, num_labels=3, **CORE),
        lambda batch: {"pixel_values": torch.randn(batch, 3, 8, 8)},
    ),
    "image-conv": Head(
        PerceiverIOForImageClassification,
        lambda: PerceiverIOConfig.for_image_classification("conv", image_size=16, num_labels=3, **CORE),
        lambda batch: {"pixel_values": torch.randn(batch, 3, 16, 16)},
    ),
    "optical-flow": Head(
        PerceiverIOForOpticalFlow,
        lambda: PerceiverIOConfig.for_optical_flow(train_size=(6, 8), out_channels=16, num_bands=4, **CORE),
        lambda batch: {"inputs": torch.randn(batch, 2, 27, 6, 8)},
    ),
    "multimodal-autoencoding": Head(
        PerceiverIOForMultimodalAutoencoding,
        lambda: PerceiverIOConfig.for_multimodal_autoencoding(
            num_frames=2, image_size=8, audio_samples_per_frame=16, samples_per_patch=8, num_labels=3,
            spatial_patch_size=4, image_num_bands=2, audio_num_bands=2, label_query_channels=8,
            decoder_output_channels=16, decoder_chunk_size=50, **CORE,
        ),
        lambda batch: {"image": torch.rand(batch, 2, 3, 8, 8), "audio": torch.rand(batch, 32, 1) * 2 - 1},
    ),
    "time-series-forecasting": Head(
        PerceiverIOForTimeSeriesForecasting,
        lambda: PerceiverIOConfig.for_time_series_forecasting(
            context_length=12, prediction_length=4, num_channels=2, d_model=16, num_bands=4, **CORE
        ),
        lambda batch: {"past_values": torch.randn(batch, 12, 2)},
        output="prediction_outputs",
    ),
}


def settings(config: PerceiverIOConfig) -> dict:
    """A config's contents, less where it was loaded from (transformers records that on loading)."""
    return {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    head = HEADS[name]
    return perturb_(head.model_class._from_config(head.config(), **kwargs)).eval()


def outputs_of(name: str, model: torch.nn.Module, inputs: dict) -> dict[str, torch.Tensor]:
    """The head's main output as a dict of tensors (the multimodal head's logits are one per modality)."""
    with torch.no_grad():
        output = model(**inputs)[HEADS[name].output]
    return output if isinstance(output, dict) else {"output": output}


@pytest.mark.parametrize("name", HEADS)
def test_each_example_of_a_batch_gives_what_it_gives_alone(name):
    # Algebra, not rounding: float64 on both sides.
    model = build(name).double()
    inputs = {key: value.double() if value.is_floating_point() else value for key, value in HEADS[name].inputs(3).items()}
    batched = outputs_of(name, model, inputs)
    for row in range(3):
        alone = outputs_of(name, model, {key: value[row : row + 1] for key, value in inputs.items()})
        for key in batched:
            torch.testing.assert_close(batched[key][row : row + 1], alone[key], rtol=1e-10, atol=1e-10, msg=key)


def _padded_text_batch() -> dict:
    input_ids = torch.randint(6, 40, (3, 9))
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, -3:] = 0  # right padding
    attention_mask[2, :2] = 0  # left padding
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", ["masked-lm", "sequence-classification", "model-text"])
def test_eager_and_sdpa_agree_on_padded_batches(name, dtype):
    inputs = _padded_text_batch()
    if name == "model-text":
        inputs["inputs"] = inputs.pop("input_ids")
    real = inputs["attention_mask"].bool()
    # The reference is eager attention in float64; each implementation's error is measured against it, and SDPA
    # may not be much worse than eager at the same precision (a tolerance that scales with the dtype's rounding).
    reference = outputs_of(name, build(name, attn_implementation="eager").double(), inputs)["output"]
    errors = {}
    for implementation in ("eager", "sdpa"):
        model = build(name, attn_implementation=implementation).to(dtype)
        output = outputs_of(name, model, inputs)["output"].double()
        if name == "masked-lm":  # padded positions' logits are not compared: only real tokens are predictions
            output, expected = output[real], reference[real]
        else:
            expected = reference
        errors[implementation] = ((output - expected).abs().max() / expected.abs().max().clamp(min=1)).item()
    floor = torch.finfo(dtype).eps * 8
    assert errors["sdpa"] <= 2 * errors["eager"] + floor, errors
    assert errors["eager"] <= (1e-5 if dtype == torch.float32 else 5e-2), errors


@pytest.mark.parametrize("name", HEADS)
def test_save_and_load_give_the_same_model(name, tmp_path):
    model = build(name)
    inputs = HEADS[name].inputs(2)
    model.save_pretrained(tmp_path)
    loaded = HEADS[name].model_class.from_pretrained(tmp_path).eval()
    assert settings(loaded.config) == settings(model.config)
    assert model.state_dict().keys() == loaded.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # Same weights, same outputs; compared in float64, where kernels' summation orders do not show.
    inputs = {key: value.double() if value.is_floating_point() else value for key, value in inputs.items()}
    expected, reloaded = outputs_of(name, model.double(), inputs), outputs_of(name, loaded.double(), inputs)
    for key in expected:
        torch.testing.assert_close(reloaded[key], expected[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", HEADS)
def test_config_round_trips(name, tmp_path):
    config = HEADS[name].config()
    assert settings(PerceiverIOConfig.from_dict(config.to_dict())) == settings(config)
    config.to_json_file(tmp_path / "config.json")
    assert settings(PerceiverIOConfig.from_json_file(tmp_path / "config.json")) == settings(config)
    config.save_pretrained(tmp_path / "folder")
    loaded = AutoConfig.from_pretrained(tmp_path / "folder")
    assert type(loaded) is PerceiverIOConfig and settings(loaded) == settings(config)
    # A second save writes the same file: nothing is added or lost on the way.
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "config.json").read_text() == (tmp_path / "folder" / "config.json").read_text()


EXPORTS = [(name, False) for name in HEADS] + [
    (name, True) for name in ("masked-lm", "image-learned", "optical-flow", "multimodal-autoencoding")
]


@pytest.mark.parametrize(
    ("name", "dynamic_batch"), EXPORTS, ids=[f"{name}-{'dynamic-batch' if dynamic else 'static'}" for name, dynamic in EXPORTS]
)
def test_torch_export_gives_the_eager_outputs(name, dynamic_batch):
    # Exported for inference, under no_grad, as transformers' exporters do (the autoencoder's eager inference then
    # folds its decoder, which tracing leaves out). With a dynamic batch, the program then runs another batch size.
    model = build(name)
    inputs = HEADS[name].inputs(2)
    shapes = {key: {0: torch.export.Dim("batch", max=64)} for key in inputs} if dynamic_batch else None
    with torch.no_grad():
        program = torch.export.export(model, args=(), kwargs=inputs, dynamic_shapes=shapes)
    inputs = HEADS[name].inputs(3) if dynamic_batch else inputs
    with torch.no_grad():
        exported = program.module()(**inputs)[HEADS[name].output]
    exported = exported if isinstance(exported, dict) else {"output": exported}
    expected = outputs_of(name, model, inputs)
    for key in expected:
        torch.testing.assert_close(exported[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)


@pytest.mark.parametrize("name", HEADS)
def test_the_main_input_comes_first_and_inputs_stays_its_keyword_alias(name):
    # transformers' convention: `model(x)` binds x to `main_input_name`; transformers' Perceiver keyword `inputs=`
    # keeps working.
    model = build(name)
    parameters = list(inspect.signature(type(model).forward).parameters)
    assert parameters[1] == type(model).main_input_name, parameters
    if name == "multimodal-autoencoding":
        return  # its main input is the dict `inputs` itself
    inputs = HEADS[name].inputs(2)
    (main,) = inputs.values()
    by_keyword = outputs_of(name, model, {type(model).main_input_name: main})
    with torch.no_grad():
        positional = model(main)[HEADS[name].output]
    torch.testing.assert_close(positional, by_keyword["output"], rtol=0, atol=0)
    torch.testing.assert_close(outputs_of(name, model, {"inputs": main})["output"], by_keyword["output"], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["model-text", "masked-lm", "sequence-classification"])
def test_token_embeddings_get_set_and_resize_with_the_tied_logits_following(name, tmp_path):
    model = build(name)
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding) and embeddings.num_embeddings == model.config.vocab_size == 40
    replacement = torch.nn.Embedding(40, embeddings.embedding_dim)
    model.set_input_embeddings(replacement)
    assert model.get_input_embeddings() is replacement
    inputs = HEADS[name].inputs(2)
    before = outputs_of(name, model, inputs)["output"]

    model.resize_token_embeddings(48, mean_resizing=False)
    assert model.get_input_embeddings().num_embeddings == model.config.vocab_size == 48
    assert model.config.input_adapter["vocab_size"] == 48
    after = outputs_of(name, model, inputs)["output"]
    if name == "masked-lm":  # logits for the 40 old tokens unchanged, 8 new ones from the tied embeddings
        assert after.shape[-1] == 48
        torch.testing.assert_close(after[..., :40], before, rtol=1e-6, atol=1e-6)
        new_token = torch.full((2, 1), 47)
        model(input_ids=torch.cat([inputs["input_ids"], new_token], dim=1))  # an id the old table did not have
    else:
        torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)
    model.save_pretrained(tmp_path)
    loaded = HEADS[name].model_class.from_pretrained(tmp_path).eval()
    assert loaded.config.vocab_size == 48
    # The same weights give the same outputs (in float64, where kernels' summation orders do not show).
    expected = outputs_of(name, model.double(), inputs)["output"]
    torch.testing.assert_close(outputs_of(name, loaded.double(), inputs)["output"], expected, rtol=1e-12, atol=1e-12)


def test_non_text_models_have_no_token_embeddings_to_set():
    model = build("image-learned")
    assert model.get_input_embeddings() is None
    with pytest.raises(ValueError, match="Only text models have token embeddings"):
        model.set_input_embeddings(torch.nn.Embedding(10, 10))
