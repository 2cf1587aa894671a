"""Which computation runs each cross-attention: the plain path or one of its algebraic rewrites, chosen from the
shapes of the call and the cost rules below. Every rewrite computes the same function; the planner only picks
the cheaper one where its assumptions hold."""

from __future__ import annotations

import torch

from ..attention import PerceiverIOLayer
from .absorbed_query_output import AbsorbedQueryOutputAttention
from .blockwise_weights import BlockwiseWeightsAttention
from .folded_decoder import can_fold
from .folded_key_values import FoldedKeyValueAttention


def _folding_pays_off(num_queries: int, num_heads: int, kv_dim: int, qk: int, v: int) -> bool:
    # Folded attention costs ~4 N heads C M flops; projecting costs 2 M C (qk + v) plus 2 N M (qk + v).
    return 2 * num_queries * num_heads * kv_dim < (kv_dim + num_queries) * (qk + v)


def _absorbing_pays_off(
    num_queries: int, num_keys: int, num_heads: int, query_dim: int, qk: int, v: int, output_channels: int
) -> bool:
    # Per query, absorbed attention costs heads * keys * (query_dim + 1 + output_channels) flops instead of the
    # query and output projections plus keys * (qk + v); absorbing costs keys * (qk * query_dim + v * output) once.
    usual = num_queries * (query_dim * qk + num_keys * (qk + v) + v * output_channels)
    absorbed = num_keys * (qk * query_dim + v * output_channels) + num_queries * num_heads * num_keys * (
        query_dim + 1 + output_channels
    )
    return absorbed < usual


def _size_hint(size: int) -> int:
    """A concrete size for a cost rule. A symbolic size (under `torch.export`) gives its example value, without the
    guard a comparison would add: the paths a rule chooses between compute the same function, so the traced graph
    is right at every size, and fastest near the example's."""
    if isinstance(size, torch.SymInt):
        from torch.fx.experimental.symbolic_shapes import optimization_hint

        return optimization_hint(size)
    return size


def _weights_readable(layer: PerceiverIOLayer) -> bool:
    # The rewrites read weights outside their modules' forward, where Accelerate's offloading hooks leave them on
    # the meta device: offloaded layers take the plain path.
    return layer.attention.query.weight.device.type != "meta"


def encoder_rewrite(
    layer: PerceiverIOLayer, num_queries: int, output_attentions: bool = False
) -> FoldedKeyValueAttention | BlockwiseWeightsAttention | None:
    """The encoder cross-attention: key/value projections folded into the `num_queries` latents when that is
    cheaper (`2 N heads C < (C + N)(qk + v)`: every DeepMind encoder with one cross-attention head); with its
    weights asked for, the input array read a block of rows at a time (folded or not, as without); `None`: the
    plain path."""
    attention = layer.attention
    if not (attention.is_cross_attention and _weights_readable(layer)):
        return None
    folds = (
        _folding_pays_off(
            num_queries, attention.num_heads, attention.key.in_features, attention.qk_channels, attention.v_channels
        )
        # Folding assumes each attention row sums to one; dropout on the weights breaks that in training.
        and attention.dropout == 0
    )
    if output_attentions:
        return BlockwiseWeightsAttention(layer.maps(), fold_key_values=folds)
    return FoldedKeyValueAttention(layer.maps()) if folds else None


def decoder_rewrite(layer: PerceiverIOLayer, num_queries: int, num_keys: int) -> AbsorbedQueryOutputAttention | None:
    """A decoder cross-attention of `num_queries` queries against `num_keys` latents: query and output
    projections absorbed into the latents' keys and values when there are enough queries for that to pay off;
    `None`: the plain path."""
    attention = layer.attention
    absorbs = (
        attention.is_cross_attention
        and _absorbing_pays_off(
            _size_hint(num_queries),
            num_keys,
            attention.num_heads,
            attention.query.in_features,
            attention.qk_channels,
            attention.v_channels,
            attention.output.out_features,
        )
        and _weights_readable(layer)
    )
    return AbsorbedQueryOutputAttention(layer.maps()) if absorbs else None


def decodes_folded(
    layer: PerceiverIOLayer, num_queries: int, query_channels: int, output_attentions: bool, requested: bool | None = None
) -> bool:
    """Whether to decode factored position queries with the folded decoder: possible for inference (no autograd,
    no attention weights) on a layer it accepts; chosen when there are at least as many queries as query channels
    (below that, precomputing costs more than it saves). `requested` overrides the choice. Never while
    `torch.compile`/`torch.export` trace: folding factors the weights with data-dependent checks."""
    possible = (
        not output_attentions
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and _weights_readable(layer)
        and can_fold(layer.maps())
    )
    if requested and not possible:
        raise ValueError("Folded decoding is for inference: run it under torch.no_grad() and without output_attentions.")
    return possible and num_queries >= query_channels if requested is None else requested


def folds_output_map(num_queries: int, num_outputs: int) -> bool:
    """Folding an output map into the decoder pays off when it is applied to more queries than it has outputs
    (pixels: yes; one label query with 700 classes: no)."""
    return num_queries >= num_outputs
