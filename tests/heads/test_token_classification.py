"""`PerceiverIOForTokenClassification`: one label per byte, transformers' loss conventions, Auto loading, and a
masked LM's folder as the starting point (encoder and decoder kept, a new classifier)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from perceiver_hf import PerceiverIOConfig, PerceiverIOForMaskedLM, PerceiverIOForTokenClassification
from tests.helpers import SMALL_TEXT, assert_parity, perturb_

SMALL = dict(SMALL_TEXT, decoder_num_heads=4, decoder_qk_channels=16)
LABELS = {0: "O", 1: "B-CODE", 2: "I-CODE"}


def token_classifier(**overrides) -> PerceiverIOForTokenClassification:
    config = PerceiverIOConfig.for_token_classification(id2label=LABELS, **{**SMALL, **overrides})
    return perturb_(PerceiverIOForTokenClassification(config).eval())


def test_preset_is_the_masked_lm_architecture_with_a_label_output_adapter():
    config = PerceiverIOConfig.for_token_classification(num_labels=5, max_position_embeddings=512)
    masked_lm = PerceiverIOConfig.for_masked_lm(max_position_embeddings=512)
    assert config.num_labels == 5
    assert config.query_decoder == masked_lm.query_decoder
    assert config.output_adapter == {"type": "token_classification"}
    assert config.input_adapter == masked_lm.input_adapter
    assert (config.d_latents, config.num_latents, config.num_self_attends_per_block) == (1280, 256, 26)
    assert PerceiverIOConfig.for_token_classification(id2label=LABELS).num_labels == 3


def test_one_row_of_logits_per_byte_and_padding_changes_nothing_at_real_positions():
    model = token_classifier()
    input_ids = torch.randint(6, 262, (2, 9))
    padded = torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 9), torch.zeros(2, 5)], dim=1)
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
        assert logits.shape == (2, 9, 3)
        assert_parity(model(input_ids=padded, attention_mask=mask).logits[:, :9], logits)


@pytest.mark.parametrize("overrides", [{"queries_add_inputs": True}, {"query_input_window": 2}])
def test_queries_that_carry_the_input_bytes_read_each_position_and_ignore_padding(overrides):
    model = token_classifier(**overrides)
    input_ids = torch.randint(6, 262, (2, 9))
    padded = torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 9), torch.zeros(2, 5)], dim=1)
    changed = input_ids.clone()
    changed[:, 4] = (changed[:, 4] - 6 + 1) % 256 + 6
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
        assert_parity(model(input_ids=padded, attention_mask=mask).logits[:, :9], logits)
        assert not torch.allclose(model(input_ids=changed).logits[:, 4], logits[:, 4])


def test_class_weights_weight_each_labels_cross_entropy():
    model = token_classifier(class_weights=[0.5, 2.0, 1.0])
    input_ids, labels = torch.randint(6, 262, (2, 10)), torch.randint(0, 3, (2, 10))
    output = model(input_ids=input_ids, labels=labels)
    weight = torch.tensor([0.5, 2.0, 1.0])
    expected = torch.nn.functional.cross_entropy(output.logits.reshape(-1, 3), labels.reshape(-1), weight=weight)
    torch.testing.assert_close(output.loss, expected)


def test_loss_is_cross_entropy_over_labelled_bytes_only():
    model = token_classifier()
    input_ids = torch.randint(6, 262, (2, 10))
    labels = torch.randint(0, 3, (2, 10))
    labels[:, 0] = labels[:, -1] = -100  # special tokens
    labels[1, 6:] = -100  # padding
    output = model(input_ids=input_ids, labels=labels)
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(output.logits[keep], labels[keep])
    torch.testing.assert_close(output.loss, expected)
    output.loss.backward()
    assert model.output_adapter.linear.weight.grad.abs().sum() > 0
    assert model.perceiver.encoder.latents.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.zeros(2, 7, dtype=torch.long), r"labels have shape \(2, 7\) but the logits need \(2, 10\)"),
        (torch.full((2, 10), 3), r"labels must lie in \[0, 3\) or be -100 .*got \[3\]"),
        (torch.full((2, 10), -1), r"got \[-1\]"),
        (torch.zeros(2, 10), "integer class indices, got dtype torch.float32"),
    ],
)
def test_bad_labels_are_refused_clearly(labels, message):
    with pytest.raises(ValueError, match=message):
        token_classifier()(input_ids=torch.randint(6, 262, (2, 10)), labels=labels)


def test_a_config_without_per_position_queries_is_refused():
    config = PerceiverIOConfig.for_sequence_classification(num_labels=3, **{k: v for k, v in SMALL.items() if "decoder" not in k})
    with pytest.raises(ValueError, match="one learned query per input position"):
        PerceiverIOForTokenClassification(config)


def test_auto_class_reloads_a_saved_token_classifier(tmp_path):
    model = token_classifier()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is PerceiverIOForTokenClassification and reloaded.config.id2label == LABELS
    input_ids = torch.randint(6, 262, (3, 11))
    with torch.no_grad():
        assert_parity(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


def test_a_masked_lm_folder_starts_a_token_classifier_keeping_encoder_and_decoder(tmp_path):
    config = PerceiverIOConfig.for_masked_lm(**SMALL)
    masked_lm = perturb_(PerceiverIOForMaskedLM(config))
    masked_lm.save_pretrained(tmp_path / "masked-lm")
    logger = logging.get_logger("perceiver_hf.heads.from_masked_lm")
    with CaptureLogger(logger) as captured:
        model = AutoModelForTokenClassification.from_pretrained(tmp_path / "masked-lm", id2label=LABELS)
    message = captured.out.strip()
    assert "\n" not in message
    assert "kept the encoder and the decoder's 24 position queries and cross-attention" in message
    assert "`output_adapter` (3 labels) start new" in message

    kept = masked_lm.state_dict()
    new = {name for name in model.state_dict() if name not in kept}
    assert new == {"output_adapter.linear.weight", "output_adapter.linear.bias"}
    for name, tensor in model.state_dict().items():
        if name in kept:
            torch.testing.assert_close(tensor, kept[name], rtol=0, atol=0, msg=name)
    # Saved, it is a token classifier of its own: it reloads with its classifier and says nothing.
    model.save_pretrained(tmp_path / "tagger")
    with CaptureLogger(logger) as captured:
        reloaded = PerceiverIOForTokenClassification.from_pretrained(tmp_path / "tagger")
    assert captured.out == ""
    torch.testing.assert_close(reloaded.output_adapter.linear.weight, model.output_adapter.linear.weight)


def test_other_label_counts_need_ignore_mismatched_sizes_as_in_transformers(tmp_path):
    model = token_classifier()
    model.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match=r"output_adapter.linear.bias is \(3,\) in the weights but \(5,\) .*ignore_mismatched_sizes=True"):
        PerceiverIOForTokenClassification.from_pretrained(tmp_path, num_labels=5)
    resized = PerceiverIOForTokenClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert resized(input_ids=torch.randint(6, 262, (1, 6))).logits.shape == (1, 6, 5)
    torch.testing.assert_close(resized.perceiver.encoder.latents, model.perceiver.encoder.latents)


def test_transformers_masked_lm_checkpoint_starts_a_token_classifier(tmp_path):
    from transformers import PerceiverConfig, PerceiverForMaskedLM

    from perceiver_hf import PerceiverIOModel

    config = PerceiverConfig(
        num_latents=8, d_latents=32, d_model=16, num_self_attends_per_block=1, num_self_attention_heads=4,
        num_cross_attention_heads=4, qk_channels=16, v_channels=32, max_position_embeddings=40,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    perturb_(PerceiverForMaskedLM(config)).save_pretrained(tmp_path)
    logger = logging.get_logger("perceiver_hf.heads.from_masked_lm")
    with CaptureLogger(logger) as captured:
        model = PerceiverIOForTokenClassification.from_pretrained(tmp_path, id2label=LABELS)
    assert f"from the masked LM {tmp_path}: kept the encoder and the decoder's 40 position queries" in captured.out
    assert "\n" not in captured.out.strip()
    assert model.config.name_or_path == str(tmp_path)
    encoder = PerceiverIOModel.from_pretrained(tmp_path).state_dict()
    for name, tensor in model.perceiver.state_dict().items():
        torch.testing.assert_close(tensor, encoder[name], rtol=0, atol=0, msg=name)
    assert model(input_ids=torch.randint(6, 262, (2, 9))).logits.shape == (2, 9, 3)
