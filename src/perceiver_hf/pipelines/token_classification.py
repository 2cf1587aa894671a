"""`pipeline("token-classification")` with character offsets for byte-level Perceiver IO models.

Users save transformers' `PerceiverTokenizer` beside their model. It has no offsets, so transformers' pipeline
would return no `start`/`end` and refuse the word-level strategies (`first`, `average`, `max`). For a perceiver_hf
model with that tokenizer, this pipeline tokenizes with `PerceiverIOByteTokenizer` instead (the same ids, with
character offsets) and groups bytes into words by the text itself: a word is a run of non-space characters, and
every byte of a multi-byte character belongs to the word of that character. For every other model and tokenizer
it is transformers' `TokenClassificationPipeline`, unchanged.
"""

from __future__ import annotations

import numpy as np
from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline

from ..core.modeling import PerceiverIOPreTrainedModel
from ..tokenization import PerceiverIOByteTokenizer, is_perceiver_byte_tokenizer


class PerceiverIOTokenClassificationPipeline(TokenClassificationPipeline):
    """transformers' token-classification pipeline; byte-level Perceiver IO models get character offsets."""

    def __init__(self, *args, **kwargs):
        if isinstance(kwargs.get("model"), PerceiverIOPreTrainedModel) and is_perceiver_byte_tokenizer(
            kwargs.get("tokenizer")
        ):
            kwargs["tokenizer"] = PerceiverIOByteTokenizer.from_slow(kwargs["tokenizer"])
        super().__init__(*args, **kwargs)

    def gather_pre_entities(
        self,
        sentence: str,
        input_ids: np.ndarray,
        scores: np.ndarray,
        offset_mapping: list[tuple[int, int]] | None,
        special_tokens_mask: np.ndarray,
        aggregation_strategy: AggregationStrategy,
        word_ids: list[int | None] | None = None,
        word_to_chars_map: list[tuple[int, int]] | None = None,
    ) -> list[dict]:
        if not isinstance(self.tokenizer, PerceiverIOByteTokenizer) or offset_mapping is None:
            return super().gather_pre_entities(
                sentence,
                input_ids,
                scores,
                offset_mapping,
                special_tokens_mask,
                aggregation_strategy,
                word_ids=word_ids,
                word_to_chars_map=word_to_chars_map,
            )
        pre_entities, previous = [], None
        for index, token_scores in enumerate(scores):
            if special_tokens_mask[index]:
                continue
            start, end = (int(offset) for offset in offset_mapping[index])
            word_index = None if word_ids is None else word_ids[index]
            if word_index is not None and word_to_chars_map is not None:
                # Pre-split words: offsets are within each word, words are the caller's.
                start, end = start + word_to_chars_map[word_index][0], end + word_to_chars_map[word_index][0]
                is_subword = previous is not None and previous["word_index"] == word_index
            else:
                same_character = previous is not None and previous["start"] == start
                inside_word = start > 0 and not sentence[start - 1].isspace() and not sentence[start:end].isspace()
                is_subword = same_character or inside_word
            entity = {
                "word": self.tokenizer.convert_ids_to_tokens(int(input_ids[index])),
                "scores": token_scores,
                "start": start,
                "end": end,
                "index": index,
                "is_subword": is_subword,
            }
            pre_entities.append(entity)
            previous = {"start": start, "word_index": word_index}
        return pre_entities

    def postprocess(self, all_outputs, aggregation_strategy=AggregationStrategy.NONE, ignore_labels=None):
        entities = super().postprocess(all_outputs, aggregation_strategy, ignore_labels)
        if isinstance(self.tokenizer, PerceiverIOByteTokenizer) and aggregation_strategy != AggregationStrategy.NONE:
            # A group's word is its span of the text: decoding its bytes would break a character whose bytes
            # were labelled apart (the `simple` strategy groups bytes, not characters).
            sentence = all_outputs[0]["sentence"]
            for entity in entities:
                entity["word"] = sentence[entity["start"] : entity["end"]]
        return entities

    def aggregate_word(self, entities: list[dict], aggregation_strategy: AggregationStrategy) -> dict:
        word = super().aggregate_word(entities, aggregation_strategy)
        if isinstance(self.tokenizer, PerceiverIOByteTokenizer):
            # Keep the word as byte tokens: grouping words into entities decodes them once, whole characters intact.
            word["word"] = "".join(entity["word"] for entity in entities)
        return word
