"""`PerceiverIOByteTokenizer`: exactly transformers' `PerceiverTokenizer` ids, plus character offsets."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer, PerceiverTokenizer

from perceiver_hf import PerceiverIOByteTokenizer, PerceiverIOConfig, PerceiverIOForTokenClassification

TEXTS = [
    "Returns an iterator over all neighbors of node n.",
    "Zoë paid 5 € for 𝔘 (an astral character) at the café.",
    "tabs\tnew\nlines\r\nand\x00control \u00ad\u200b bytes",
    "a [MASK] in the text is the mask token, [SEP] and [PAD] too",
    "",
    " leading and trailing spaces ",
    "日本語のテキスト",
]


@pytest.fixture(scope="module")
def tokenizers():
    return PerceiverIOByteTokenizer(model_max_length=32), PerceiverTokenizer(model_max_length=32)


@pytest.mark.parametrize("text", TEXTS)
def test_ids_are_perceiver_tokenizers(tokenizers, text):
    fast, slow = tokenizers
    assert fast(text)["input_ids"] == slow(text)["input_ids"]
    assert fast(text, add_special_tokens=False)["input_ids"] == slow(text, add_special_tokens=False)["input_ids"]
    assert fast(text, truncation=True)["input_ids"] == slow(text, truncation=True)["input_ids"]
    ids = fast(text)["input_ids"]
    assert fast.decode(ids, skip_special_tokens=True) == slow.decode(ids, skip_special_tokens=True)


def test_pairs_batches_padding_and_special_tokens_are_perceiver_tokenizers(tokenizers):
    fast, slow = tokenizers
    assert fast("ab", "cd")["input_ids"] == slow("ab", "cd")["input_ids"] == [4, 103, 104, 5, 105, 106, 5]
    batch = ["short", "a longer text, é"]
    assert fast(batch, padding=True)["input_ids"] == slow(batch, padding=True)["input_ids"]
    assert fast(batch, padding=True)["attention_mask"] == slow(batch, padding=True)["attention_mask"]
    for name in ("pad", "bos", "eos", "mask", "cls", "sep"):
        assert getattr(fast, f"{name}_token_id") == getattr(slow, f"{name}_token_id")
    assert len(fast) == len(slow) == 262


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_are_the_characters_each_byte_belongs_to(tokenizers, text):
    fast, _ = tokenizers
    encoding = fast(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    expected = [(0, 0)]  # [CLS]
    for index, character in enumerate(text):
        expected += [(index, index + 1)] * len(character.encode("utf-8"))
    expected.append((0, 0))  # [SEP]
    if "[MASK]" not in text:
        assert encoding["offset_mapping"] == expected
    else:  # a special token written in the text is one token covering its characters
        start = text.index("[MASK]")
        assert (start, start + 6) in encoding["offset_mapping"]


def test_a_three_byte_character_is_one_character_in_the_offsets():
    encoding = PerceiverIOByteTokenizer()("5 €", return_offsets_mapping=True)
    assert encoding["input_ids"][1:-1] == [b + 6 for b in "5 €".encode()]
    assert encoding["offset_mapping"][1:-1] == [(0, 1), (1, 2), (2, 3), (2, 3), (2, 3)]


def test_saves_and_reloads_and_auto_tokenizer_finds_it(tmp_path):
    fast = PerceiverIOByteTokenizer(model_max_length=48)
    fast.save_pretrained(tmp_path)
    PerceiverIOForTokenClassification(
        PerceiverIOConfig.for_token_classification(d_model=16, d_latents=32, num_latents=4, num_self_attends_per_block=1,
                                                   num_self_attention_heads=2, num_cross_attention_heads=2, qk_channels=16,
                                                   decoder_num_heads=2, decoder_qk_channels=16, max_position_embeddings=48)
    ).save_pretrained(tmp_path)  # fmt: skip
    for reloaded in (PerceiverIOByteTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(reloaded) is PerceiverIOByteTokenizer and reloaded.model_max_length == 48
        assert reloaded("Zoë")["input_ids"] == [4, 96, 117, 201, 177, 5]


def test_a_folder_with_perceiver_tokenizer_still_loads_perceiver_tokenizer(tmp_path):
    # Registering ours for PerceiverIOConfig must not change what a saved PerceiverTokenizer loads as.
    PerceiverTokenizer(model_max_length=48).save_pretrained(tmp_path)
    PerceiverIOConfig.for_token_classification(num_labels=3).save_pretrained(tmp_path)
    assert type(AutoTokenizer.from_pretrained(tmp_path)) is PerceiverTokenizer


def test_from_slow_keeps_the_length_limit_and_refuses_other_tokenizers(tmp_path):
    fast = PerceiverIOByteTokenizer.from_slow(PerceiverTokenizer(model_max_length=77, padding_side="left"))
    assert (fast.model_max_length, fast.padding_side) == (77, "left")
    with pytest.raises(TypeError, match="Expected a PerceiverTokenizer, got PerceiverIOByteTokenizer"):
        PerceiverIOByteTokenizer.from_slow(fast)
