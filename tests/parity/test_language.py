"""Drop-in parity with transformers' `PerceiverForMaskedLM` and `PerceiverForSequenceClassification`.

Each test saves a transformers model with perturbed random weights, loads the folder with our head's
`from_pretrained` (config and weights converted on the fly) and compares outputs on padded batches, in eager
and SDPA attention, at small sizes and at the official `deepmind/language-perceiver` size. transformers'
masked LM always returns `max_position_embeddings` rows of logits; ours returns one per input position, so
the comparison is on the input's positions.
"""

from __future__ import annotations

import pytest
import torch
from transformers import PerceiverForMaskedLM, PerceiverForSequenceClassification, PerceiverTokenizer

from conversion import convert_transformers
from perceiver_hf import PerceiverIOForMaskedLM, PerceiverIOForSequenceClassification, PerceiverIOModel
from perceiver_hf.presets import LANGUAGE_CORE, transformers_sizes
from tests.helpers import SMALL_CORE, assert_parity, save_transformers_model

HEADS = {
    "masked_lm": (PerceiverForMaskedLM, PerceiverIOForMaskedLM),
    "sequence_classification": (PerceiverForSequenceClassification, PerceiverIOForSequenceClassification),
}
# Two self-attention blocks exercise weight sharing; qk and v channels differ as in the official model.
SMALL = dict(
    SMALL_CORE, d_model=16, num_cross_attention_heads=4, qk_channels=16, v_channels=32, max_position_embeddings=40, num_labels=3
)
# transformers' deepmind/language-perceiver.
OFFICIAL = transformers_sizes(LANGUAGE_CORE, v_channels=1280, max_position_embeddings=2048)


