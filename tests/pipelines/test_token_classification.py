"""`pipeline("token-classification")` on a folder with our model and transformers' `PerceiverTokenizer`: every
aggregation strategy, character offsets (bytes are not characters), and no change for other models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.helpers import perturb_
from transformers import PerceiverTokenizer, TokenClassificationPipeline, pipeline

from perceiver_hf import PerceiverIOConfig, PerceiverIOForTokenClassification

LABELS = {0: "O", 1: "CODE", 2: "REF"}
TEXT = "Zoë's naïve sum() costs 5 € in 𝔘 café, x_1 ok"
STRATEGIES = ("none", "simple", "first", "average", "max")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagger")
    torch.manual_seed(0)
    config = PerceiverIOConfig.for_token_classification(
        id2label=LABELS, d_model=16, d_latents=32, num_latents=8, num_self_attends_per_block=1,
        num_self_attention_heads=2, num_cross_attention_heads=2, qk_channels=16, decoder_num_heads=2,
        decoder_qk_channels=16, max_position_embeddings=96,
    )  # fmt: skip
    model = perturb_(PerceiverIOForTokenClassification(config), scale=1.0)
    with torch.no_grad():  # labels that change from byte to byte, so that grouping has something to do
        model.output_adapter.linear.weight.mul_(20.0)
        logits = model(input_ids=torch.tensor([[4] + [b + 6 for b in TEXT.encode()] + [5]])).logits[0]
        model.output_adapter.linear.bias.sub_(logits.mean(0))  # every label wins somewhere
    model.save_pretrained(folder)
    PerceiverTokenizer(model_max_length=96).save_pretrained(folder)  # as users save it today
    return folder


def byte_scores(tagger, text: str) -> np.ndarray:
    """Softmax scores of every byte of `text`, straight from the model."""
    input_ids = torch.tensor([[4] + [b + 6 for b in text.encode()] + [5]])
    with torch.no_grad():
        return tagger.model(input_ids=input_ids).logits[0, 1:-1].softmax(-1).numpy()


def reference(text: str, scores: np.ndarray, strategy: str) -> list[tuple[str, int, int]]:
    """What each strategy must return, computed on characters: (label, start, end) with character offsets."""
    byte_char = [index for index, character in enumerate(text) for _ in character.encode()]
    if strategy in ("none", "simple"):
        units = [(scores[b], byte_char[b], byte_char[b] + 1) for b in range(len(byte_char))]
    else:
        words, start = [], 0  # runs of non-space characters; every space is a word of its own
        for index in range(1, len(text) + 1):
            if index == len(text) or text[index].isspace() or text[index - 1].isspace():
                words.append((start, index))
                start = index
        units = []
        for start, end in words:
            rows = scores[[b for b, c in enumerate(byte_char) if start <= c < end]]
            if strategy == "first":
                row = rows[0]
            elif strategy == "max":
                row = rows[rows.max(axis=1).argmax()]
            else:
                row = rows.mean(axis=0)
            units.append((row, start, end))
    labelled = [(LABELS[int(row.argmax())], start, end) for row, start, end in units]
    if strategy == "none":
        return [entity for entity in labelled if entity[0] != "O"]
    groups = []
    for label, start, end in labelled:  # adjacent units of one label form an entity (no B-/I- tags here)
        if groups and groups[-1][0] == label:
            groups[-1] = (label, groups[-1][1], end)
        else:
            groups.append((label, start, end))
    return [group for group in groups if group[0] != "O"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_gives_character_offsets(folder, strategy):
    tagger = pipeline("token-classification", model=str(folder), aggregation_strategy=strategy)
    entities = tagger(TEXT)
    key = "entity" if strategy == "none" else "entity_group"
    found = [(entity[key], entity["start"], entity["end"]) for entity in entities]
    expected = reference(TEXT, byte_scores(tagger, TEXT), strategy)
    assert len(expected) > 3 and {label for label, _, _ in expected} == {"CODE", "REF"}  # the test tests something
    assert found == expected
    if strategy != "none":
        # A grouped entity's word is the text it covers (whole characters when the group ends on them).
        for entity in entities:
            covered = TEXT[entity["start"] : entity["end"]]
            assert entity["word"] == covered or "\ufffd" in entity["word"]


def test_word_strategies_never_split_a_word_or_a_character(folder):
    tagger = pipeline("token-classification", model=str(folder))
    for strategy in ("first", "average", "max"):
        for entity in tagger(TEXT, aggregation_strategy=strategy):
            start, end = entity["start"], entity["end"]
            assert start == 0 or TEXT[start - 1].isspace() or TEXT[start].isspace(), (strategy, entity)
            assert end == len(TEXT) or TEXT[end].isspace() or TEXT[end - 1].isspace(), (strategy, entity)
            assert entity["word"] == TEXT[start:end]


def test_none_strategy_has_one_entry_per_byte_with_its_characters_offsets(folder):
    tagger = pipeline("token-classification", model=str(folder))
    entries = tagger("5 €", ignore_labels=[])
    assert [(entry["index"], entry["start"], entry["end"]) for entry in entries] == [
        (1, 0, 1), (2, 1, 2), (3, 2, 3), (4, 2, 3), (5, 2, 3)
    ]  # fmt: skip


def test_batches_and_long_texts(folder):
    tagger = pipeline("token-classification", model=str(folder), aggregation_strategy="simple")
    texts = ["Short é.", TEXT]
    for batched, alone in zip(tagger(texts, batch_size=2), [tagger(text) for text in texts]):  # padded, masked
        assert [{**e, "score": 0} for e in batched] == [{**e, "score": 0} for e in alone]
        assert [e["score"] for e in batched] == pytest.approx([e["score"] for e in alone], abs=1e-4)
    # As for every model, the pipeline truncates a text to the model's length (96 bytes: [CLS], 94 bytes, [SEP])...
    long_text = TEXT + " " + TEXT
    assert max(e["end"] for e in tagger(long_text)) <= len(long_text.encode()[:94].decode(errors="ignore"))
    # ...and with a stride, reads it in overlapping windows of that length, offsets into the whole text.
    entities = tagger(long_text, stride=16)
    assert entities and all(0 <= e["start"] < e["end"] <= len(long_text) for e in entities)
    assert max(e["end"] for e in entities) > len(TEXT)


def test_other_models_get_transformers_pipeline_unchanged(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "graph", "node", "##s", "edge", "sum", "(", ")", "."]
    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]")  # fmt: skip
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, id2label={0: "O", 1: "B-X", 2: "I-X"})  # fmt: skip
    perturb_(BertForTokenClassification(config), scale=3.0).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    ours = pipeline("token-classification", model=str(tmp_path))
    theirs = pipeline("token-classification", model=str(tmp_path), pipeline_class=TokenClassificationPipeline)
    text = "the graph nodes sum ( edge ) ."
    for strategy in STRATEGIES:
        assert ours(text, aggregation_strategy=strategy) == theirs(text, aggregation_strategy=strategy)
    assert ours.tokenizer is not None and type(ours.tokenizer) is type(theirs.tokenizer)
