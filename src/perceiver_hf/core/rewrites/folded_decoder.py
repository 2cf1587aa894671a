"""Inference-time algebra for decoding hundreds of thousands of position queries.

A full video reconstruction asks the decoder for 804,737 outputs, each a 1,026-channel query that goes
through a layer norm, a query projection, attention over the latents, an output projection, a layer norm,
a 1,026-wide MLP and two linear maps down to 3 pixel values (or 16 audio samples). Computed as written, that
is ~9 MFLOP per query. Most of it is linear algebra that can be done once per call instead of per query:

* Query side. Position queries factor into per-grid-dimension tables (`FactoredQueries`): a pixel's query is
  `T_t[t] + T_h[h] + T_w[w] + padding`, on disjoint channels. A layer norm's mean and variance, and any
  linear map of the normalised query, therefore split into per-coordinate parts: the attention logits
  `LN(q) W_q^T K^T` are `r (S_t[t] + S_h[h] + S_w[w] + S_pad) - r mu g + d`, with the scalars `r`, `mu` per
  query and everything else computed once per grid coordinate (16 + 224 + 224 rows, not 802,816).
* Value side (decoder layers without a query residual). The attention output is `o = v W_o^T + b_o`, `v`
  the attention-weighted values. Centred over channels, `o - mean(o) = u Q^T + b_perp` with `Q` orthonormal
  (a QR factorisation of the centred output weights) and `u = v R^T + b_par` an affine image of `v`, so the
  layer norm's variance is `|u|^2 + |b_perp|^2` and its output feeds the MLP through one `u N` product. Since
  attention weights sum to one, `u` comes straight out of the attention as `p [V R^T + b_par]`. The MLP's
  second layer, its residual, the decoder's output projection and the head's output map are linear: they
  collapse into a `(hidden x k)` matrix plus `k` extra value columns, `k` = 3 pixel values or 16 samples.

What remains per query is the softmax over the latents, one `p [V' | V E]` product (latents x 520), one
`u N` product (512 x 1,026 for the video model) and the activation: ~1.9 MFLOP. It is the same function,
parity-tested against the plain decoder, transformers and DeepMind's outputs; the folded weights are derived
in float64 on every call, from the current weights and latents. Inference only: training uses the plain
decoder (whose autograd memory is what one would expect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...queries import FactoredQueries
from ..attention import LayerMaps

# Matrix widths are padded to a multiple of this: BLAS kernels run markedly faster on aligned widths.
_ALIGN = 8


def _pad_columns(matrix: torch.Tensor, multiple: int = _ALIGN) -> torch.Tensor:
    return nn.functional.pad(matrix, (0, -matrix.shape[-1] % multiple))


@dataclass
class AffineMap:
    """`x -> x @ weight.T + bias`: a chain of linear layers composed into one (float64)."""

    weight: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def compose(cls, *layers: nn.Linear | None) -> AffineMap:
        """The composition of `layers`, applied first to last (`None` entries are skipped)."""
        layers = [layer for layer in layers if layer is not None]
        weight, bias = layers[0].weight.double(), layers[0].bias.double()
        for layer in layers[1:]:
            weight = layer.weight.double() @ weight
            bias = layer.bias.double() + layer.weight.double() @ bias
        return cls(weight, bias)

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]


def can_fold(maps: LayerMaps) -> bool:
    """Whether a layer has the structure the folded decoding assumes (a cross-attention without query
    residual, whose attention weights sum to one) on a device with float64 arithmetic (not Apple's MPS)."""
    return (
        maps.kv_norm is not None
        and maps.query.weight.device.type != "mps"
        and not maps.use_query_residual
        and maps.attention.dropout == 0
    )


def _orthonormal_factor(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`matrix = basis @ factor` with orthonormal `basis` columns (float64). Cholesky of the Gram matrix is much
    faster than LAPACK's QR on many CPUs, but squares the condition number: an ill-conditioned or rank-deficient
    matrix (the centred output weights are rank-deficient when there are as many value channels as query
    channels, transformers' default) may still factor, on rounding errors, into a basis that is not orthonormal.
    Such a basis is checked for and replaced by QR's."""
    factor, info = torch.linalg.cholesky_ex(matrix.T @ matrix, upper=True)
    if info.item() == 0:
        basis = torch.linalg.solve_triangular(factor, matrix, upper=True, left=False)
        identity = torch.eye(basis.shape[1], dtype=basis.dtype, device=basis.device)
        if torch.allclose(basis.T @ basis, identity, rtol=0, atol=1e-10):
            return basis, factor
    return torch.linalg.qr(matrix)


# In-place activations for the common cases (the hidden layer is the largest tensor of a block).
_INPLACE_ACTIVATIONS = {
    "gelu": lambda x: torch.ops.aten.gelu_(x),
    "gelu_pytorch_tanh": lambda x: torch.ops.aten.gelu_(x, approximate="tanh"),
    "relu": torch.relu_,
}


class FoldedCrossAttentionDecoder:
    """A decoder cross-attention layer specialised to one batch of latents, applied to factored queries.

    Build it once per call (it computes the latents' keys and values and the folded weights), then call
    `decode` on blocks of queries. It holds derived tensors only (not an `nn.Module`).
    """

    @torch.no_grad()
    def __init__(self, maps: LayerMaps, latents: torch.Tensor):
        if not can_fold(maps):
            raise ValueError("Folded decoding needs a cross-attention layer without query residual or dropout.")
        attention = maps.attention
        self.maps = maps
        self.dtype = latents.dtype
        self.num_heads = attention.num_heads
        key_values = attention.key_values(latents)
        self.keys = key_values.key * attention.scaling  # (B, H, L, d): the logit scale is folded in
        self.values = key_values.value  # (B, H, L, dv)

        # Query side: logits = r (sum of table logits - mu g) + d, with g and d shared by all queries.
        query_norm, query = maps.query_norm, maps.query
        self.query_channels = query_norm.normalized_shape[0]
        self.query_eps = query_norm.eps
        self.query_map = query_norm.weight.double()[:, None] * query.weight.double().T  # diag(gamma) W_q^T
        query_bias = query_norm.bias.double() @ query.weight.double().T + query.bias.double()
        self.bias_logits = self._logits(query_bias[None])[:, :, 0]  # d: (B, H, L)
        query_scale = query_norm.weight.double() @ query.weight.double().T
        self.mean_logits = self._logits(query_scale[None])[:, :, 0]  # g: (B, H, L)

        # Value side: the centred attention output is u Q^T + b_perp, u = v R^T + b_par (see module docstring).
        output, mlp_norm, mlp_in = maps.output, maps.mlp_norm, maps.mlp_in
        self.activation = _INPLACE_ACTIVATIONS.get(attention.config.hidden_act, maps.activation)
        self.mlp_channels = mlp_norm.normalized_shape[0]
        self.mlp_eps = mlp_norm.eps
        out_weight = output.weight.double()  # (C, dv_total)
        centred_weight = out_weight - out_weight.mean(dim=0, keepdim=True)
        centred_bias = output.bias.double() - output.bias.double().mean()
        basis, factor = _orthonormal_factor(centred_weight)  # (C, r), (r, dv_total)
        parallel_bias = centred_bias @ basis
        perpendicular_bias = centred_bias - basis @ parallel_bias
        self.perpendicular_square = (perpendicular_bias @ perpendicular_bias).item()
        self.u_width = factor.shape[0]
        fc1_in = mlp_norm.weight.double()[:, None] * mlp_in.weight.double().T  # diag(gamma) W1^T, (C, hidden)
        self.hidden_width = mlp_in.out_features
        # z = r_o (u N + n0) + m1
        self.hidden_from_u = basis.T @ fc1_in
        self.hidden_scaled_bias = perpendicular_bias @ fc1_in
        hidden_bias = mlp_norm.bias.double() @ mlp_in.weight.double().T + mlp_in.bias.double()
        self.hidden_bias = _pad_columns(hidden_bias)
        # Per head h, values V_h map to u through the columns of R that multiply head h's channels.
        value_dim = attention.v_head_dim
        self.u_values = torch.stack(
            [
                self.values[:, h].double() @ factor[:, h * value_dim : (h + 1) * value_dim].T
                + parallel_bias / self.num_heads
                for h in range(self.num_heads)
            ],
            dim=1,
        )  # (B, H, L, r); each head's weights sum to one, so each head carries its share of the bias
        self._readouts: list[tuple[AffineMap, tuple[torch.Tensor, ...]]] = []
        self._buffers: dict[str, torch.Tensor] = {}
        self._tables: list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = []

    def _logits(self, query_vectors: torch.Tensor) -> torch.Tensor:
        """`(n, qk)` query-space vectors (float64) -> `(B, H, n, L)` logits against every latent key."""
        per_head = query_vectors.to(self.dtype).view(query_vectors.shape[0], self.num_heads, -1)
        return torch.einsum("nhd,bhld->bhnl", per_head, self.keys)

    # -- query side ------------------------------------------------------------------------------------------

    def _table_terms(self, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per table row (a 1-D table is one row): the logits of its part of `LN(q) W_q^T` before scaling,
        `(B, H, rows, L)` (its own `diag(gamma) W_q^T row` minus its share of `mu g`), and its channel sum and
        sum of squares (float64). Cached: the blocks of a modality share their tables."""
        for cached, terms in self._tables:
            if cached is table:
                return terms
        rows = table.double() if table.ndim == 2 else table.double()[None]
        sums = rows.sum(-1)
        logits = self._logits(rows @ self.query_map)
        logits -= (sums / self.query_channels).to(self.dtype)[:, None] * self.mean_logits[:, :, None]
        terms = (logits, sums, (rows**2).sum(-1))
        self._tables.append((table, terms))
        return terms

    def logits(self, queries: FactoredQueries) -> torch.Tensor:
        """Attention logits `(B, H, n, L)` of the layer-normalised factored queries."""
        constant = self._table_terms(queries.constant)
        terms = [self._table_terms(table) for table in queries.tables]
        # Blocks made of whole rows of the last grid dimension (full decoding) combine the last table with the
        # others by broadcasting; other blocks gather every table row by row.
        rows = _whole_rows(queries.indices, terms[-1][0].shape[2]) if terms else None
        if not terms:
            raise ValueError("Factored queries without tables: use the plain decoder.")
        if rows is None:
            gathered = [tuple(term[..., queries.indices[:, k], :] if i == 0 else term[queries.indices[:, k]]
                              for i, term in enumerate(terms_k)) for k, terms_k in enumerate(terms)]
            summed, total, squares = _add_terms(constant, *gathered)
        else:
            leading = [
                (logits[:, :, queries.indices[rows, k]], sums[queries.indices[rows, k]], squares[queries.indices[rows, k]])
                for k, (logits, sums, squares) in enumerate(terms[:-1])
            ]
            lead_logits, lead_total, lead_squares = _add_terms(constant, *leading)
            last_logits, last_total, last_squares = terms[-1]
            summed = (lead_logits.unsqueeze(3) + last_logits.unsqueeze(2)).flatten(2, 3)
            total = (lead_total[:, None] + last_total[None]).flatten()
            squares = (lead_squares[:, None] + last_squares[None]).flatten()
        mean = total / self.query_channels
        inverse_std = torch.rsqrt(squares / self.query_channels - mean**2 + self.query_eps).to(self.dtype)
        return torch.addcmul(self.bias_logits[:, :, None], summed, inverse_std[:, None], out=summed)

    # -- value side ------------------------------------------------------------------------------------------

    def _readout_matrices(self, output_map: AffineMap) -> tuple[torch.Tensor, ...]:
        """`(B, H, L, width)` values giving `[u | direct outputs | 1]` per head, the `(width, hidden)` map from
        those columns to the MLP's hidden layer, and the `(hidden, k)` matrix and `(k,)` constant of
        `output_map` applied to the layer output. Cached per output map."""
        for cached, matrices in self._readouts:
            if cached is output_map:
                return matrices
        e_weight, e_bias = output_map.weight, output_map.bias
        maps = self.maps
        value_dim = maps.attention.v_head_dim
        # layer output = act(z) W2^T + b2 + o, o = v W_o^T + b_o: the `v W_o^T E^T` part joins the values, and
        # a column of ones gives each head's softmax denominator.
        from_values = (e_weight @ maps.output.weight.double()).T  # (dv_total, k)
        direct = torch.stack(
            [self.values[:, h].double() @ from_values[h * value_dim : (h + 1) * value_dim] for h in range(self.num_heads)],
            dim=1,
        )
        ones = direct.new_ones(*direct.shape[:-1], 1)
        # The last column is set to 1 after the attention: it adds the MLP's bias inside the next product.
        values = _pad_columns(torch.cat([self.u_values, direct, ones, torch.zeros_like(ones)], dim=-1)).to(self.dtype)
        # Rows of the hidden map follow the value columns: u -> N, direct outputs -> 0, the sum column -> n0,
        # the bias column -> m1.
        k = output_map.out_features
        hidden_map = torch.zeros(values.shape[-1], self.hidden_bias.shape[0], dtype=torch.float64, device=values.device)
        hidden_map[: self.u_width, : self.hidden_width] = self.hidden_from_u
        hidden_map[self.u_width + k, : self.hidden_width] = self.hidden_scaled_bias
        hidden_map[self.u_width + k + 1] = self.hidden_bias
        from_hidden = _pad_rows((e_weight @ maps.mlp_out.weight.double()).T, self.hidden_bias.shape[0]).to(self.dtype)
        constant = (e_weight @ (maps.mlp_out.bias.double() + maps.output.bias.double()) + e_bias).to(self.dtype)
        matrices = (values, hidden_map.to(self.dtype), from_hidden, constant)
        self._readouts.append((output_map, matrices))
        return matrices

    def decode(self, queries: FactoredQueries, output_map: AffineMap) -> torch.Tensor:
        """`(B, n, k)`: `output_map` applied to the layer's output for a block of factored queries."""
        values, hidden_map, from_hidden, constant = self._readout_matrices(output_map)
        weights = self.logits(queries)
        weights = weights.sub_(weights.amax(dim=-1, keepdim=True)).exp_()  # unnormalised softmax
        r, k = self.u_width, output_map.out_features
        ones = r + k  # the column of ones in the values: it sums the unnormalised weights
        if self.num_heads == 1:
            attended = weights[:, 0] @ values[:, 0]  # (B, n, width): [p~ u | p~ direct | sum p~ | 0]
        else:  # each head normalises its own weights, then heads add up
            attended = weights @ values
            attended = attended.div_(attended[..., ones, None].clone()).sum(1)
            attended[..., ones] = 1
        totals = attended[..., ones, None].clone()
        direct = attended[..., r : r + k] / totals
        # u = p~ u / sum p~; the layer norm's 1/std from |u|, then every column scaled by 1/(std sum p~).
        norms = torch.linalg.vector_norm(attended[..., :r], dim=-1, keepdim=True).div_(totals)
        inverse_std = torch.rsqrt((norms.square_() + self.perpendicular_square) / self.mlp_channels + self.mlp_eps)
        attended.mul_(inverse_std.div_(totals))  # the sum column becomes 1/std: it carries the bias term n0
        attended[..., ones + 1] = 1
        hidden = self._buffer("hidden", (attended.shape[0] * attended.shape[1], hidden_map.shape[1]))
        hidden = self.activation(torch.mm(attended.flatten(0, -2), hidden_map, out=hidden))
        outputs = torch.addmm(constant, hidden, from_hidden).view(direct.shape)
        return outputs.add_(direct)

    def _buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A reusable scratch tensor: fresh multi-megabyte CPU allocations cost page faults on every block."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < math.prod(shape):
            buffer = self._buffers[name] = torch.empty(math.prod(shape), dtype=self.dtype, device=self.keys.device)
        return buffer[: math.prod(shape)].view(shape)

    def decode_unfolded_output(self, queries: FactoredQueries, output_map: AffineMap) -> torch.Tensor:
        """As `decode`, but running the MLP and output map as written after the folded attention: cheaper for
        a few queries with many outputs (e.g. one label query with 700 classes)."""
        weights = torch.softmax(self.logits(queries), dim=-1)
        values = (weights @ self.values).transpose(1, 2).flatten(2)  # (B, n, dv_total)
        layer_output = self.maps.feed_forward(self.maps.output(values))
        return layer_output @ output_map.weight.to(self.dtype).T + output_map.bias.to(self.dtype)


def _add_terms(first: tuple[torch.Tensor, ...], *others: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Element-wise sums of (logits, channel sums, sums of squares) triples."""
    return tuple(sum(parts[1:], parts[0]) for parts in zip(first, *others))


def _pad_rows(matrix: torch.Tensor, rows: int) -> torch.Tensor:
    return nn.functional.pad(matrix, (0, 0, 0, rows - matrix.shape[0]))


def _whole_rows(indices: torch.Tensor, width: int) -> torch.Tensor | None:
    """If the block is whole rows of the last grid dimension (`width` consecutive last-coordinates 0..width-1
    sharing their other coordinates), the index of each row's first query; else `None`."""
    n = indices.shape[0]
    if n % width:
        return None
    grid = indices.view(n // width, width, -1)
    last = torch.arange(width, device=indices.device)
    if not (grid[..., -1] == last).all() or not (grid[..., :-1] == grid[:, :1, :-1]).all():
        return None
    return torch.arange(0, n, width, device=indices.device)
