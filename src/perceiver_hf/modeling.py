"""The Perceiver IO core: pre-trained model base, latent encoder, chunked decoder and `PerceiverIOModel`.

Data flows one way: input adapter -> encoder cross-attention (latents attend to the input array) ->
latent self-attention blocks -> output queries -> decoder cross-attention -> heads' output adapters.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from .adapters import InputAdapter, build_input_adapter
from .layer import PerceiverIOLayer
from .configuration import PerceiverIOConfig
from .from_transformers import (
    HUB_KWARGS,
    convert_config_dict,
    source_architecture,
    transformers_source_config,
    write_converted_checkpoint,
)
from .input_array import InputArray
from .position import TrainablePositionEncoding
from .queries import TrainableQueries, build_output_queries


@dataclass
class PerceiverIOModelOutput(ModelOutput):
    """Output of the encoder: the latents, and optionally every intermediate latent state and attention map.

    Attributes:
        last_hidden_state: `(batch, num_latents, d_latents)` latents after the last self-attention layer.
        hidden_states: latents before every self-attention layer and after every block (as transformers'
            Perceiver reports them), when `output_hidden_states=True`.
        attentions: self-attention weights of every layer application, when `output_attentions=True`.
        cross_attentions: encoder (and, for heads, decoder) cross-attention weights.
    """

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PerceiverIOClassifierOutput(ModelOutput):
    """Output of the classification, flow and autoencoding heads (the fields of transformers' Perceiver).

    Attributes:
        loss: the training loss, when `labels` are given.
        logits: the head's prediction.
        hidden_states, attentions: see `PerceiverIOModelOutput`.
        cross_attentions: the encoder cross-attention weights followed by the decoder's.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


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


class PerceiverIOEncoder(nn.Module):
    """Latents cross-attend once to the input array, then a block of self-attention layers runs
    `num_blocks` times with shared weights."""

    def __init__(self, config: PerceiverIOConfig, kv_dim: int):
        super().__init__()
        self.config = config
        self.latents = nn.Parameter(torch.empty(config.num_latents, config.d_latents))
        nn.init.normal_(self.latents, std=config.initializer_range)

        default_qk = kv_dim if config.cross_attention_shape_for_attention == "kv" else config.d_latents
        cross_qk = config.qk_channels or default_qk
        cross_v = config.v_channels or cross_qk
        self.cross_attention = PerceiverIOLayer(
            config,
            query_dim=config.d_latents,
            kv_dim=kv_dim,
            qk_channels=cross_qk,
            v_channels=cross_v,
            num_heads=config.num_cross_attention_heads,
            widening_factor=config.cross_attention_widening_factor,
            is_cross_attention=True,
            use_query_residual=config.use_query_residual,
        )
        self.cross_attention.attention.fold_kv_projections = _folding_pays_off(
            config.num_latents, config.num_cross_attention_heads, kv_dim, cross_qk, cross_v
        )

        self_qk = config.qk_channels or config.d_latents
        self.self_attention_layers = nn.ModuleList(
            PerceiverIOLayer(
                config,
                query_dim=config.d_latents,
                kv_dim=config.d_latents,
                qk_channels=self_qk,
                v_channels=config.v_channels or self_qk,
                num_heads=config.num_self_attention_heads,
                widening_factor=config.self_attention_widening_factor,
                is_cross_attention=False,
            )
            for _ in range(config.num_self_attends_per_block)
        )

    def forward(
        self,
        inputs: InputArray,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> PerceiverIOModelOutput:
        attention_mask = None
        if inputs.attention_mask is not None:
            if tuple(inputs.attention_mask.shape) != (inputs.batch_size, inputs.length):
                raise ValueError(
                    f"attention_mask has shape {tuple(inputs.attention_mask.shape)}, but the input array has "
                    f"{inputs.length} rows per example: give a ({inputs.batch_size}, {inputs.length}) mask, 1 for rows "
                    "to attend to (one row per token of text, per pixel of an image or a flow frame pair)."
                )
            attention_mask = inputs.attention_mask.to(torch.bool)[:, None, None, :]
        latents = self.latents.to(inputs.dtype).expand(inputs.batch_size, -1, -1)
        hidden_states, cross_weights = self.cross_attention(
            latents, inputs, attention_mask=attention_mask, output_attentions=output_attentions
        )

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for _ in range(self.config.num_blocks):
            for layer in self.self_attention_layers:
                if output_hidden_states:
                    all_hidden_states += (hidden_states,)
                hidden_states, weights = layer(hidden_states, output_attentions=output_attentions)
                if output_attentions:
                    all_attentions += (weights,)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)

        return PerceiverIOModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            cross_attentions=(cross_weights,) if output_attentions else None,
        )


