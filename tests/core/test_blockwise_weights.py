"""The encoder's cross-attention weights (`output_attentions=True`) come out of the block-by-block path: equal to
the eager attention's on the whole array within 1e-6 (the same projections, folded where the encoder folds them),
to the plain path's in float64 (the algebra), rows summing to one, the input array read one block of rows at a time."""

from __future__ import annotations

import pytest
import torch

from perceiver_hf import PerceiverIOConfig, PerceiverIOForImageClassification, PerceiverIOForTokenClassification
from perceiver_hf.core.rewrites import planner
from perceiver_hf.core.rewrites.blockwise_weights import BlockwiseWeightsAttention
from perceiver_hf.core.rewrites.folded_key_values import FoldedKeyValueAttention
from perceiver_hf.input_array import InputArray
from tests.helpers import assert_parity, perturb_

TINY = dict(num_latents=8, d_latents=32, num_self_attends_per_block=1, num_self_attention_heads=2)


def eager_reference(model, input_array: InputArray, folded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder cross-attention's output and weights with eager attention over the whole array at once: the plain
    path (full-length keys and values) or the folded one (the full-length normalised array)."""
    encoder = model.perceiver.encoder
    latents = encoder.latents.expand(input_array.batch_size, -1, -1)
    mask = None if input_array.attention_mask is None else input_array.attention_mask.bool()[:, None, None, :]
    rewrite = FoldedKeyValueAttention(encoder.cross_attention.maps()) if folded else None
    return encoder.cross_attention(latents, input_array, attention_mask=mask, output_attentions=True, rewrite=rewrite)


def assert_equal_to_eager(weights: torch.Tensor, eager: torch.Tensor, exact: torch.Tensor) -> None:
    """Within 1e-6 of the eager float32 weights, or twice the eager weights' own distance to the float64 ones where
    the inputs make float32 rounding larger than that (the bound must not depend on one machine's summation order)."""
    tolerance = max(1e-6, 2 * (eager.double() - exact).abs().max().item())
    error = (weights.double() - eager.double()).abs().max().item()
    assert error <= tolerance, f"blockwise weights differ from eager ones by {error:.3g} > {tolerance:.3g}"


def record_reads(monkeypatch, length: int) -> list[tuple[int, int]]:
    """Every block of rows read from input arrays of `length` rows; a whole-array read is recorded as (0, None)."""
    reads, rows = [], InputArray.rows

    def read(self, start=0, end=None):
        if self.length == length:
            reads.append((start, end))
        return rows(self, start, end)

    monkeypatch.setattr(InputArray, "rows", read)
    return reads


def text_model(**overrides) -> PerceiverIOForTokenClassification:
    sizes = dict(d_model=16, qk_channels=16, num_cross_attention_heads=2, input_chunk_size=5, **TINY)
    config = PerceiverIOConfig.for_token_classification(
        num_labels=3, decoder_num_heads=2, decoder_qk_channels=16, max_position_embeddings=64, **{**sizes, **overrides}
    )
    return perturb_(PerceiverIOForTokenClassification(config).eval(), scale=1.0)


@pytest.mark.slow
def test_imagenet_sized_weights_come_out_one_block_of_rows_at_a_time(monkeypatch):
    # 224x224 pixels with learned positions: 50,176 input rows, read 4,096 at a time, key/value projections folded.
    config = PerceiverIOConfig.for_image_classification("learned", num_labels=3, num_blocks=1, **TINY)
    model = perturb_(PerceiverIOForImageClassification(config).eval(), scale=1.0)
    layer = model.perceiver.encoder.cross_attention
    rewrite = planner.encoder_rewrite(layer, config.num_latents, output_attentions=True)
    assert isinstance(rewrite, BlockwiseWeightsAttention) and hasattr(rewrite.projections, "normalize")  # folded
    pixel_values = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        plain = model(pixel_values=pixel_values)
        reads = record_reads(monkeypatch, 50176)
        output = model(pixel_values=pixel_values, output_attentions=True)
        monkeypatch.undo()
        _, eager = eager_reference(model, model.perceiver.input_adapter(pixel_values), folded=True)
        model.double()
        exact_output = model(pixel_values=pixel_values.double(), output_attentions=True)
        _, exact = eager_reference(model, model.perceiver.input_adapter(pixel_values.double()))
    assert reads and all(end is not None and end - start <= 4096 for start, end in reads)  # never the whole array
    weights = output.cross_attentions[0]
    assert weights.shape == eager.shape == (2, 1, 8, 50176)
    assert_equal_to_eager(weights, eager, exact)
    torch.testing.assert_close(weights.double().sum(-1), torch.ones(2, 1, 8, dtype=torch.float64), rtol=0, atol=1e-6)
    # fp32 through eager attention and through SDPA: the parity tolerance (float64 checks the algebra below)
    assert_parity(output.logits, plain.logits)
    # The algebra: in float64 the folded blocks give the plain path's weights (full-length keys).
    torch.testing.assert_close(exact_output.cross_attentions[0], exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("folded, heads, num_latents", [(True, 2, 8), (False, 4, 32)])
def test_weights_with_a_padding_mask_folded_or_not(folded, heads, num_latents):
    model = text_model(num_cross_attention_heads=heads, num_latents=num_latents)
    layer = model.perceiver.encoder.cross_attention
    rewrite = planner.encoder_rewrite(layer, num_latents, output_attentions=True)
    assert isinstance(rewrite, BlockwiseWeightsAttention) and hasattr(rewrite.projections, "normalize") == folded
    key_rows = []
    layer.attention.kv_norm.register_forward_hook(lambda module, args, output: key_rows.append(args[0].shape[1]))
    input_ids = torch.randint(6, 262, (2, 23))
    attention_mask = torch.ones(2, 23)
    attention_mask[1, 17:] = 0
    with torch.no_grad():
        output = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        assert folded or (key_rows and max(key_rows) <= 5)  # keys and values of one 5-row block at a time
        _, eager = eager_reference(model, model.perceiver.input_adapter(input_ids, attention_mask), folded)
        plain = model(input_ids=input_ids, attention_mask=attention_mask)
        model.double()
        exact_output = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        _, exact = eager_reference(model, model.perceiver.input_adapter(input_ids, attention_mask))
    weights = output.cross_attentions[0]
    assert_equal_to_eager(weights, eager, exact)
    assert weights[1, ..., 17:].abs().max() == 0  # padding gets no attention
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, num_latents))
    # fp32 through eager attention and through SDPA: the parity tolerance (float64 checks the algebra below)
    assert_parity(output.logits, plain.logits)
    torch.testing.assert_close(exact_output.cross_attentions[0], exact, rtol=0, atol=1e-12)


def test_gradients_through_the_blockwise_path_are_the_plain_ones():
    model = text_model().train().double()  # the algebra, compared in float64
    input_ids = torch.randint(6, 262, (2, 12))
    labels = torch.randint(0, 3, (2, 12))
    gradients = []
    for output_attentions in (False, True):
        model.zero_grad()
        output = model(input_ids=input_ids, labels=labels, output_attentions=output_attentions)
        (output.loss + (output.cross_attentions[0].square().sum() * 0 if output_attentions else 0)).backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys()
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, rtol=1e-9, atol=1e-12, msg=name)


def test_a_batch_without_examples_gives_empty_weights():
    model = text_model()
    with torch.no_grad():
        output = model(input_ids=torch.zeros(0, 7, dtype=torch.long), output_attentions=True)
    assert output.logits.shape == (0, 7, 3)
    assert output.cross_attentions[0].shape == (0, 2, 8, 7)
