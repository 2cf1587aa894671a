"""`pipeline("fill-mask")` and `pipeline("text-classification")` on saved perceiver_hf folders."""

from __future__ import annotations

import pytest
import torch
from transformers import PerceiverTokenizer, pipeline

from perceiver_hf import PerceiverIOConfig, PerceiverIOForMaskedLM, PerceiverIOForSequenceClassification
from tests.helpers import SMALL_TEXT, perturb_

SMALL = dict(SMALL_TEXT, max_position_embeddings=64)
MASK = "[MASK]"


def save_with_tokenizer(model, folder) -> None:
    model.save_pretrained(folder)
    PerceiverTokenizer(model_max_length=SMALL["max_position_embeddings"]).save_pretrained(folder)


@pytest.fixture(scope="module")
def masked_lm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("masked_lm")
    torch.manual_seed(0)
    config = PerceiverIOConfig.for_masked_lm(decoder_num_heads=4, decoder_qk_channels=16, **SMALL)
    save_with_tokenizer(perturb_(PerceiverIOForMaskedLM(config)), folder)
    return folder


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    config = PerceiverIOConfig.for_sequence_classification(
        num_labels=3, id2label={0: "graphs", 1: "mathematics", 2: "other"}, **SMALL
    )
    save_with_tokenizer(perturb_(PerceiverIOForSequenceClassification(config)), folder)
    return folder


def model_logits(fill, text: str) -> torch.Tensor:
    encoding = fill.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return fill.model(**encoding).logits[0], encoding["input_ids"][0]


def test_fill_mask_predicts_one_masked_byte(masked_lm_folder):
    fill = pipeline("fill-mask", model=str(masked_lm_folder))
    predictions = fill(f"Hello {MASK}orld", top_k=4)
    assert [sorted(p) for p in predictions] == [["score", "sequence", "token", "token_str"]] * 4
    logits, input_ids = model_logits(fill, f"Hello {MASK}orld")
    position = (input_ids == fill.tokenizer.mask_token_id).nonzero().item()
    probabilities = logits[position].softmax(-1)
    assert [p["token"] for p in predictions] == probabilities.topk(4).indices.tolist()
    assert predictions[0]["score"] == pytest.approx(probabilities.max().item(), rel=1e-5)


def test_fill_mask_gives_every_byte_of_a_masked_span_its_predictions(masked_lm_folder):
    # DeepMind's colab masks " missing." (9 bytes) and reads a prediction at each masked position.
    fill = pipeline("fill-mask", model=str(masked_lm_folder))
    text = "This is an incomplete sentence where some words are" + MASK * 9
    predictions = fill(text, top_k=3)
    assert len(predictions) == 9 and all(len(candidates) == 3 for candidates in predictions)
    logits, input_ids = model_logits(fill, text)
    positions = (input_ids == fill.tokenizer.mask_token_id).nonzero().flatten()
    assert [candidates[0]["token"] for candidates in predictions] == logits[positions].argmax(-1).tolist()


def test_fill_mask_survives_predictions_that_are_not_valid_utf8(masked_lm_folder, tmp_path):
    model = PerceiverIOForMaskedLM.from_pretrained(masked_lm_folder)
    with torch.no_grad():
        # Make a lone UTF-8 continuation byte (0x80, id 134) and an unfinished lead byte (0xE2) the top choices.
        model.output_adapter.bias[134] += 100.0
        model.output_adapter.bias[0xE2 + 6] += 90.0
    save_with_tokenizer(model, tmp_path)
    fill = pipeline("fill-mask", model=str(tmp_path))
    predictions = fill(f"Zoë {MASK}{MASK} bytes", top_k=2)
    assert [candidates[0]["token"] for candidates in predictions] == [134, 134]
    assert all(candidates[0]["token_str"] == "\ufffd" for candidates in predictions)
    assert all(candidates[1]["token"] == 0xE2 + 6 for candidates in predictions)
    assert "Zoë" in predictions[0][0]["sequence"] and "\ufffd" in predictions[0][0]["sequence"]


def test_fill_mask_refuses_a_too_long_text_clearly_or_truncates_it(masked_lm_folder):
    fill = pipeline("fill-mask", model=str(masked_lm_folder))
    text = f"{MASK} " + "long text " * 10
    with pytest.raises(ValueError, match="at most 64.*truncation=True"):
        fill(text)
    assert len(fill(text, tokenizer_kwargs={"truncation": True}, top_k=1)) == 1


def test_text_classification_pipeline(classifier_folder):
    classify = pipeline("text-classification", model=str(classifier_folder))
    scores = classify("Returns an iterator over all neighbors of node n.", top_k=None)
    assert sorted(score["label"] for score in scores) == ["graphs", "mathematics", "other"]
    assert sum(score["score"] for score in scores) == pytest.approx(1.0)
    encoding = classify.tokenizer("Returns an iterator over all neighbors of node n.", return_tensors="pt")
    with torch.no_grad():
        probabilities = classify.model(**encoding).logits[0].softmax(-1)
    top = classify("Returns an iterator over all neighbors of node n.")[0]
    assert top["label"] == classify.model.config.id2label[probabilities.argmax().item()]
    assert top["score"] == pytest.approx(probabilities.max().item(), rel=1e-5)
    # A batch of texts of different lengths is padded, and each gets the score it gets alone.
    texts = ["Short.", "A longer sentence about integrating polynomials."]
    batched = classify(texts, batch_size=2)
    assert [result["score"] for result in batched] == pytest.approx([classify(t)[0]["score"] for t in texts], rel=1e-4)


def test_text_classification_refuses_a_too_long_text_clearly_or_truncates_it(classifier_folder):
    classify = pipeline("text-classification", model=str(classifier_folder))
    with pytest.raises(ValueError, match="at most 64"):
        classify("word " * 30)
    assert classify("word " * 30, truncation=True)[0]["label"] in ("graphs", "mathematics", "other")
