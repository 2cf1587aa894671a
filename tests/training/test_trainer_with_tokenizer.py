"""`Trainer(..., processing_class=PerceiverTokenizer(...))`, the standard fine-tuning set-up for a text model, trains
the text classifier and the masked language model (it reads the config's text sub-config: the config itself)."""

from __future__ import annotations

import torch
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    PerceiverTokenizer,
    Trainer,
    TrainingArguments,
)

from perceiver_hf import PerceiverIOConfig, PerceiverIOForMaskedLM, PerceiverIOForSequenceClassification
from tests.helpers import training_losses

SMALL = dict(
    d_model=16, d_latents=32, num_latents=8, qk_channels=16, num_self_attends_per_block=1, max_position_embeddings=48
)
SENTENCES = [
    "Returns an iterator over all neighbors of node n.",
    "Compute the shortest path between two nodes.",
    "Simplify the expression using trigonometric identities.",
    "Integrate the function over the given interval.",
] * 4


def train(model, dataset, collator, tokenizer, tmp_path) -> list[float]:
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4, learning_rate=1e-3,
        logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    trainer.save_model(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / "tokenizer_config.json").is_file()  # saved beside the model, for pipelines
    return training_losses(trainer)


def test_trainer_with_the_tokenizer_trains_a_text_classifier(tmp_path):
    tokenizer = PerceiverTokenizer(model_max_length=48)
    config = PerceiverIOConfig.for_sequence_classification(num_labels=2, **SMALL)
    model = PerceiverIOForSequenceClassification(config)
    assert config.get_text_config() is config
    dataset = [
        {**tokenizer(text, truncation=True), "labels": index % 2} for index, text in enumerate(SENTENCES)
    ]
    losses = train(model, dataset, DataCollatorWithPadding(tokenizer), tokenizer, tmp_path)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))


def test_trainer_with_the_tokenizer_trains_a_masked_language_model(tmp_path):
    tokenizer = PerceiverTokenizer(model_max_length=48)
    config = PerceiverIOConfig.for_masked_lm(decoder_num_heads=2, decoder_qk_channels=16, **SMALL)
    model = PerceiverIOForMaskedLM(config)
    assert config.get_text_config() is config and config.vocab_size == len(tokenizer)  # 256 bytes + 6 special tokens
    dataset = [tokenizer(text, truncation=True) for text in SENTENCES]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3)
    losses = train(model, dataset, collator, tokenizer, tmp_path)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
