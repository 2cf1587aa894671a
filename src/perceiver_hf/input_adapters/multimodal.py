"""Several modalities in, one input array out: each modality's array padded to a common width, then stacked.

DeepMind's video autoencoder packs audio patches, video patches and a one-hot label into one array: every
modality is featurised by its own adapter, padded with a learned per-modality vector up to
`max(channels) + min_padding_size` channels, optionally replaced (row by row, with probability `mask_probs`)
by a learned mask token, and the modalities are stacked in sorted name order (audio, image, label). The label
is always masked in DeepMind's model, so the autoencoder must infer it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from ..configuration import PerceiverIOConfig
from ..input_array import InputArray
from ..position import TrainablePositionEncoding
from .base import InputAdapter


class OneHotInputAdapter(InputAdapter):
    """A `(batch, num_classes)` vector (one-hot label, or class scores) as a single input row."""

    config_defaults: ClassVar[dict[str, str]] = {"num_classes": "num_labels"}

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = self.num_channels = int(num_classes)

    def forward(self, label: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        if not isinstance(label, torch.Tensor) or label.ndim != 2 or label.shape[-1] != self.num_classes:
            got = f"shape {tuple(label.shape)}" if isinstance(label, torch.Tensor) else type(label).__name__
            raise ValueError(
                f"Expected a label input of shape (batch, {self.num_classes}) (one-hot or zeros), got {got}."
            )
        if not label.is_floating_point():
            label = label.to(torch.get_default_dtype())
        return InputArray(label[:, None, :])


class MultimodalInputAdapter(InputAdapter):
    """Packs named modalities into one input array (see the module docstring).

    Args:
        modalities: modality name -> input adapter.
        min_padding_size: learned channels every modality gets at least.
        mask_probs: modality name -> probability that a row of it is replaced by the modality's mask token.
    """

    def __init__(
        self,
        modalities: Mapping[str, InputAdapter],
        min_padding_size: int = 2,
        mask_probs: Mapping[str, float] | None = None,
    ):
        super().__init__()
        if not modalities:
            raise ValueError("A multimodal input adapter needs at least one modality.")
        mask_probs = dict(mask_probs or {})
        unknown = sorted(set(mask_probs) - set(modalities))
        if unknown:
            raise ValueError(f"mask_probs names modalities {unknown} that are not among {sorted(modalities)}.")
        for name, prob in mask_probs.items():
            if not 0.0 <= float(prob) <= 1.0:
                raise ValueError(f"mask_probs[{name!r}] must be a probability in [0, 1], got {prob}.")
        self.modalities = nn.ModuleDict({name: modalities[name] for name in sorted(modalities)})
        self.min_padding_size = int(min_padding_size)
        self.mask_probs = {name: float(prob) for name, prob in mask_probs.items()}
        width = self.num_channels
        self.padding = nn.ModuleDict(
            {name: TrainablePositionEncoding(1, width - adapter.num_channels) for name, adapter in self.modalities.items()}
        )
        self.mask_tokens = nn.ModuleDict({name: TrainablePositionEncoding(1, width) for name in sorted(self.mask_probs)})

    @classmethod
    def from_config(cls, config: PerceiverIOConfig, modalities: dict, **spec) -> MultimodalInputAdapter:
        from . import build_input_adapter

        adapters = {name: build_input_adapter(config, modality) for name, modality in modalities.items()}
        return cls(adapters, **spec)

    @property
    def num_channels(self) -> int:
        return max(adapter.num_channels for adapter in self.modalities.values()) + self.min_padding_size

    def gather(self, inputs: Mapping[str, torch.Tensor] | None = None, **named: torch.Tensor | None) -> dict:
        """`inputs`, or the modalities given by name (a model's `image=`, `audio=`, `label=` arguments), so that
        batches can be flat dicts of tensors. A `one_hot` modality left out (the autoencoder's always-masked label)
        is zeros."""
        named = {name: value for name, value in named.items() if value is not None}
        if inputs is not None and named:
            raise ValueError(f"You cannot use both `inputs` and {sorted(named)}: pass the modalities one way.")
        if inputs is None and not named:
            names = sorted(self.modalities)
            raise ValueError(
                f"You have to specify `inputs`: a dict of the modalities {names} (e.g. from "
                f"PerceiverIOVideoAutoencodingProcessor), or pass them by name ({', '.join(f'{n}=...' for n in names)})."
            )
        if inputs is not None:
            return inputs
        for name, value in named.items():
            if not isinstance(value, torch.Tensor) or value.ndim == 0:
                got = "a 0-d tensor" if isinstance(value, torch.Tensor) else type(value).__name__
                raise TypeError(f"`{name}` must be a torch.Tensor with a batch dimension first, got {got}.")
        reference = next(iter(named.values()))
        for name, adapter in self.modalities.items():
            if name not in named and isinstance(adapter, OneHotInputAdapter):
                named[name] = reference.new_zeros(reference.shape[0], adapter.num_channels)
        return named

    def _check(self, inputs) -> None:
        expected = sorted(self.modalities)
        if not isinstance(inputs, Mapping):
            raise ValueError(
                f"Expected `inputs` as a dict of modalities {expected}, got {type(inputs).__name__}. For example "
                "inputs=dict(image=video, audio=waveform, label=torch.zeros(batch, num_labels))."
            )
        if sorted(inputs) != expected:
            raise ValueError(f"Expected inputs for the modalities {expected}, got {sorted(inputs)}.")
        for name, value in inputs.items():
            if not isinstance(value, torch.Tensor) or value.ndim == 0:
                got = "a 0-d tensor" if isinstance(value, torch.Tensor) else type(value).__name__
                raise TypeError(f"The {name} input must be a torch.Tensor with a batch dimension first, got {got}.")

    def forward(self, inputs: Mapping[str, torch.Tensor], attention_mask: torch.Tensor | None = None, **kwargs) -> InputArray:
        self._check(inputs)
        dtype = next(iter(self.padding.values())).position_embeddings.dtype
        arrays = {name: self.modalities[name](inputs[name].to(dtype)) for name in self.modalities}
        batch_sizes = {name: array.batch_size for name, array in arrays.items()}
        batch_size = next(iter(batch_sizes.values()))
        # Compared pairwise, not through a set: under torch.export, batch sizes are symbolic and unhashable.
        if any(size != batch_size for size in batch_sizes.values()):
            raise ValueError(f"All modalities need the same batch size, got {batch_sizes}.")
        sizes = {name: array.length for name, array in arrays.items()}
        first = next(iter(arrays.values()))

        # Each modality is written into its rows of one preallocated array: no padded per-modality copies.
        packed = first.content.new_empty(batch_size, sum(sizes.values()), self.num_channels)
        start = 0
        for name, array in arrays.items():
            rows = packed[:, start : start + sizes[name]]
            channels = array.num_channels
            rows[..., :channels] = array.materialize()
            rows[..., channels:] = self.padding[name]().to(dtype)
            probability = self.mask_probs.get(name, 0.0)
            if probability == 1.0:
                rows.copy_(self.mask_tokens[name]().to(dtype).expand_as(rows))
            elif probability > 0.0:
                masked = torch.rand(batch_size, sizes[name], device=packed.device) < probability
                rows.copy_(torch.where(masked[..., None], self.mask_tokens[name]().to(dtype), rows))
            elif name in self.mask_tokens:
                # A never-used mask token (probability 0, as DeepMind's audio and image) still gets its zero
                # gradient, so that DDP can run with find_unused_parameters=False.
                rows[:, :1] += 0.0 * self.mask_tokens[name]().to(dtype)
            start += sizes[name]
        return InputArray(packed, attention_mask=attention_mask, modality_sizes=sizes)
