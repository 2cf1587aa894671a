"""The fine-tuning example (`examples/finetune_text_classification.py`) trains for real: its loss falls."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import PerceiverTokenizer

from tests.helpers import load_example, training_losses

MAX_STEPS = 20


@pytest.fixture(scope="module")
def example():
    return load_example("finetune_text_classification")


def test_docstring_dataset_is_balanced_real_prose_split_by_text(example):
    train, test = example.load_dataset(per_class=100)
    assert len(train) + len(test) == 200
    assert {e["label"] for e in train} == {e["label"] for e in test} == {0, 1}
    assert not {e["text"] for e in train} & {e["text"] for e in test}
    assert all(40 <= len(e["text"]) <= 200 and e["text"].endswith(".") for e in train + test)
    # The split depends only on a sentence's text, not on the seed that shuffles.
    assert sorted(e["text"] for e in test) == sorted(e["text"] for e in example.load_dataset(per_class=100, seed=1)[1])


def test_a_few_trainer_steps_make_the_loss_fall(example, tmp_path):
    # The example's own model, data and Trainer set-up, on 16 sentences seen every step: a few steps must fit them.
    torch.manual_seed(0)
    max_length = 96
    train, test = example.load_dataset(per_class=100)
    tokenizer = PerceiverTokenizer(model_max_length=max_length)
    model = example.build_model(None, max_length)
    trainer = example.make_trainer(
        model,
        tokenizer,
        example.tokenize(train[:16], tokenizer, max_length),
        example.tokenize(test[:16], tokenizer, max_length),
        tmp_path,
        max_steps=MAX_STEPS,
        batch_size=16,
        learning_rate=1e-3,
        logging_steps=1,
    )
    trainer.train()
    losses = training_losses(trainer)
    assert len(losses) == MAX_STEPS and all(math.isfinite(loss) for loss in losses)
    assert losses[0] > 0.6  # about log(2): two classes, untrained
    assert max(losses[-3:]) < 0.7 * losses[0], losses
    assert 0.0 <= trainer.evaluate()["eval_accuracy"] <= 1.0


def test_a_masked_lm_folder_starts_a_classifier_with_its_encoder(example, tmp_path):
    from perceiver_hf import PerceiverIOConfig, PerceiverIOForMaskedLM

    torch.manual_seed(0)
    config = PerceiverIOConfig.for_masked_lm(
        d_model=16, d_latents=32, num_latents=8, num_self_attends_per_block=1, num_self_attention_heads=2,
        num_cross_attention_heads=2, qk_channels=16, decoder_num_heads=2, decoder_qk_channels=16,
        max_position_embeddings=32,
    )  # fmt: skip
    masked_lm = PerceiverIOForMaskedLM(config)
    masked_lm.save_pretrained(tmp_path)
    classifier = example.build_model(str(tmp_path), max_length=32)
    assert classifier.config.id2label == {0: "graphs", 1: "mathematics"}
    encoder = masked_lm.perceiver.state_dict()
    for name, tensor in classifier.perceiver.state_dict().items():
        torch.testing.assert_close(tensor, encoder[name], rtol=0, atol=0, msg=name)
    logits = classifier(input_ids=torch.randint(6, 262, (3, 20))).logits
    assert logits.shape == (3, 2)


def test_the_example_runs_to_its_last_line_with_a_short_max_length(example, tmp_path, capsys):
    # README's command with a short --max-length: the final pipeline demo truncates as training did.
    example.main(["--max-steps", "3", "--per-class", "200", "--max-length", "64", "--output-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed
    predictions = [line for line in printed.splitlines() if " <- " in line]
    assert len(predictions) == 3 and all("'label': " in line for line in predictions)
    assert any(len(line.split(" <- ")[1]) > 64 + 30 for line in predictions)  # a sentence longer than 64 bytes


def test_a_max_length_beyond_the_given_models_positions_is_refused_before_training(example, tmp_path, capsys):
    from perceiver_hf import PerceiverIOConfig, PerceiverIOForMaskedLM

    config = PerceiverIOConfig.for_masked_lm(
        d_model=16, d_latents=32, num_latents=8, num_self_attends_per_block=1, num_self_attention_heads=2,
        num_cross_attention_heads=2, qk_channels=16, decoder_num_heads=2, decoder_qk_channels=16,
        max_position_embeddings=32,
    )  # fmt: skip
    PerceiverIOForMaskedLM(config).save_pretrained(tmp_path / "masked-lm")
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--model", str(tmp_path / "masked-lm"), "--max-length", "64", "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "--max-length 64 is longer than the 32 byte positions" in message and "--max-length 32 or less" in message
    assert not (tmp_path / "out").exists()
