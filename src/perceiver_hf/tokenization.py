"""A fast byte tokenizer: transformers' `PerceiverTokenizer` ids, with character offsets.

`PerceiverTokenizer` (UTF-8 bytes shifted by six special tokens) is a slow, pure-Python tokenizer: it gives no
offsets, so transformers' token-classification pipeline cannot say where in the text a token lies. This one is
built on the `tokenizers` library: every byte of the UTF-8 text is one token with the same id as
`PerceiverTokenizer` gives it, and `return_offsets_mapping=True` gives the span of the *character* the byte belongs
to (all three bytes of "€" map to that one character). Special tokens are the same (`[PAD]` 0 ... `[SEP]` 5, a
text is `[CLS] ... [SEP]`), and `[MASK]` written in a text is the mask token, as in `PerceiverTokenizer`.

Token strings follow the byte-level convention of GPT-2 and RoBERTa (a space byte is "Ġ"); ids, decoding and
offsets are what matter and are exact.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import PerceiverTokenizer, PreTrainedTokenizerBase
from transformers.tokenization_utils_tokenizers import TokenizersBackend

SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[MASK]", "[CLS]", "[SEP]")


@cache
def _byte_symbols() -> tuple[str, ...]:
    """The printable character standing for each byte in byte-level vocabularies (GPT-2's table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + shifted)
            shifted += 1
    return tuple(symbols[byte] for byte in range(256))


class PerceiverIOByteTokenizer(TokenizersBackend):
    """UTF-8 bytes as tokens, the ids of transformers' `PerceiverTokenizer`, with character offsets.

    ```python
    tokenizer = PerceiverIOByteTokenizer(model_max_length=2048)
    tokenizer("Zoë", return_offsets_mapping=True)
    # {'input_ids': [4, 96, 117, 201, 177, 5], 'attention_mask': [1, 1, 1, 1, 1, 1],
    #  'offset_mapping': [(0, 0), (0, 1), (1, 2), (2, 3), (2, 3), (0, 0)]}
    ```
    """

    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]
    vocab_files_names: ClassVar[dict[str, str]] = {}  # the vocabulary is the 256 bytes: nothing to save

    def __init__(self, model_max_length: int = 2048, **kwargs):
        vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
        vocab.update({symbol: byte + len(SPECIAL_TOKENS) for byte, symbol in enumerate(_byte_symbols())})
        tokenizer = Tokenizer(BPE(vocab=vocab, merges=[], continuing_subword_prefix="", end_of_word_suffix=""))
        # No regex split: every byte is its own token, wherever word boundaries are.
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        self._tokenizer = tokenizer
        for name, token in zip(("pad", "bos", "eos", "mask", "cls", "sep"), SPECIAL_TOKENS):
            kwargs.setdefault(f"{name}_token", token)
        kwargs.pop("tokenizer_object", None)
        kwargs.pop("tokenizer_file", None)
        super().__init__(model_max_length=model_max_length, **kwargs)

    def _encode_plus(self, text, text_pair=None, *args, **kwargs):
        if isinstance(text, (list, tuple)) and not text:  # transformers' batch encoding fails on it with an IndexError
            raise ValueError("Nothing to tokenize: the batch of texts is empty. Give a string or a list of strings.")
        return super()._encode_plus(text, text_pair, *args, **kwargs)

    @classmethod
    def from_slow(cls, tokenizer: PerceiverTokenizer) -> PerceiverIOByteTokenizer:
        """The fast equivalent of a `PerceiverTokenizer`, with its length limit and padding side."""
        if not is_perceiver_byte_tokenizer(tokenizer):
            raise TypeError(f"Expected a PerceiverTokenizer, got {type(tokenizer).__name__}.")
        return cls(
            model_max_length=tokenizer.model_max_length,
            padding_side=tokenizer.padding_side,
            truncation_side=tokenizer.truncation_side,
        )


def is_perceiver_byte_tokenizer(tokenizer: PreTrainedTokenizerBase | None) -> bool:
    """Whether `tokenizer` is transformers' `PerceiverTokenizer` with its standard special tokens."""
    return isinstance(tokenizer, PerceiverTokenizer) and tuple(tokenizer.convert_ids_to_tokens(list(range(6)))) == (
        SPECIAL_TOKENS
    )
