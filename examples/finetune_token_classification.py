"""Fine-tune `PerceiverIOForTokenClassification` with transformers' `Trainer` on real text, offline: find the code
in the prose of docstrings.

    python examples/finetune_token_classification.py --output-dir ./docstring-code [--max-steps 600]
    python examples/finetune_token_classification.py --model ./language-perceiver ...   # start from a masked LM
    python examples/finetune_token_classification.py --pretrain-steps 300 ...   # pretrain a small masked LM first

The docstrings of NetworkX and SymPy (installed with PyTorch) mark code in their prose with reST markup:
``double backticks`` around literals and :func:`...`, :class:`...`, :meth:`...` (and the other Python-object
roles) around references to documented objects. Removing the markup leaves plain sentences in which we know which
characters were code; they are tagged with BIO tags, per byte:

    "The domain must either be a field or have an associated fraction field (see :meth:`to_field`)."
    -> "The domain must either be a field or have an associated fraction field (see to_field)."  to_field: REF

Sentences are split into training and held-out data by their source file (a fifth of the files are held out), so
the model is scored on files it never saw. Scores are entity-level precision, recall and F1 as seqeval defines
them (an entity counts only when its type and both ends are right).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch
from docstring_corpus import docstrings, hash_fraction, package_root, prose_paragraphs, sentences, source_files
from finetune_text_classification import training_arguments
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    PerceiverTokenizer,
    Trainer,
    pipeline,
)

import perceiver_hf  # noqa: F401  (registers the Auto classes and pipelines)
from perceiver_hf import (
    PerceiverIOByteTokenizer,
    PerceiverIOConfig,
    PerceiverIOForMaskedLM,
    PerceiverIOForTokenClassification,
)

PACKAGES = ("networkx", "sympy")
ENTITY_TYPES = ("CODE", "REF")
LABELS = ["O"] + [f"{prefix}-{kind}" for kind in ENTITY_TYPES for prefix in ("B", "I")]

# reST inline markup in docstrings: literals, Python-object references, code roles, any other role, default role.
_MARKUP = re.compile(
    r"``(?P<literal>[^`]+?)``"
    r"|:(?:py:)?(?:func|class|meth|attr|obj|mod|exc|data):`(?P<reference>[^`]+)`"
    r"|:(?:samp|code):`(?P<code>[^`]+)`"
    r"|:(?:\w+:)?\w+:`(?P<other>[^`]+)`"
    r"|`(?P<default>[^`]+)`_{0,2}"
)
# Sentences may start with markup: "``G`` is a graph."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`:])")


def _shown(target: str) -> str:
    """The text Sphinx shows for a role's target: `title <target>` -> title, `~a.b.c` -> c, `!x` -> x."""
    titled = re.fullmatch(r"(.+?)\s*<[^<>]*>", target, re.DOTALL)
    if titled:
        return titled.group(1)
    target = target.lstrip("!")
    return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target


def strip_markup(sentence: str) -> tuple[str, list[tuple[int, int, str]]] | None:
    """The sentence without reST markup, and the `(start, end, type)` character spans of what marked code.

    `None` for a sentence whose markup is broken (e.g. a literal cut by the sentence split)."""
    pieces, spans, position, length = [], [], 0, 0
    for match in _MARKUP.finditer(sentence):
        pieces.append(sentence[position : match.start()])
        length += match.start() - position
        kind = "CODE" if match["literal"] is not None or match["code"] is not None else None
        if match["reference"] is not None:
            kind, shown = "REF", _shown(match["reference"])
        elif kind == "CODE":
            shown = match["literal"] if match["literal"] is not None else match["code"]
        else:
            shown = _shown(match["other"]) if match["other"] is not None else match["default"]
        if kind is not None:
            if not shown.strip():
                return None
            spans.append((length, length + len(shown), kind))
        pieces.append(shown)
        length += len(shown)
        position = match.end()
    pieces.append(sentence[position:])
    text = "".join(pieces)
    return None if "`" in text else (text, spans)


def _is_prose(text: str, spans: list[tuple[int, int, str]], max_bytes: int) -> bool:
    outside = "".join(text[start:end] for start, end in zip([0] + [e for _, e, _ in spans], [s for s, _, _ in spans] + [len(text)]))
    letters = sum(ch.isalpha() or ch == " " for ch in outside)
    starts_well = text[:1].isupper() or bool(spans and spans[0][0] == 0)
    return 20 <= len(text) and len(text.encode()) <= max_bytes and text.endswith(".") and starts_well and (
        letters > 0.8 * len(outside)
    )


