"""Causal attention masks for queries that are the last rows of their keys (Perceiver AR's latents).

When `N` queries attend to `M >= N` keys, query `i` is the key at `M - N + i`: queries and keys are right-aligned,
so query `i` sees keys `0 .. M - N + i`. A key padding mask (left padding) removes keys on top of that.
"""

from __future__ import annotations

import torch


def causal_mask(
    num_queries: int, num_keys: int, key_padding: torch.Tensor | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Boolean mask `(batch or 1, 1, num_queries, num_keys)`, True where a query may attend to a key.

    `key_padding` `(batch, num_keys)` is True (or 1) for real keys and False (0) for padding.
    """
    device = key_padding.device if key_padding is not None else device
    query_rows = torch.arange(num_queries, device=device)[:, None] + (num_keys - num_queries)
    mask = torch.arange(num_keys, device=device)[None, :] <= query_rows
    mask = mask[None, None]
    if key_padding is not None:
        mask = mask & key_padding.to(torch.bool)[:, None, None, :]
    return mask


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The boolean `mask` as scores to add: 0 where allowed, the dtype's lowest value where not.

    A query row without any allowed key then gets equal scores everywhere, i.e. the mean of all values, which is
    what filling masked scores with the lowest value does in eager attention (and what krasserm/perceiver-io does);
    SDPA given a boolean mask would return NaN for such rows instead.
    """
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
