"""Perceiver AR against krasserm/perceiver-io 0.11.0's own outputs (`../shared/fixtures/perceiver_ar/`).

The fixture folder is exactly what that library's `save_pretrained` writes; it loads through `from_pretrained`,
the Auto classes and the conversion script, and must reproduce the library's logits (eager and SDPA), its greedy
generations with and without the cache through every regime of the moving window, and each step's scores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from conversion.convert_krasserm import main as convert_krasserm
from perceiver_hf import PerceiverARConfig, PerceiverARForCausalLM, PerceiverARModel
from tests.helpers import assert_parity
from tests.pipelines.test_auto_and_pipelines import write_hub_cache

ROOT = Path(__file__).resolve().parents[2]
AR_FIXTURES = Path(os.environ.get("PERCEIVER_HF_AR_FIXTURES", ROOT.parent / "shared" / "fixtures" / "perceiver_ar"))
CASES = sorted(path for path in AR_FIXTURES.glob("*") if (path / "io.npz").is_file()) if AR_FIXTURES.is_dir() else []

pytestmark = [
    pytest.mark.skipif(
        not CASES,
        reason=f"Perceiver AR reference fixtures not found in {AR_FIXTURES} (CI provides ../shared beside the "
        "clone; set PERCEIVER_HF_AR_FIXTURES to their folder)",
    ),
    pytest.mark.usefixtures("single_thread"),
]


def forward_prefixes(io: dict) -> list[int]:
    """The prefix lengths of the case's reference forwards (sizes differ between fixtures)."""
    names = [name for name in io if name.startswith("forward_logits_prefix")]
    return sorted(int(name.removeprefix("forward_logits_prefix")) for name in names)


@pytest.fixture(scope="module", params=CASES, ids=lambda path: path.name)
def case(request):
    return request.param, dict(np.load(request.param / "io.npz"))


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def model(request, case):
    folder, _ = case
    return PerceiverARForCausalLM.from_pretrained(folder / "model", attn_implementation=request.param).eval()


@torch.no_grad()
def test_forward_logits_of_the_latent_positions(model, case):
    _, io = case
    input_ids = torch.from_numpy(io["forward_input_ids"])
    prefixes = forward_prefixes(io)
    assert prefixes
    for prefix_len in prefixes:
        logits = model(input_ids, prefix_len=prefix_len).logits
        assert logits.shape == (input_ids.shape[0], input_ids.shape[1] - prefix_len, model.config.vocab_size)
        assert_parity(logits, io[f"forward_logits_prefix{prefix_len}"])


@torch.no_grad()
def test_left_padded_batch(model, case):
    _, io = case
    mask = torch.from_numpy(io["padded_attention_mask"])
    input_ids = torch.from_numpy(io["padded_input_ids"])
    prefix_len = input_ids.shape[1] - io["padded_logits"].shape[1]
    assert_parity(model(input_ids, attention_mask=mask, prefix_len=prefix_len).logits, io["padded_logits"])


@pytest.mark.parametrize("use_cache", [False, True], ids=["no-cache", "cache"])
def test_greedy_generation_through_every_regime(model, case, use_cache):
    _, io = case
    key = "cache" if use_cache else "nocache"
    prompt = torch.from_numpy(io["generate_prompt"])
    expected = io[f"generate_{key}_sequences"]
    out = model.generate(
        prompt,
        num_latents=2,
        max_new_tokens=expected.shape[1] - prompt.shape[1],
        do_sample=False,
        use_cache=use_cache,
        output_scores=True,
        return_dict_in_generate=True,
    )
    # The run goes past max_position_embeddings, so the window slides.
    assert out.sequences.shape[1] > model.config.max_position_embeddings
    np.testing.assert_array_equal(out.sequences.numpy(), expected)
    assert_parity(torch.stack(out.scores, dim=1), io[f"generate_{key}_scores"])


def test_greedy_generation_from_left_padded_prompts(model, case):
    _, io = case
    prompt = torch.from_numpy(io["generate_padded_prompt"])
    expected = io["generate_padded_sequences"]
    sequences = model.generate(
        prompt,
        attention_mask=torch.from_numpy(io["generate_padded_attention_mask"]),
        num_latents=3,
        max_new_tokens=expected.shape[1] - prompt.shape[1],
        do_sample=False,
        use_cache=True,
    )
    np.testing.assert_array_equal(sequences.numpy(), expected)


@torch.no_grad()
def test_auto_classes_and_bare_model_load_krasserm_folders(case):
    folder, io = case
    config = AutoConfig.from_pretrained(folder / "model")  # recognised, not "unknown model type"
    assert config.model_type == "perceiver-ar-causal-language-model"
    model = AutoModelForCausalLM.from_pretrained(folder / "model").eval()
    assert isinstance(model, PerceiverARForCausalLM) and isinstance(model.config, PerceiverARConfig)
    input_ids = torch.from_numpy(io["forward_input_ids"])
    bare = PerceiverARModel.from_pretrained(folder / "model").eval()
    prefix_len = forward_prefixes(io)[-1]
    hidden = bare(input_ids, prefix_len=prefix_len).last_hidden_state
    assert_parity(model.lm_head(hidden), io[f"forward_logits_prefix{prefix_len}"])


def test_conversion_script_writes_a_checked_safetensors_folder(case, tmp_path, capsys):
    folder, io = case
    output = tmp_path / "converted"
    assert convert_krasserm([str(folder / "model"), "--output", str(output)]) == 0
    assert (output / "model.safetensors").is_file() and not (output / "pytorch_model.bin").exists()
    assert "Perceiver AR" in (output / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(output).eval()
    assert model.config.model_type == "perceiver_ar"
    with torch.no_grad():
        prefix_len = forward_prefixes(io)[0]
        logits = model(torch.from_numpy(io["forward_input_ids"]), prefix_len=prefix_len).logits
        assert_parity(logits, io[f"forward_logits_prefix{prefix_len}"])

    # Not a krasserm folder: a clear error, nothing written.
    with pytest.raises(SystemExit):
        convert_krasserm([str(output), "--output", str(tmp_path / "x")])
    assert "perceiver-ar-causal-language-model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_hub_ids_load_from_the_hub_cache(case, tmp_path):
    folder, io = case
    write_hub_cache(tmp_path / "hub", "krasserm/perceiver-ar-tiny", folder / "model")
    model = AutoModelForCausalLM.from_pretrained(
        "krasserm/perceiver-ar-tiny", cache_dir=tmp_path / "hub", local_files_only=True
    ).eval()
    prefix_len = forward_prefixes(io)[0]
    with torch.no_grad():
        logits = model(torch.from_numpy(io["forward_input_ids"]), prefix_len=prefix_len).logits
    assert_parity(logits, io[f"forward_logits_prefix{prefix_len}"])
    assert model.config.name_or_path == "krasserm/perceiver-ar-tiny"
