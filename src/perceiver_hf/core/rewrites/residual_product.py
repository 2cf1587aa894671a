"""A residual added inside the matrix product: `residual + x W^T + b` as one GEMM accumulating into `residual + b`.

A linear layer followed by a residual addition passes over its output three times: `addmm` first writes the
broadcast bias into the output, the product accumulates into it, and the residual is added in a pass of its own.
Starting from `residual + b` and accumulating the product into that (`addmm_`) saves one full pass per layer. On
CPU each element-wise pass is also a synchronisation of all threads, which is what costs most when the cores are
shared with other work (profiles of the latent stack: each pass over a 512 x 1024 tensor cost as much as a twelfth
of a 1 GFLOP product on two busy cores). Both residual additions of a layer are done this way: the attention
output projection's (the query residual, in the plain path and in every rewrite of the attention step) and
the MLP's.
"""

from __future__ import annotations

import torch
from torch import nn


def adds_inside_product(linear: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether `linear` can be bypassed for its weights: a plain `nn.Linear` whose forward nothing wraps (hooks,
    Accelerate's offloading or device hooks, adapters replacing the class), with readable weights of the inputs'
    dtype, outside autocast (which does not cast the operands of in-place products)."""
    return (
        type(linear) is nn.Linear
        and not linear._forward_hooks
        and not linear._forward_pre_hooks
        and "forward" not in vars(linear)
        and linear.weight.device.type != "meta"
        and linear.weight.device == inputs.device
        and linear.weight.dtype == inputs.dtype
        and not torch.is_autocast_enabled(inputs.device.type)
    )


def linear_plus_residual(linear: nn.Linear, inputs: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    """`linear(inputs) + residual`, with the residual added inside the product where `adds_inside_product`;
    `linear(inputs)` when there is no residual."""
    if residual is None:
        return linear(inputs)
    if not adds_inside_product(linear, inputs):
        output = linear(inputs)
        output += residual
        return output
    output = (residual + linear.bias if linear.bias is not None else residual.clone()).contiguous()
    output.view(-1, output.shape[-1]).addmm_(inputs.reshape(-1, inputs.shape[-1]), linear.weight.t())
    return output
