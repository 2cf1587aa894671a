"""The query decoder: output queries cross-attend to the latents, a block of queries at a time, so that memory
stays bounded whatever the number of outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray
from ..queries import FactoredQueries, build_output_queries
from .attention import PerceiverIOLayer
from .rewrites import planner
from .rewrites.folded_decoder import AffineMap, FoldedCrossAttentionDecoder

# `on_block(done, total)`: told after every decoded block (a progress bar, for instance).
BlockCallback = Callable[[int, int], None]


def concatenate_blocks(blocks: list) -> torch.Tensor | dict[str, torch.Tensor]:
    """Concatenate decoded blocks along the query axis: tensors, or dicts of tensors key by key."""
    if isinstance(blocks[0], dict):
        keys = dict.fromkeys(key for block in blocks for key in block)
        return {key: concatenate_blocks([block[key] for block in blocks if key in block]) for key in keys}
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)


def query_blocks(num_queries: int, chunk_size: int) -> list[tuple[int, int]]:
    """`(start, end)` of each block of at most `chunk_size` queries. One block when it covers them all, decided
    without a loop, so that a symbolic number of queries (under `torch.export`) stays symbolic."""
    if chunk_size >= num_queries:
        return [(0, num_queries)]
    return [(start, min(start + chunk_size, num_queries)) for start in range(0, num_queries, chunk_size)]


class PerceiverIODecoder(nn.Module):
    """Output queries cross-attend to the latents; an optional linear layer projects the result.

    `config.query_decoder` keys: `query` (query provider config), `num_heads` (1), `qk_channels` / `v_channels`
    (default: the latent channels), `widening_factor` (1), `use_query_residual` (False), `final_project`
    (True), `output_channels` (default: the head's, e.g. `num_labels`) and `chunk_size`: decode at most this
    many queries at a time (default: all at once). Chunking bounds memory for large outputs and leaves the
    result unchanged.
    """

    def __init__(self, config: PerceiverIOConfig, output_channels: int | None = None):
        super().__init__()
        spec = dict(config.query_decoder or {})
        if "query" not in spec:
            raise ValueError("`config.query_decoder` needs a `query` entry describing the output queries.")
        self.queries = build_output_queries(config, spec["query"])
        query_dim = self.queries.num_channels
        default_qk = config.d_latents if config.cross_attention_shape_for_attention == "kv" else query_dim
        qk_channels = spec.get("qk_channels") or default_qk
        self.cross_attention = PerceiverIOLayer(
            config,
            query_dim=query_dim,
            kv_dim=config.d_latents,
            qk_channels=qk_channels,
            v_channels=spec.get("v_channels") or qk_channels,
            num_heads=spec.get("num_heads", 1),
            widening_factor=spec.get("widening_factor", 1),
            is_cross_attention=True,
            use_query_residual=spec.get("use_query_residual", False),
        )
        output_channels = spec.get("output_channels") or output_channels
        if spec.get("final_project", True):
            if not output_channels:
                raise ValueError("The decoder projects to `output_channels`; set it in `config.query_decoder`.")
            self.output_projection = nn.Linear(query_dim, output_channels)
        else:
            self.output_projection = None
        self.chunk_size = spec.get("chunk_size")

    @property
    def output_channels(self) -> int:
        """Channels of each decoded query."""
        return self.output_projection.out_features if self.output_projection is not None else self.queries.num_channels

    def forward(
        self,
        latents: torch.Tensor,
        inputs: InputArray,
        query_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        chunk_size: int | None = None,
        postprocess: Callable[[torch.Tensor, int, int], torch.Tensor | dict[str, torch.Tensor]] | None = None,
        subsampled_points=None,
        on_block: BlockCallback | None = None,
    ) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor | None]:
        """Decode every query; `postprocess(outputs, start, end)` (an output adapter) runs on each block before
        concatenation, so per-query outputs can shrink (e.g. to pixels) before the next block is decoded. It may
        return a dict of tensors (e.g. one per modality); blocks are then concatenated key by key.

        `subsampled_points` (transformers' `subsampled_output_points`) selects the queries to decode, for
        query providers that support it."""
        query_kwargs = {} if subsampled_points is None else {"subsampled_points": subsampled_points}
        num_queries = self.queries.num_queries(inputs, **query_kwargs)
        chunk_size = chunk_size or self.chunk_size or num_queries
        # The latents' keys and values serve every block of queries: prepared once.
        rewrite = planner.decoder_rewrite(self.cross_attention, num_queries, num_keys=latents.shape[1])
        key_values = (rewrite or self.cross_attention.attention).key_values(latents)
        outputs, weights = [], []
        blocks = query_blocks(num_queries, chunk_size)
        for start, end in blocks:
            queries = self.queries(inputs, start, end, **query_kwargs)
            mask = None if query_mask is None else query_mask[:, start:end].to(torch.bool)[:, None, :, None]
            output, attn_weights = self.cross_attention(
                queries,
                key_values=key_values,
                attention_mask=mask,
                output_attentions=output_attentions,
                rewrite=rewrite,
            )
            if self.output_projection is not None:
                output = self.output_projection(output)
            outputs.append(output if postprocess is None else postprocess(output, start, end))
            weights.append(attn_weights)
            if on_block is not None:
                on_block(len(outputs), len(blocks))
        output = concatenate_blocks(outputs)
        if not output_attentions:
            return output, None
        return output, weights[0] if len(weights) == 1 else torch.cat(weights, dim=2)

    @torch.no_grad()
    def decode_folded(
        self,
        latents: torch.Tensor,
        parts: Mapping[str, tuple[FactoredQueries, nn.Linear]],
        chunk_size: int | None = None,
        on_block: BlockCallback | None = None,
    ) -> dict[str, torch.Tensor]:
        """Decode factored position queries with the folded decoder (inference only; see
        `perceiver_hf.core.rewrites.folded_decoder`): each part's queries, mapped through the output projection
        and then the part's own linear map (an output adapter's)."""
        layer = FoldedCrossAttentionDecoder(self.cross_attention.maps(), latents)
        chunk_size = chunk_size or self.chunk_size or max(queries.num_queries for queries, _ in parts.values())
        steps = {name: _aligned_chunk_size(queries, chunk_size) for name, (queries, _) in parts.items()}
        total = sum(-(-queries.num_queries // steps[name]) for name, (queries, _) in parts.items())
        outputs, done = {}, 0
        for name, (queries, linear) in parts.items():
            output_map = AffineMap.compose(self.output_projection, linear)
            size, step = queries.num_queries, steps[name]
            decode = layer.decode if planner.folds_output_map(size, output_map.out_features) else layer.decode_unfolded_output
            blocks = []
            for start in range(0, size, step):
                blocks.append(decode(queries.block(start, start + step), output_map))
                done += 1
                if on_block is not None:
                    on_block(done, total)
            outputs[name] = concatenate_blocks(blocks)
        return outputs


def _aligned_chunk_size(queries: FactoredQueries, chunk_size: int) -> int:
    """Round the chunk size down to whole rows of the last grid dimension (the folded decoder broadcasts those)."""
    if not queries.tables:
        return chunk_size
    width = queries.tables[-1].shape[0]
    return max(width, chunk_size // width * width)
