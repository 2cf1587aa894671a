"""Every head under drawn inputs: shapes, dtypes, batch sizes (0 included), masks and labels, right or wrong.
Each call either gives the output a correct call gives (batch first, the head's own sizes, finite for finite
input) or refuses with a `ValueError`/`TypeError` that says something; never an error from deep inside torch."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from perceiver_hf import PerceiverIOConfig, PerceiverIOForTokenClassification
from tests.heads.test_conventions import HEADS, TEXT, Head
from tests.helpers import perturb_

HEADS = {
    **HEADS,
    "token-classification": Head(
        PerceiverIOForTokenClassification,
        lambda: PerceiverIOConfig.for_token_classification(num_labels=3, decoder_num_heads=1, decoder_qk_channels=16, **TEXT),
        lambda batch: {"input_ids": torch.randint(6, 40, (batch, 9))},
    ),
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool]


@cache
def model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return perturb_(HEADS[name].model_class._from_config(HEADS[name].config())).eval()


def outputs_of(name: str, inputs: dict) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        output = model(name)(**inputs)[HEADS[name].output]
    return output if isinstance(output, dict) else {"output": output}


@cache
def reference_shapes(name: str, batch: int) -> dict[str, tuple[int, ...]]:
    """The output shapes of the head's own well-formed inputs."""
    return {key: tuple(value.shape) for key, value in outputs_of(name, HEADS[name].inputs(batch)).items()}


def tensor(draw, shape, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of the drawn shape and dtype, with values a caller might plausibly pass (ids, pixels, 0/1)."""
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator) * draw(st.sampled_from([1.0, 50.0]))
    return values.round().to(dtype) if not dtype.is_floating_point else values.to(dtype)


@st.composite
def calls(draw, name: str) -> tuple[dict, bool]:
    """Forward kwargs and whether they are well formed (so that the output must be too)."""
    batch = draw(st.integers(0, 3))
    inputs = HEADS[name].inputs(batch)
    main = next(iter(inputs.values()))
    well_formed = True
    for key, value in list(inputs.items()):
        if draw(st.booleans()):
            continue  # keep this input as the head's own
        well_formed = False
        if draw(st.integers(0, 7)) == 0:
            inputs[key] = draw(st.sampled_from([value.tolist(), value.numpy(), "text", None]))
            continue
        shape = list(value.shape)
        if draw(st.booleans()):
            axis = draw(st.integers(0, len(shape) - 1))
            shape[axis] = draw(st.integers(0, shape[axis] + 3))
        if draw(st.booleans()) and shape:
            shape = shape[: draw(st.integers(0, len(shape)))] if draw(st.booleans()) else [*shape, 1]
        inputs[key] = tensor(draw, shape, draw(st.sampled_from(DTYPES)))
    if draw(st.booleans()):
        well_formed = False
        shape = draw(st.sampled_from([tuple(main.shape[:2]), (batch,), (batch, 60), (batch + 1, *main.shape[1:2])]))
        inputs["attention_mask"] = tensor(draw, shape, draw(st.sampled_from(DTYPES)))
    if draw(st.booleans()):
        well_formed = False
        shape = draw(st.sampled_from([(batch,), tuple(main.shape[:2]), (batch, 3), (batch + 1,)]))
        labels = tensor(draw, shape, draw(st.sampled_from([torch.int64, torch.float32])))
        inputs["labels"] = labels.tolist() if draw(st.integers(0, 5)) == 0 else labels
    return inputs, well_formed


def check_call(name: str, inputs: dict, well_formed: bool) -> None:
    try:
        with torch.no_grad():
            output = model(name)(**inputs)
    except (ValueError, TypeError) as error:
        assert not well_formed, f"a well-formed call was refused: {error}"
        assert len(str(error)) > 20, f"an error that says nothing: {error!r}"
        return
    main = output[HEADS[name].output]
    main = main if isinstance(main, dict) else {"output": main}
    batch = next(value for value in inputs.values() if isinstance(value, torch.Tensor)).shape[0]
    for key, value in main.items():
        assert value.shape[0] == batch, key
        finite_inputs = all(not v.is_floating_point() or torch.isfinite(v).all() for v in inputs.values() if isinstance(v, torch.Tensor))
        if finite_inputs and value.dtype in (torch.float32, torch.float64):
            assert torch.isfinite(value).all(), key
    if well_formed:
        assert {key: tuple(value.shape) for key, value in main.items()} == reference_shapes(name, batch)
    if output.get("loss") is not None:
        assert output.loss.ndim == 0 and torch.isfinite(output.loss)


@pytest.mark.parametrize("name", HEADS)
def test_a_drawn_call_gives_a_correct_output_or_a_clear_error(name):
    @given(call=calls(name))
    def check(call):
        check_call(name, *call)

    check()


@pytest.mark.parametrize("name", HEADS)
def test_an_empty_batch_gives_an_empty_output_of_the_right_shape(name):
    shapes = reference_shapes(name, 0)
    assert all(shape[0] == 0 for shape in shapes.values())
    assert {key: shape[1:] for key, shape in shapes.items()} == {key: shape[1:] for key, shape in reference_shapes(name, 2).items()}
