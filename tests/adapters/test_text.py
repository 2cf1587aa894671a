"""The text input adapter: byte embeddings + learned positions, and clear errors for inputs it cannot take."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import InputArray, PerceiverIOConfig, PerceiverIOForSequenceClassification
from perceiver_hf.input_adapters import build_input_adapter
from perceiver_hf.input_adapters.text import TextInputAdapter


def small_adapter() -> TextInputAdapter:
    config = PerceiverIOConfig.for_sequence_classification(d_model=16, max_position_embeddings=32)
    return build_input_adapter(config)


def test_embeddings_and_positions_are_added_for_as_many_positions_as_the_input_has():
    adapter = small_adapter()
    input_ids = torch.tensor([[4, 110, 111, 5], [4, 120, 5, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    array = adapter(input_ids, attention_mask=attention_mask)
    assert isinstance(array, InputArray) and array.combine == "add"
    assert adapter.num_channels == array.num_channels == 16
    expected = adapter.embeddings.weight[input_ids] + adapter.position_encoding.position_embeddings[:4]
    torch.testing.assert_close(array.materialize(), expected)
    assert array.attention_mask is attention_mask


@pytest.mark.parametrize(
    "input_ids, message",
    [
        (torch.randint(6, 262, (1, 33)), "at most 32"),
        (torch.randint(6, 262, (7,)), "batch dimension"),
        (torch.randn(1, 7, 16), "integer token ids"),
        (torch.tensor([[4, 300, 5]]), r"\[0, 262\)"),
        (torch.tensor([[4, -1, 5]]), r"\[0, 262\)"),
        (torch.zeros(1, 0, dtype=torch.long), "no tokens"),
        ([[4, 110, 5]], "torch.Tensor"),
    ],
    ids=["too_long", "no_batch", "floats", "id_too_large", "negative_id", "empty", "list"],
)
def test_bad_input_ids_get_a_clear_error(input_ids, message):
    with pytest.raises(ValueError, match=message):
        small_adapter()(input_ids)


def test_attention_mask_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\) but input_ids have shape \(1, 4\)"):
        small_adapter()(torch.tensor([[4, 110, 111, 5]]), attention_mask=torch.ones(1, 3))


def test_too_long_input_through_a_model_names_the_fix():
    config = PerceiverIOConfig.for_sequence_classification(
        d_model=16, d_latents=32, num_latents=4, num_self_attends_per_block=1, qk_channels=16, max_position_embeddings=32
    )
    model = PerceiverIOForSequenceClassification(config).eval()
    with pytest.raises(ValueError, match=r"40 tokens .* at most 32\. Truncate it.*truncation=True"):
        model(input_ids=torch.randint(6, 262, (1, 40)))
