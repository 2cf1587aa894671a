"""The token-classification example (`examples/finetune_token_classification.py`): its data set is real code spans
of docstrings, split by source file, and a few `Trainer` steps make the loss fall."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from tests.helpers import load_example, training_losses

MAX_STEPS = 20


@pytest.fixture(scope="module")
def example():
    return load_example("finetune_token_classification")


@pytest.fixture(scope="module")
def dataset(example):
    # Every 6th source file (about 190): the whole corpus takes tens of seconds to parse.
    return example.load_dataset(files_per_package=100)


@pytest.mark.parametrize(
    "sentence, text, entities",
    [
        ("Use ``G.edges`` instead.", "Use G.edges instead.", [("G.edges", "CODE")]),
        ("See :func:`~networkx.algorithms.dag.ancestors`.", "See ancestors.", [("ancestors", "REF")]),
        ("A :py:class:`Poly` or :meth:`Expr.subs <sympy.Expr.subs>` call.", "A Poly or Expr.subs call.",
         [("Poly", "REF"), ("Expr.subs", "REF")]),
        ("The :math:`x^2` term of `f` is :samp:`{a}x`.", "The x^2 term of f is {a}x.", [("{a}x", "CODE")]),
        ("Broken ``markup.", None, None),
    ],
)  # fmt: skip
def test_markup_is_stripped_and_what_it_marked_is_tagged(example, sentence, text, entities):
    stripped = example.strip_markup(sentence)
    if text is None:
        assert stripped is None
        return
    assert stripped[0] == text
    assert [(text[start:end], kind) for start, end, kind in stripped[1]] == entities


def test_data_set_is_real_prose_with_code_split_by_source_file(example, dataset):
    train, test = dataset
    assert len(train) > 600 and len(test) > 100
    assert not {e["file"] for e in train} & {e["file"] for e in test}
    assert {e["file"].split("/")[0] for e in test} == {"networkx", "sympy"}
    kinds = [kind for e in train + test for _, _, kind in e["spans"]]
    assert kinds.count("CODE") > 500 and kinds.count("REF") > 40
    for e in train[:500]:
        assert "`" not in e["text"] and len(e["text"].encode()) <= 126 and e["text"].endswith(".")
        assert all(0 <= start < end <= len(e["text"]) and e["text"][start:end].strip() for start, end, _ in e["spans"])


def test_labels_are_bio_tags_per_byte(example):
    tokenizer = example.PerceiverIOByteTokenizer(model_max_length=64)
    text = "Call é_f() now."
    (encoded,) = example.encode([{"text": text, "spans": [(5, 10, "REF")]}], tokenizer, 64)
    tags = [example.LABELS[label] if label >= 0 else None for label in encoded["labels"]]
    # [CLS] C a l l ' ' é(2 bytes) _ f ( ) ' ' n o w . [SEP]
    assert tags == [None] + ["O"] * 5 + ["B-REF", "I-REF", "I-REF", "I-REF", "I-REF", "I-REF"] + ["O"] * 5 + [None]


def test_entity_scores_are_seqeval_entity_level(example):
    labels = np.array([[-100, 0, 1, 2, 0, 3, -100]])  # O B-CODE I-CODE O B-REF
    exact = np.eye(5)[[0, 0, 1, 2, 0, 3, 0]][None]
    assert example.entity_scores(EvalPrediction(exact, labels))["f1"] == 1.0
    wrong_end = np.eye(5)[[0, 0, 1, 0, 0, 3, 0]][None]  # CODE one byte short: not an entity match
    scores = example.entity_scores(EvalPrediction(wrong_end, labels))
    assert (scores["precision"], scores["recall"], scores["f1_CODE"], scores["f1_REF"]) == (0.5, 0.5, 0.0, 1.0)
    assert scores["byte_f1"] == pytest.approx(0.8)  # 2 of the 3 entity bytes found, nothing else


def test_a_few_trainer_steps_make_the_loss_fall(example, dataset, tmp_path):
    # The example's model, data and Trainer set-up on 16 short sentences with code, seen every step.
    torch.manual_seed(0)
    train, test = dataset
    tokenizer = example.PerceiverIOByteTokenizer(model_max_length=64)
    short = [e for e in train if e["spans"] and len(e["text"].encode()) <= 62][:16]
    trainer = example.make_trainer(
        example.build_model(None, 64),
        tokenizer,
        example.encode(short, tokenizer, 64),
        example.encode([e for e in test if e["spans"] and len(e["text"].encode()) <= 62][:16], tokenizer, 64),
        tmp_path,
        max_steps=MAX_STEPS,
        batch_size=16,
        learning_rate=2e-3,
        logging_steps=1,
    )
    trainer.train()
    losses = training_losses(trainer)
    assert len(losses) == MAX_STEPS and all(math.isfinite(loss) for loss in losses)
    assert losses[0] > 1.0  # about log(5): five labels, untrained
    assert max(losses[-3:]) < 0.6 * losses[0], losses
    assert 0.0 <= trainer.evaluate()["eval_f1"] <= 1.0


def test_a_masked_lm_folder_starts_the_tagger(example, tmp_path):
    folder = example.pretrain_masked_lm(["Return the graph.", "Sum of x."] * 4, example.PerceiverIOByteTokenizer(),
                                        tmp_path, max_length=32, max_steps=2, seed=0)  # fmt: skip
    tagger = example.build_model(str(folder), 32)
    assert tagger.config.id2label == dict(enumerate(example.LABELS))
    masked_lm = example.PerceiverIOForMaskedLM.from_pretrained(folder)
    torch.testing.assert_close(tagger.perceiver.encoder.latents, masked_lm.perceiver.encoder.latents)
    torch.testing.assert_close(tagger.decoder.queries.queries, masked_lm.decoder.queries.queries)
    assert tagger(input_ids=torch.randint(6, 262, (2, 12))).logits.shape == (2, 12, 5)
