"""The pre-trained model base every Perceiver IO model shares, and `PerceiverIOModel`: input adapter + latent
encoder, returning the latents."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..configuration import PerceiverIOConfig
from ..from_transformers import load_transformers_checkpoint, transformers_source_config
from ..input_adapters import InputAdapter, build_input_adapter
from ..input_array import InputArray
from ..loading_errors import explained_loading_errors, loading_reports
from ..position import TrainablePositionEncoding
from ..queries import TrainableQueries
from .encoder import PerceiverIOEncoder
from .outputs import PerceiverIOModelOutput


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

    def output_flags(self, kwargs: dict) -> tuple[bool, bool]:
        """`output_attentions` and `output_hidden_states` of a forward's keyword arguments; left out (or `None`),
        they take the config's value, as in every transformers model."""
        return tuple(
            getattr(self.config, name) if kwargs.get(name) is None else kwargs[name]
            for name in ("output_attentions", "output_hidden_states")
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a perceiver_hf checkpoint, or a transformers Perceiver one (`model_type "perceiver"`) whose config
        and weight names are translated on the fly (`perceiver_hf.from_transformers`); all arguments work as usual."""
        with explained_loading_errors(pretrained_model_name_or_path, kwargs):
            source_config = transformers_source_config(pretrained_model_name_or_path, kwargs)
            if source_config is None:
                return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
            load = super().from_pretrained
            return load_transformers_checkpoint(
                cls, load, pretrained_model_name_or_path, source_config, *model_args, **kwargs
            )

    def _adjust_missing_and_unexpected_keys(self, loading_info) -> None:
        """transformers' loading hook: the report is kept, so that a size mismatch can be explained."""
        super()._adjust_missing_and_unexpected_keys(loading_info)
        reports = loading_reports.get()
        if reports is not None:
            reports.append(loading_info)


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
        """A text model's token embeddings (`None` for other inputs)."""
        return getattr(self.input_adapter, "embeddings", None)

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace a text model's token embeddings (`resize_token_embeddings` does, for a new vocabulary)."""
        if not hasattr(self.input_adapter, "embeddings"):
            raise ValueError(
                f"Only text models have token embeddings; this model's input adapter is {type(self.input_adapter).__name__}."
            )
        self.input_adapter.embeddings = value

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
        interpolate_pos_encoding: bool = False,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverIOModelOutput:
        if pixel_values is not None and input_ids is not None:
            raise ValueError("You cannot use both `pixel_values` and `input_ids`.")
        if kwargs.get("labels") is not None:
            raise TypeError("PerceiverIOModel returns the latents and computes no loss: pass `labels` to a task head.")
        inputs = select_inputs(inputs, pixel_values if pixel_values is not None else input_ids, "inputs")
        output_attentions, output_hidden_states = self.output_flags(kwargs)
        _, encoded = self.encode(
            inputs,
            attention_mask=attention_mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        return encoded
