"""Model cards render from `model_cards/` templates into valid Hub metadata, for every registered task."""

from __future__ import annotations

import dataclasses

import pytest
from huggingface_hub import ModelCard

from conversion.convert_deepmind import build_config, model_card_context, render_task_card
from conversion.deepmind_tasks import TASKS
from perceiver_hf.model_folder import render_model_card

REPORTED_TOP1 = {"imagenet-learned": 72.7, "imagenet-fourier": 79.0, "imagenet-conv": 82.1}


def official_context(task) -> dict:
    config = build_config(task, task.official_config)
    return model_card_context(
        task,
        config,
        task.official_config,
        source=task.url,
        checkpoint_sha256="0" * 64,
        num_parameters=123_456,
        model_id="deepmind/perceiver-io-test",
        command=f"python -m conversion.convert_deepmind --task {task.name} --output out",
    )


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_renders_a_valid_card(name):
    task = TASKS[name]
    card = ModelCard(render_task_card(task, official_context(task)))
    assert card.data.license == "apache-2.0"
    assert card.data.library_name
    assert "perceiver-io" in card.data.tags and "arxiv:2107.14795" in card.data.tags
    assert task.url in card.text and "0" * 64 in card.text
    assert "{{" not in card.text and "{%" not in card.text


@pytest.mark.parametrize("name", sorted(REPORTED_TOP1))
def test_imagenet_cards_report_deepmind_accuracy(name):
    card = ModelCard(render_task_card(TASKS[name], official_context(TASKS[name])))
    assert card.data.pipeline_tag == "image-classification"
    assert card.data.datasets == ["imagenet-1k"]
    (result,) = card.data.eval_results
    assert (result.task_type, result.dataset_type, result.metric_type) == (
        "image-classification",
        "imagenet-1k",
        "accuracy",
    )
    assert result.metric_value == REPORTED_TOP1[name]
    assert f"{REPORTED_TOP1[name]}% top-1" in card.text
    assert 'pipeline("image-classification", model="deepmind/perceiver-io-test")' in card.text


def test_undefined_template_value_is_an_error(tmp_path):
    (tmp_path / "card.md").write_text("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n{{ typo }}\n")
    with pytest.raises(ValueError, match="'typo' is undefined"):
        render_model_card("card.md", {}, templates_dir=tmp_path)


def test_invalid_metadata_is_an_error(tmp_path):
    (tmp_path / "card.md").write_text("---\nlicense: [unclosed\n---\nText\n")
    with pytest.raises(ValueError, match="invalid Hub metadata"):
        render_model_card("card.md", {}, templates_dir=tmp_path)
    (tmp_path / "card.md").write_text("---\ntags: [a]\n---\nText\n")
    with pytest.raises(ValueError, match="no license, library_name"):
        render_model_card("card.md", {}, templates_dir=tmp_path)


def test_task_without_a_template_gets_the_generic_card():
    task = dataclasses.replace(TASKS["imagenet-fourier"], model_card=None)
    card = ModelCard(render_task_card(task, official_context(task)))
    assert card.data.license == "apache-2.0"
    assert "PerceiverIOForImageClassification.from_pretrained" in card.text