def concatenate_blocks(blocks: list) -> torch.Tensor | dict[str, torch.Tensor]:
    """Concatenate decoded blocks along the query axis: tensors, or dicts of tensors key by key."""
    if isinstance(blocks[0], dict):
        keys = dict.fromkeys(key for block in blocks for key in block)
        return {key: concatenate_blocks([block[key] for block in blocks if key in block]) for key in keys}
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)


class PerceiverIODecoder(nn.Module):
    """Output queries cross-attend to the latents; an optional linear layer projects the result.

    `config.decoder` keys: `query` (query provider config), `num_heads` (1), `qk_channels` / `v_channels`
    (default: the latent channels), `widening_factor` (1), `use_query_residual` (False), `final_project`
    (True), `output_channels` (default: the head's, e.g. `num_labels`) and `chunk_size`: decode at most this
    many queries at a time (default: all at once). Chunking bounds memory for large outputs and leaves the
    result unchanged.
    """

    def __init__(self, config: PerceiverIOConfig, output_channels: int | None = None):
        super().__init__()
        spec = dict(config.decoder or {})
        if "query" not in spec:
            raise ValueError("`config.decoder` needs a `query` entry describing the output queries.")
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
                raise ValueError("The decoder projects to `output_channels`; set it in `config.decoder`.")
            self.output_projection = nn.Linear(query_dim, output_channels)
        else:
            self.output_projection = None
        self.chunk_size = spec.get("chunk_size")

    def forward(
        self,
        latents: torch.Tensor,
        inputs: InputArray,
        query_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        chunk_size: int | None = None,
        postprocess: Callable[[torch.Tensor, int, int], torch.Tensor | dict[str, torch.Tensor]] | None = None,
        subsampled_points=None,
    ) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor | None]:
        """Decode every query; `postprocess(outputs, start, end)` runs on each block before concatenation,
        so per-query outputs can shrink (e.g. to pixels) before the next block is decoded. It may return a dict
        of tensors (e.g. one per modality); blocks are then concatenated key by key.

        `subsampled_points` (transformers' `subsampled_output_points`) selects the queries to decode, for
        query providers that support it."""
        query_kwargs = {} if subsampled_points is None else {"subsampled_points": subsampled_points}
        num_queries = self.queries.num_queries(inputs, **query_kwargs)
        chunk_size = chunk_size or self.chunk_size or num_queries
        # The latents' keys and values serve every block of queries: compute them once, with the query and output
        # projections absorbed when there are enough queries for that to pay off.
        attention = self.cross_attention.attention
        absorb = _absorbing_pays_off(
            num_queries,
            latents.shape[1],
            attention.num_heads,
            self.queries.num_channels,
            attention.qk_channels,
            attention.v_channels,
            attention.output.out_features,
        )
        key_values = attention.key_values(latents, absorb_query_output=absorb)
        outputs, weights = [], []
        for start in range(0, num_queries, chunk_size):
            end = min(start + chunk_size, num_queries)
            queries = self.queries(inputs, start, end, **query_kwargs)
            mask = None if query_mask is None else query_mask[:, start:end].to(torch.bool)[:, None, :, None]
            output, attn_weights = self.cross_attention(
                queries, key_values=key_values, attention_mask=mask, output_attentions=output_attentions
            )
            if self.output_projection is not None:
                output = self.output_projection(output)
            outputs.append(output if postprocess is None else postprocess(output, start, end))
            weights.append(attn_weights)
        output = concatenate_blocks(outputs)
        if not output_attentions:
            return output, None
        return output, weights[0] if len(weights) == 1 else torch.cat(weights, dim=2)


