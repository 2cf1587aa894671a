"""bfloat16 inference for every head: bf16 weights (`from_pretrained(..., dtype=torch.bfloat16)`) and fp32 weights
under autocast, eager and SDPA attention, the fused attention kernel included.

bfloat16 keeps 8 significant bits (relative rounding 2^-9 per operation), so outputs are compared with the fp32
model's at 5e-2 relative to max(1, max |fp32|): a few layers of rounding pass, a wrong path (a dropped bias, a
mismatched dtype, a missing rescaling) does not.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from perceiver_hf.export import ExportableModel
from tests.helpers import relative_error
from tests.helpers.small_heads import BUILDERS, build

BF16_TOLERANCE = 5e-2


class AttentionKernels(TorchDispatchMode):
    """Records the attention operators that run, with the dtype of their queries."""

    def __init__(self):
        super().__init__()
        self.kernels = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "attention" in func.name():
            self.kernels.add((func.name(), args[0].dtype))
        return func(*args, **(kwargs or {}))


def fp32_reference(name: str, folder):
    model = build(name)
    model.save_pretrained(folder)
    exportable = ExportableModel(model)
    with torch.no_grad():
        return exportable.example_inputs, exportable(*exportable.example_inputs)


def check(outputs, references):
    for output, reference in zip(outputs, references, strict=True):
        assert output.dtype == torch.bfloat16
        assert torch.isfinite(output).all()
        assert relative_error(output, reference) <= BF16_TOLERANCE


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_bf16_weights_and_autocast(name, attn_implementation, tmp_path):
    inputs, references = fp32_reference(name, tmp_path)
    head = type(build(name))

    model = head.from_pretrained(tmp_path, dtype=torch.bfloat16, attn_implementation=attn_implementation).eval()
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    with torch.no_grad(), AttentionKernels() as recorded:
        check(ExportableModel(model)(*inputs), references)  # fp32 pixels, audio and labels are cast by the model
    if attn_implementation == "sdpa":
        assert ("aten::_scaled_dot_product_flash_attention_for_cpu", torch.bfloat16) in recorded.kernels

    model = head.from_pretrained(tmp_path, attn_implementation=attn_implementation).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), AttentionKernels() as recorded:
        check(ExportableModel(model)(*inputs), references)
    if attn_implementation == "sdpa":
        assert ("aten::_scaled_dot_product_flash_attention_for_cpu", torch.bfloat16) in recorded.kernels


def test_bf16_full_video_reconstruction(tmp_path):
    """The folded decoding of a whole clip (derived in float64, run in the model's dtype) in bf16 as well."""
    model = build("autoencoder")
    model.save_pretrained(tmp_path)
    inputs = dict(zip(ExportableModel(model).input_names, ExportableModel(model).example_inputs))
    clip = {name: inputs[name] for name in ("audio", "image", "label")}
    with torch.no_grad():
        reference = model.reconstruct(clip)
        bf16 = type(model).from_pretrained(tmp_path, dtype=torch.bfloat16).eval().reconstruct(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model.reconstruct(clip)
    for name in reference:
        assert relative_error(bf16[name], reference[name]) <= BF16_TOLERANCE
        assert relative_error(autocast[name], reference[name]) <= BF16_TOLERANCE
