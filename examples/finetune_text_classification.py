"""Fine-tune `PerceiverIOForSequenceClassification` with transformers' `Trainer` on real text, offline.

    python examples/finetune_text_classification.py --output-dir ./docstring-topics [--max-steps 600]
    python examples/finetune_text_classification.py --model ./language-perceiver ...   # start from a masked LM

The data set is built from text that ships with PyTorch's own dependencies: sentences of the documentation
(docstrings) of NetworkX, a graph library, and of SymPy, a computer algebra system. The task is to tell which
library a sentence documents: graph theory or symbolic mathematics, e.g.

    "Label propagation is complete when all nodes have a label that is in the set of highest frequency labels." -> graphs
    "Reduce a system of rational inequalities with rational coefficients."                        -> mathematics

Sentences are read from the installed packages' source with `ast` (nothing is imported or downloaded), split
deterministically into train and test by a hash of the sentence, and balanced. Without `--model`, a small
Perceiver IO is trained from scratch on raw bytes, which takes a few minutes on a laptop CPU; test accuracy
is printed before and after training (chance is 50%).
"""

from __future__ import annotations

import argparse
import copy
import random
from pathlib import Path

import numpy as np
import torch
from docstring_corpus import docstrings, hash_fraction, prose_paragraphs, sentences, source_files
from transformers import DataCollatorWithPadding, PerceiverTokenizer, Trainer, TrainingArguments, pipeline

import perceiver_hf  # noqa: F401  (registers the Auto classes and pipelines)
from perceiver_hf import PerceiverIOConfig, PerceiverIOForSequenceClassification, PerceiverIOModel
from perceiver_hf.presets import classification_decoder_config

LABELS = {"networkx": "graphs", "sympy": "mathematics"}


def _prose_sentences(docstring: str):
    for paragraph in prose_paragraphs(docstring):
        for sentence in sentences(paragraph):
            letters = sum(ch.isalpha() or ch == " " for ch in sentence)
            if 40 <= len(sentence) <= 200 and sentence[0].isupper() and sentence.endswith(".") and letters > 0.85 * len(sentence):
                yield sentence


def docstring_sentences(package: str, limit: int) -> list[str]:
    """Up to `limit` distinct prose sentences from the docstrings of an installed package (tests excluded)."""
    found: dict[str, None] = {}
    for path in source_files(package):
        for docstring in docstrings(path):
            for sentence in _prose_sentences(docstring):
                found.setdefault(sentence)
        if len(found) >= limit:
            break
    return list(found)[:limit]


def load_dataset(per_class: int = 1500, test_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Balanced (train, test) lists of `{"text", "label"}`; a sentence's split depends only on its text."""
    train, test = [], []
    for label, package in enumerate(LABELS):
        for text in docstring_sentences(package, per_class):
            (test if hash_fraction(text) < test_fraction else train).append({"text": text, "label": label})
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def small_config(max_length: int) -> PerceiverIOConfig:
    """A Perceiver IO small enough to train on a CPU in minutes (about 0.4M parameters)."""
    return PerceiverIOConfig.for_sequence_classification(
        num_labels=len(LABELS),
        max_position_embeddings=max_length,
        d_model=64,
        d_latents=128,
        num_latents=32,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        num_cross_attention_heads=4,
        qk_channels=64,
        hidden_act="gelu",
        id2label=dict(enumerate(LABELS.values())),
        label2id={name: index for index, name in enumerate(LABELS.values())},
    )


def build_model(model: str | None, max_length: int) -> PerceiverIOForSequenceClassification:
    if model is None:
        return PerceiverIOForSequenceClassification(small_config(max_length))
    # A masked-LM checkpoint gives its encoder (input adapter, latents, encoder); the decoder (one query per byte,
    # tied logits) is replaced by a one-query classification decoder that starts from scratch.
    encoder = PerceiverIOModel.from_pretrained(model)
    positions = getattr(encoder.input_adapter, "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise ValueError(
            f"--max-length {max_length} is longer than the {positions} byte positions {model} has learned: "
            f"pass --max-length {positions} or less."
        )
    config = copy.deepcopy(encoder.config)
    config.query_decoder = classification_decoder_config(config.d_latents, use_query_residual=True)
    config.output_adapter = {"type": "classification"}
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS.values()))
    config.label2id = {name: index for index, name in enumerate(LABELS.values())}
    config.architectures = ["PerceiverIOForSequenceClassification"]
    classifier = PerceiverIOForSequenceClassification(config)
    classifier.perceiver.load_state_dict(encoder.state_dict())
    return classifier


def tokenize(examples: list[dict], tokenizer: PerceiverTokenizer, max_length: int) -> list[dict]:
    return [
        {**tokenizer(example["text"], truncation=True, max_length=max_length), "label": example["label"]}
        for example in examples
    ]


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def training_arguments(
    output_dir: str | Path, max_steps: int, batch_size: int, learning_rate: float, logging_steps: int, seed: int
) -> TrainingArguments:
    """The examples' training set-up: AdamW with weight decay, warm-up then a cosine schedule, no checkpoints."""
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        learning_rate=learning_rate,
        weight_decay=0.01,
        warmup_steps=min(50, max_steps // 10),
        lr_scheduler_type="cosine",
        logging_steps=logging_steps,
        save_strategy="no",
        report_to=[],
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )


def make_trainer(
    model: PerceiverIOForSequenceClassification,
    tokenizer: PerceiverTokenizer,
    train: list[dict],
    test: list[dict],
    output_dir: str | Path,
    max_steps: int,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    logging_steps: int = 50,
    seed: int = 0,
) -> Trainer:
    return Trainer(
        model=model,
        args=training_arguments(output_dir, max_steps, batch_size, learning_rate, logging_steps, seed),
        train_dataset=train,
        eval_dataset=test,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("docstring-topics"), help="where the model is saved")
    parser.add_argument(
        "--model",
        help="start from the encoder of this masked-LM checkpoint: a perceiver_hf folder or transformers' "
        "deepmind/language-perceiver (default: a small model from scratch)",
    )
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--per-class", type=int, default=1500, help="sentences read per library")
    parser.add_argument("--max-length", type=int, default=128, help="bytes per sentence (longer ones are truncated)")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    try:
        model = build_model(args.model, args.max_length)
    except ValueError as error:
        parser.error(str(error))
    train, test = load_dataset(args.per_class, seed=args.seed)
    print(f"{len(train)} training and {len(test)} test sentences, labels {list(LABELS.values())}")
    tokenizer = PerceiverTokenizer(model_max_length=args.max_length)
    trainer = make_trainer(
        model,
        tokenizer,
        tokenize(train, tokenizer, args.max_length),
        tokenize(test, tokenizer, args.max_length),
        args.output_dir,
        args.max_steps,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    print(f"test accuracy: {before:.1%} before training, {after:.1%} after {args.max_steps} steps (chance: 50%)")

    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    classifier = pipeline("text-classification", model=str(args.output_dir))
    for example in test[:3]:
        # Truncated as in training: the model has learned positions for --max-length bytes only.
        prediction = classifier(example["text"], truncation=True)[0]
        print(f"{prediction} <- {example['text']!r} (true: {list(LABELS.values())[example['label']]})")


if __name__ == "__main__":
    main()