class PerceiverIOPreTrainedModel(PreTrainedModel):
    config: PerceiverIOConfig
    config_class = PerceiverIOConfig
    base_model_prefix = "perceiver"
    main_input_name = "inputs"
    input_modalities = ("image", "text", "video", "audio")
    supports_gradient_checkpointing = True
    # Accelerate keeps each on one device: a layer's residuals and a decoder's once-per-call key/values.
    _no_split_modules = ["PerceiverIOLayer", "PerceiverIODecoder"]
    _supports_sdpa = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, PerceiverIOEncoder):
            init.normal_(module.latents, mean=0.0, std=std)
        elif isinstance(module, TrainablePositionEncoding):
            init.normal_(module.position_embeddings, mean=0.0, std=std)
        elif isinstance(module, TrainableQueries):
            init.normal_(module.queries, mean=0.0, std=std)

    def output_flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> tuple[bool, bool]:
        """transformers' convention for every forward: flags left at `None` take the config's value."""
        return (
            self.config.output_attentions if output_attentions is None else output_attentions,
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        )

    @staticmethod
    def head_output(
        output_class: type[ModelOutput],
        encoded: PerceiverIOModelOutput,
        decoder_weights: torch.Tensor | None,
        **fields,
    ) -> ModelOutput:
        """A head's output: its own `fields` (loss, logits, ...) plus the encoder's hidden states and attentions,
        the decoder's cross-attention weights appended to the encoder's."""
        cross_attentions = encoded.cross_attentions
        if cross_attentions is not None:
            cross_attentions = cross_attentions + (decoder_weights,)
        return output_class(
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            cross_attentions=cross_attentions,
            **fields,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a perceiver_hf checkpoint, or a transformers Perceiver checkpoint (`model_type "perceiver"`),
        whose config and weights are converted on the fly (all other arguments work as usual)."""
        source_config = transformers_source_config(pretrained_model_name_or_path, kwargs)
        if source_config is None:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

        head = convert_config_dict(source_config)["architectures"][0]
        if cls.__name__ not in (head, "PerceiverIOModel"):
            raise ValueError(
                f"{pretrained_model_name_or_path} is a transformers {source_architecture(source_config)} "
                f"checkpoint, which loads into {head} (or PerceiverIOModel), not {cls.__name__}."
            )
        hub_kwargs = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
        want_info = kwargs.pop("output_loading_info", False)
        with tempfile.TemporaryDirectory(prefix="perceiver_hf_") as folder:
            write_converted_checkpoint(pretrained_model_name_or_path, folder, source_config, hub_kwargs)
            model, info = super().from_pretrained(folder, *model_args, output_loading_info=True, **kwargs)
        # A head checkpoint legitimately has weights the bare encoder (PerceiverIOModel) does not use.
        unexpected = info["unexpected_keys"] if cls.__name__ == head else []
        # Shapes may differ only where the caller asked for it (e.g. a new classifier with another num_labels).
        mismatched = [] if kwargs.get("ignore_mismatched_sizes") else info.get("mismatched_keys")
        if info["missing_keys"] or unexpected or mismatched:
            raise ValueError(
                f"Converting {pretrained_model_name_or_path} into {cls.__name__} left parameters without weights "
                f"{sorted(info['missing_keys'])[:5]}, weights without parameters {sorted(unexpected)[:5]}, "
                f"mismatched shapes {list(mismatched or [])[:5]}."
            )
        model.config.name_or_path = str(pretrained_model_name_or_path)
        return (model, info) if want_info else model


def select_inputs(inputs: torch.Tensor | None, named: torch.Tensor | None, name: str) -> torch.Tensor:
    """transformers' Perceiver heads take `inputs` or a named alias (`pixel_values`, `input_ids`), not both."""
    if inputs is not None and named is not None:
        raise ValueError(f"You cannot use both `inputs` and `{name}`.")
    inputs = inputs if inputs is not None else named
    if inputs is None:
        raise ValueError(f"You have to specify `{name}` (or `inputs`).")
    return inputs


class PerceiverIOModel(PerceiverIOPreTrainedModel):
    """Input adapter + latent encoder. Returns the latents: the model's representation of its input, e.g.
    for `AutoModel` or `pipeline("image-feature-extraction")`."""

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        self.input_adapter: InputAdapter = build_input_adapter(config)
        self.encoder = PerceiverIOEncoder(config, kv_dim=self.input_adapter.num_channels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module | None:
        return getattr(self.input_adapter, "embeddings", None)

    def encode(
        self,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **adapter_kwargs,
    ) -> tuple[InputArray, PerceiverIOModelOutput]:
        """Run the input adapter and the encoder; heads decode from both results."""
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
            inputs = inputs.to(self.encoder.latents.dtype)
        input_array = self.input_adapter(
            inputs,
            attention_mask=attention_mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
            **adapter_kwargs,
        )
        encoded = self.encoder(
            input_array, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        return input_array, encoded

    @can_return_tuple
    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> PerceiverIOModelOutput:
        if pixel_values is not None and input_ids is not None:
            raise ValueError("You cannot use both `pixel_values` and `input_ids`.")
        inputs = select_inputs(inputs, pixel_values if pixel_values is not None else input_ids, "inputs")
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)
        _, encoded = self.encode(
            inputs,
            attention_mask=attention_mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        return encoded