def padded_batch(lengths: list[int], total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random byte ids padded with [PAD] (0) to `total` (default: the longest), and their attention mask."""
    total = total or max(lengths)
    input_ids = torch.zeros(len(lengths), total, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(6, 262, (length,))
        attention_mask[row, :length] = 1
    return input_ids, attention_mask


@pytest.mark.parametrize("head", sorted(HEADS))
def test_small_models_match_transformers_on_padded_batches(head, tmp_path):
    reference = save_transformers_model(HEADS[head][0], tmp_path, **SMALL)
    input_ids, attention_mask = padded_batch([13, 9, 4])
    with torch.no_grad():
        expected = reference(inputs=input_ids, attention_mask=attention_mask, output_attentions=True, output_hidden_states=True)

    for implementation in ("eager", "sdpa"):
        model = HEADS[head][1].from_pretrained(tmp_path, attn_implementation=implementation).eval()
        with torch.no_grad():
            # Without attention weights requested, SDPA really runs its fused kernel.
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            output = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True, output_hidden_states=True)
        if head == "masked_lm":
            assert logits.shape == (3, 13, 262) and expected.logits.shape == (3, 40, 262)
        # transformers ignores the masked LM's query mask, so even padded positions agree.
        assert_parity(logits, expected.logits[:, : logits.shape[1]])
        assert_parity(output.logits, logits)
        # Drop-in: the same output fields, holding the same tensors.
        assert len(output.hidden_states) == len(expected.hidden_states) == 6
        for ours, theirs in zip(output.hidden_states, expected.hidden_states):
            assert_parity(ours, theirs)
        assert len(output.attentions) == len(expected.attentions) == 4
        for ours, theirs in zip(output.attentions, expected.attentions):
            assert_parity(ours, theirs)
        assert len(output.cross_attentions) == len(expected.cross_attentions) == 2
        for ours, theirs in zip(output.cross_attentions, expected.cross_attentions):
            assert_parity(ours, theirs[:, :, : ours.shape[2]])


def test_masked_lm_loss_matches_transformers(tmp_path):
    # transformers' loss needs labels for all its positions, so the input is padded to the full length.
    reference = save_transformers_model(HEADS["masked_lm"][0], tmp_path, **SMALL)
    input_ids, attention_mask = padded_batch([40, 17], total=40)
    labels = torch.full_like(input_ids, -100)
    labels[:, 3:9] = input_ids[:, 3:9]
    input_ids[:, 3:9] = 3  # [MASK]
    model = PerceiverIOForMaskedLM.from_pretrained(tmp_path)
    with torch.no_grad():
        expected = reference(inputs=input_ids, attention_mask=attention_mask, labels=labels)
        output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert_parity(output.loss, expected.loss)
    assert_parity(output.logits, expected.logits)


@pytest.mark.parametrize(
    "num_labels, labels",
    [(3, torch.tensor([2, 0])), (3, torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])), (1, torch.tensor([0.5, -1.5]))],
    ids=["single_label", "multi_label", "regression"],
)
def test_sequence_classification_losses_match_transformers(tmp_path, num_labels, labels):
    reference = save_transformers_model(HEADS["sequence_classification"][0], tmp_path, **{**SMALL, "num_labels": num_labels})
    input_ids, attention_mask = padded_batch([11, 6])
    model = PerceiverIOForSequenceClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        expected = reference(inputs=input_ids, attention_mask=attention_mask, labels=labels).loss
        assert_parity(model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss, expected)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_tuple_outputs_match_transformers(head, tmp_path):
    reference = save_transformers_model(HEADS[head][0], tmp_path, **SMALL)
    input_ids, attention_mask = padded_batch([40, 30], total=40)
    labels = input_ids.clone() if head == "masked_lm" else torch.tensor([1, 2])
    model = HEADS[head][1].from_pretrained(tmp_path)
    with torch.no_grad():
        ours = model(inputs=input_ids, attention_mask=attention_mask, labels=labels, return_dict=False)
        theirs = reference(inputs=input_ids, attention_mask=attention_mask, labels=labels, return_dict=False)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert_parity(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(HEADS))
def test_official_size_models_match_transformers(head, tmp_path):
    # With noise 0.1 on every weight, 27 layers of 1280 channels amplify float32 rounding ~2.5x per layer (the
    # activations grow past 100): both implementations then drift apart from rounding alone. 0.02 keeps the
    # network well-conditioned while still making every weight matter.
    reference = save_transformers_model(HEADS[head][0], tmp_path, noise=0.02, **OFFICIAL, num_labels=2)
    # A short padded input keeps the check quick; the architecture is the official one.
    input_ids, attention_mask = padded_batch([48, 20])
    input_ids, attention_mask = input_ids[:1], attention_mask[:1]
    with torch.no_grad():
        expected = reference(inputs=input_ids, attention_mask=attention_mask).logits
    del reference

    for implementation in ("eager", "sdpa"):
        model = HEADS[head][1].from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert sum(p.numel() for p in model.parameters()) > 190_000_000
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert_parity(logits, expected[:, : logits.shape[1]])
        del model


def test_convert_transformers_script_writes_a_folder_with_the_tokenizer(tmp_path):
    source, target = tmp_path / "transformers", tmp_path / "converted"
    reference = save_transformers_model(HEADS["masked_lm"][0], source, **SMALL)
    PerceiverTokenizer(model_max_length=SMALL["max_position_embeddings"]).save_pretrained(source)
    assert convert_transformers.main([str(source), "--output", str(target)]) == 0
    assert '"model_type": "perceiver_io"' in (target / "config.json").read_text()
    assert PerceiverTokenizer.from_pretrained(target).model_max_length == SMALL["max_position_embeddings"]
    input_ids, attention_mask = padded_batch([25, 12])
    model = PerceiverIOForMaskedLM.from_pretrained(target)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert_parity(logits, reference(inputs=input_ids, attention_mask=attention_mask).logits[:, :25])


def test_bare_encoder_loads_a_transformers_masked_lm_checkpoint(tmp_path):
    reference = save_transformers_model(HEADS["masked_lm"][0], tmp_path, **SMALL)
    input_ids, attention_mask = padded_batch([10, 7])
    encoder = PerceiverIOModel.from_pretrained(tmp_path)
    with torch.no_grad():
        latents = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        expected = reference.perceiver(inputs=input_ids, attention_mask=attention_mask).last_hidden_state
    assert_parity(latents, expected)
