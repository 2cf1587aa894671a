"""The language heads' own behaviour: decoding only the input's positions, the padded-query setting, logits
tied to the byte embeddings, Auto-class loading, and clear errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

from perceiver_hf import (
    PerceiverIOConfig,
    PerceiverIOForImageClassification,
    PerceiverIOForMaskedLM,
    PerceiverIOForSequenceClassification,
)
from tests.helpers import SMALL_TEXT, assert_parity, perturb_

SMALL = SMALL_TEXT


def masked_lm(mask_padded_queries: bool = True, **overrides) -> PerceiverIOForMaskedLM:
    torch.manual_seed(0)
    config = PerceiverIOConfig.for_masked_lm(
        mask_padded_queries=mask_padded_queries, decoder_num_heads=4, decoder_qk_channels=16, **{**SMALL, **overrides}
    )
    return perturb_(PerceiverIOForMaskedLM(config).eval())


def padded_pair() -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.randint(6, 262, (2, 12))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 7:], attention_mask[1, 7:] = 0, 0
    return input_ids, attention_mask


def test_official_masked_lm_has_deepmind_parameter_count():
    with torch.device("meta"):
        model = PerceiverIOForMaskedLM(PerceiverIOConfig.for_masked_lm())
    # DeepMind's language_perceiver_io_bytes.pickle: 201,108,230 parameters, the embedding counted once.
    assert sum(p.numel() for p in model.parameters()) == 201_108_230


def test_masked_lm_decodes_one_row_per_input_position():
    model = masked_lm()
    input_ids = torch.randint(6, 262, (2, 9))
    with torch.no_grad():
        assert model(input_ids=input_ids).logits.shape == (2, 9, 262)
        # Positions are absolute: a prefix has the same logits as when padding follows it, masked.
        padded = torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
        mask = torch.cat([torch.ones(2, 9), torch.zeros(2, 5)], dim=1)
        assert_parity(model(input_ids=padded, attention_mask=mask).logits[:, :9], model(input_ids=input_ids).logits)


def test_mask_padded_queries_changes_only_padded_positions():
    input_ids, attention_mask = padded_pair()
    deepmind, transformers_like = masked_lm(True), masked_lm(False)
    with torch.no_grad():
        masked = deepmind(input_ids=input_ids, attention_mask=attention_mask).logits
        unmasked = transformers_like(input_ids=input_ids, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    assert_parity(masked[real], unmasked[real])
    # A masked query's attention output is zero, so every padded position gets the same logits.
    padded = masked[1, 7:]
    assert_parity(padded, padded[:1].expand_as(padded))
    assert (unmasked[1, 7:] - masked[1, 7:]).abs().max() > 1e-3


def test_logits_are_tied_to_the_byte_embeddings():
    model = masked_lm()
    embeddings = model.get_input_embeddings()
    assert embeddings is model.perceiver.input_adapter.embeddings
    vocab_shaped = [name for name, p in model.named_parameters() if p.shape == embeddings.weight.shape]
    assert vocab_shaped == ["perceiver.input_adapter.embeddings.weight"]
    input_ids = torch.tensor([[10, 11, 12]])
    with torch.no_grad():
        before = model(input_ids=input_ids).logits
        embeddings.weight[200] += 1.0  # byte 194, absent from the input: only its logit can change
        after = model(input_ids=input_ids).logits
    changed = (after - before).abs().amax(dim=(0, 1)) > 0
    assert changed.nonzero().flatten().tolist() == [200]


def test_masked_lm_gradients_reach_the_embeddings_through_both_uses():
    model = masked_lm().train()
    input_ids = torch.tensor([[10, 3, 12]])
    loss = model(input_ids=input_ids, labels=torch.tensor([[-100, 100, -100]])).loss
    loss.backward()
    gradient = model.get_input_embeddings().weight.grad
    # Byte 100 is only a target (output use); bytes 10 and 12 are only inputs (input use).
    assert gradient[100].abs().sum() > 0 and gradient[10].abs().sum() > 0 and gradient[12].abs().sum() > 0


def test_chunked_decoding_gives_the_same_logits():
    input_ids, attention_mask = padded_pair()
    whole, chunked = masked_lm(), masked_lm()
    chunked.decoder.chunk_size = 5
    with torch.no_grad():
        assert_parity(
            chunked(input_ids=input_ids, attention_mask=attention_mask).logits,
            whole(input_ids=input_ids, attention_mask=attention_mask).logits,
        )


def test_masked_lm_labels_of_another_length_are_refused():
    with pytest.raises(ValueError, match=r"labels have shape \(1, 2048\).*\(1, 5\)"):
        masked_lm()(input_ids=torch.randint(6, 262, (1, 5)), labels=torch.zeros(1, 2048, dtype=torch.long))


def test_masked_lm_needs_a_text_adapter():
    config = PerceiverIOConfig.for_image_classification("fourier", image_size=(8, 8), num_latents=4, d_latents=16)
    config.query_decoder = {"query": {"type": "trainable", "num_queries": 4, "num_channels": 16}, "final_project": False}
    with pytest.raises(ValueError, match="text input adapter"):
        PerceiverIOForMaskedLM(config)


@pytest.mark.parametrize(
    "auto_class, head, config",
    [
        (AutoModelForMaskedLM, PerceiverIOForMaskedLM, PerceiverIOConfig.for_masked_lm(decoder_num_heads=4, decoder_qk_channels=16, **SMALL)),
        (AutoModelForSequenceClassification, PerceiverIOForSequenceClassification, PerceiverIOConfig.for_sequence_classification(num_labels=4, **SMALL)),
    ],
)
def test_auto_classes_reload_saved_language_heads(tmp_path, auto_class, head, config):
    model = perturb_(head(config).eval())
    model.save_pretrained(tmp_path)
    reloaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(reloaded) is head
    assert reloaded.config.query_decoder == config.query_decoder
    input_ids, attention_mask = padded_pair()
    with torch.no_grad():
        assert_parity(
            reloaded(input_ids=input_ids, attention_mask=attention_mask).logits,
            model(input_ids=input_ids, attention_mask=attention_mask).logits,
        )


def test_text_and_image_classifiers_share_one_implementation():
    from perceiver_hf.heads import PerceiverIOClassifier

    assert issubclass(PerceiverIOForSequenceClassification, PerceiverIOClassifier)
    assert issubclass(PerceiverIOForImageClassification, PerceiverIOClassifier)
    model = PerceiverIOForSequenceClassification(PerceiverIOConfig.for_sequence_classification(num_labels=3, **SMALL))
    with pytest.raises(ValueError, match="both `inputs` and `input_ids`"):
        model(inputs=torch.ones(1, 3, dtype=torch.long), input_ids=torch.ones(1, 3, dtype=torch.long))


def test_a_classifier_started_from_a_masked_lm_gets_a_fresh_classification_decoder(tmp_path):
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging

    masked_lm().save_pretrained(tmp_path / "masked-lm")
    logger = logging.get_logger("perceiver_hf.heads.from_masked_lm")
    with CaptureLogger(logger) as captured:
        model = PerceiverIOForSequenceClassification.from_pretrained(tmp_path / "masked-lm", num_labels=4).eval()
    message = captured.out.strip()
    assert "\n" not in message and "kept the encoder; `decoder`, `output_adapter` (4 labels) start new" in message
    # The classification decoder of `for_sequence_classification`, not the masked LM's per-position one.
    expected = PerceiverIOConfig.for_sequence_classification(num_labels=4, **SMALL)
    assert model.config.query_decoder == expected.query_decoder and model.config.output_adapter == {"type": "classification"}
    assert model.decoder.queries.queries.shape == (1, 32)
    # Fresh even where the masked LM's decoder had weights of the same shape (its perturbed key/value layer norm).
    kv_norm = model.decoder.cross_attention.attention.kv_norm
    assert kv_norm.weight.shape == masked_lm().decoder.cross_attention.attention.kv_norm.weight.shape
    assert torch.equal(kv_norm.weight, torch.ones(32)) and torch.equal(kv_norm.bias, torch.zeros(32))
    input_ids, attention_mask = padded_pair()
    assert model(input_ids=input_ids, attention_mask=attention_mask).logits.shape == (2, 4)
    kept = masked_lm().state_dict()
    for name, tensor in model.state_dict().items():
        if name.startswith("perceiver."):
            torch.testing.assert_close(tensor, kept[name], rtol=0, atol=0, msg=name)
    # Saved, it is a classifier of its own: it reloads whole and says nothing.
    model.save_pretrained(tmp_path / "classifier")
    with CaptureLogger(logger) as captured:
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "classifier").eval()
    assert captured.out == ""
    with torch.no_grad():
        assert_parity(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


def test_transformers_masked_lm_checkpoint_starts_a_classifier(tmp_path):
    from tests.helpers import save_transformers_model

    save_transformers_model(
        "PerceiverForMaskedLM", tmp_path, num_latents=8, d_latents=32, d_model=16, num_self_attends_per_block=1,
        num_self_attention_heads=4, num_cross_attention_heads=4, qk_channels=16, v_channels=32, max_position_embeddings=40,
    )  # fmt: skip
    model = PerceiverIOForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert model.decoder.queries.queries.shape == (1, 32)
    assert model(input_ids=torch.randint(6, 262, (2, 9))).logits.shape == (2, 3)