def file_sentences(path: Path, max_bytes: int) -> list[dict]:
    """Distinct prose sentences of a source file's docstrings, markup stripped, with their code spans."""
    found = {}
    for docstring in docstrings(path):
        for paragraph in prose_paragraphs(docstring):
            for sentence in sentences(paragraph, _SENTENCE_END):
                stripped = strip_markup(sentence)
                if stripped is not None and _is_prose(*stripped, max_bytes) and stripped[0] not in found:
                    found[stripped[0]] = {"text": stripped[0], "spans": stripped[1]}
    return list(found.values())


def load_dataset(
    max_bytes: int = 126, test_fraction: float = 0.2, plain_fraction: float = 0.25, files_per_package: int | None = None
) -> tuple[list[dict], list[dict]]:
    """(train, test) lists of `{"text", "spans", "file"}`, split by source file.

    Every sentence with code is kept, and `plain_fraction` of those without (chosen by a hash of the text), so
    that about half the sentences contain code. `files_per_package` reads only every n-th file, for a quick look."""
    train, test = [], []
    for package in PACKAGES:
        root = package_root(package)
        files = source_files(package)
        step = max(1, len(files) // files_per_package) if files_per_package else 1
        for path in files[::step]:
            name = path.relative_to(root).as_posix()
            held_out = hash_fraction(name) < test_fraction
            for example in file_sentences(path, max_bytes):
                if example["spans"] or hash_fraction(example["text"]) < plain_fraction:
                    (test if held_out else train).append({**example, "file": name})
    return train, test


def character_tags(text: str, spans: list[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * len(text)
    for start, end, kind in spans:
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


def encode(examples: list[dict], tokenizer: PerceiverIOByteTokenizer, max_length: int) -> list[dict]:
    """Byte ids and one label per byte: the first byte of an entity's first character is B-, every other byte of
    the entity I-; special tokens get -100 (no loss)."""
    label_ids = {label: index for index, label in enumerate(LABELS)}
    encoded = []
    for example in examples:
        encoding = tokenizer(example["text"], truncation=True, max_length=max_length, return_offsets_mapping=True)
        tags, labels, previous = character_tags(example["text"], example["spans"]), [], None
        for start, end in encoding.pop("offset_mapping"):
            if start == end:
                labels.append(-100)
                continue
            tag = tags[start]
            if tag.startswith("B-") and previous == start:  # a later byte of the entity's first character
                tag = "I-" + tag[2:]
            labels.append(label_ids[tag])
            previous = start
        encoded.append({**encoding, "labels": labels})
    return encoded


def small_config(max_length: int) -> PerceiverIOConfig:
    """A Perceiver IO small enough to train on a CPU (about 0.4M parameters).

    Every position's query must learn which latents hold its byte, and the latents which bytes to hold: that
    routing appears suddenly after some hundred steps. It appears sooner with one cross-attention head (in the
    encoder and the decoder) and `initializer_range=0.1` (attention is not uniform from the start; see
    `perceiver_hf.demo.digits_config`): on 128 random letters, tagging the capitals took 500 steps this way and
    over 800 with four heads.
    """
    return PerceiverIOConfig.for_token_classification(
        max_position_embeddings=max_length,
        d_model=64,
        d_latents=128,
        num_latents=64,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        num_cross_attention_heads=1,
        qk_channels=64,
        decoder_num_heads=1,
        decoder_qk_channels=64,
        hidden_act="gelu",
        initializer_range=0.1,
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
    )


def build_model(model: str | None, max_length: int) -> PerceiverIOForTokenClassification:
    if model is None:
        return PerceiverIOForTokenClassification(small_config(max_length))
    # A masked LM's folder: its encoder and per-position decoder are kept, the projection to the labels is new.
    return PerceiverIOForTokenClassification.from_pretrained(
        model, id2label=dict(enumerate(LABELS)), label2id={label: index for index, label in enumerate(LABELS)}
    )


def entity_scores(prediction) -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval's default, CoNLL mode) over the labelled bytes."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    predicted = np.argmax(prediction.predictions, axis=-1)
    truth, guess = [], []
    for labels, predictions in zip(prediction.label_ids, predicted):
        keep = labels != -100
        truth.append([LABELS[i] for i in labels[keep]])
        guess.append([LABELS[i] for i in predictions[keep]])
    scores = {
        "precision": precision_score(truth, guess, zero_division=0),
        "recall": recall_score(truth, guess, zero_division=0),
        "f1": f1_score(truth, guess, zero_division=0),
    }
    for kind in ENTITY_TYPES:
        only = [[tag if tag.endswith(kind) else "O" for tag in row] for row in truth]
        guessed = [[tag if tag.endswith(kind) else "O" for tag in row] for row in guess]
        scores[f"f1_{kind}"] = f1_score(only, guessed, zero_division=0)
    # For context, not an entity score: how well bytes inside entities are found, whatever the entity boundaries.
    true_bytes = np.array([tag != "O" for row in truth for tag in row])
    found_bytes = np.array([tag != "O" for row in guess for tag in row])
    overlap = float((true_bytes & found_bytes).sum())
    scores["byte_f1"] = 2 * overlap / max(1.0, float(true_bytes.sum() + found_bytes.sum()))
    return {name: float(value) for name, value in scores.items()}


def make_trainer(model, tokenizer, train: list[dict], test: list[dict], output_dir, max_steps: int,
                 batch_size: int = 32, learning_rate: float = 1e-3, logging_steps: int = 50, seed: int = 0) -> Trainer:  # fmt: skip
    return Trainer(
        model=model,
        args=training_arguments(output_dir, max_steps, batch_size, learning_rate, logging_steps, seed),
        train_dataset=train,
        eval_dataset=test,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=entity_scores,
    )


def pretrain_masked_lm(texts: list[str], tokenizer, output_dir: Path, max_length: int, max_steps: int, seed: int) -> Path:
    """A small byte-level masked LM trained on the training sentences' text (labels unused), saved to a folder."""
    config = small_config(max_length)
    masked_lm_config = PerceiverIOConfig.for_masked_lm(
        max_position_embeddings=max_length,
        decoder_num_heads=config.query_decoder["num_heads"],
        decoder_qk_channels=config.query_decoder["qk_channels"],
        **{key: getattr(config, key) for key in ("d_model", "d_latents", "num_latents", "num_self_attends_per_block",
                                                 "num_self_attention_heads", "num_cross_attention_heads",
                                                 "qk_channels", "hidden_act", "initializer_range")},
    )  # fmt: skip
    model = PerceiverIOForMaskedLM(masked_lm_config)
    trainer = Trainer(
        model=model,
        args=training_arguments(output_dir / "masked-lm-training", max_steps, 32, 1e-3, 50, seed),
        train_dataset=[tokenizer(text, truncation=True, max_length=max_length) for text in texts],
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15),
    )
    trainer.train()
    folder = output_dir / "masked-lm"
    trainer.save_model(folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("docstring-code"), help="where the model is saved")
    parser.add_argument("--model", help="start from this masked LM (a perceiver_hf PerceiverIOForMaskedLM folder, or "
                        "transformers' deepmind/language-perceiver); default: a small model from scratch")
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="first train a small masked LM on the training sentences for this many steps and start "
                        "from it (instead of --model)")  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--max-length", type=int, default=128, help="bytes per sentence, special tokens included")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    train, test = load_dataset(max_bytes=args.max_length - 2)
    counts = {kind: sum(kind == k for e in train + test for _, _, k in e["spans"]) for kind in ENTITY_TYPES}
    print(f"{len(train)} training and {len(test)} held-out sentences (from {len({e['file'] for e in test})} held-out "
          f"files); entities: {counts}")  # fmt: skip
    tokenizer = PerceiverIOByteTokenizer(model_max_length=args.max_length)
    model_source = args.model
    if args.pretrain_steps:
        model_source = str(pretrain_masked_lm([e["text"] for e in train], tokenizer, args.output_dir,
                                              args.max_length, args.pretrain_steps, args.seed))  # fmt: skip
    model = build_model(model_source, args.max_length)
    trainer = make_trainer(model, tokenizer, encode(train, tokenizer, args.max_length), encode(test, tokenizer, args.max_length),
                           args.output_dir, args.max_steps, learning_rate=args.learning_rate, seed=args.seed)  # fmt: skip
    trainer.train()
    scores = trainer.evaluate()
    print("held-out files: " + ", ".join(f"{name[5:]} {value:.3f}" for name, value in scores.items() if name[5:] in
                                         ("precision", "recall", "f1", "f1_CODE", "f1_REF", "byte_f1")))  # fmt: skip

    trainer.save_model(args.output_dir)
    PerceiverTokenizer(model_max_length=args.max_length).save_pretrained(args.output_dir)  # as users save it
    tagger = pipeline("token-classification", model=str(args.output_dir), aggregation_strategy="simple")
    for example in [e for e in test if e["spans"]][:3]:
        found = [(entity["entity_group"], example["text"][entity["start"] : entity["end"]]) for entity in tagger(example["text"])]
        truth = [(kind, example["text"][start:end]) for start, end, kind in example["spans"]]
        print(f"{example['text']!r}\n  found {found}\n  truth {truth}")


if __name__ == "__main__":
    main()
