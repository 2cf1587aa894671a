"""A head as a function of named tensors: the flat signature that `torch.export` and ONNX graphs have.

A head's forward takes keyword arguments, dicts of modalities and output flags; an exported graph takes and
returns a flat list of named tensors. `ExportableModel` wraps a head in that signature: the inputs it reads (named
as its forward names them), example tensors at the model's own sizes, and the axes that stay symbolic:

| model | inputs | outputs | symbolic axes |
|---|---|---|---|
| image classification | `pixel_values` | `logits` | batch; height, width with Fourier positions or the conv stem |
| masked LM, sequence classification | `input_ids`, `attention_mask` | `logits` | batch, sequence (up to the learned positions) |
| optical flow | `inputs` | `logits` | batch, height, width |
| multimodal autoencoding | `image`, `audio`, `label`, `image_points`, `audio_points` | `audio_logits`, `image_logits`, `label_logits` | batch, points |
| `PerceiverIOModel` | those of its input adapter | `last_hidden_state` | as above |

The autoencoder decodes the flat output indices it is given (transformers' `subsampled_output_points`), so a full
reconstruction is a loop over chunks of indices in the runtime of choice. Inside a graph, the input array is read
and the queries are decoded in one piece: `config.input_chunk_size` and the decoder's `chunk_size` bound eager
memory with Python loops over concrete sizes, which a graph with symbolic sizes cannot hold (`whole_arrays`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.decoder import PerceiverIODecoder
from ..core.modeling import PerceiverIOModel, PerceiverIOPreTrainedModel
from ..heads import PerceiverIOForMultimodalAutoencoding
from ..input_adapters import (
    ArrayInputAdapter,
    FlowInputAdapter,
    ImageInputAdapter,
    InputAdapter,
    MultimodalInputAdapter,
    TextInputAdapter,
)
from ..position import FourierPositionEncoding
from ..queries import build_output_queries

# torch.export gives sizes 0 and 1 special treatment (broadcasting), so examples and lower bounds use 2; the graphs
# serve size 1 as well (tested). The conv stem's 7x7 convolution and 3x3 pooling need a few pixels.
MIN_SIZE = 2
MIN_CONV_STEM_SIZE = 8
MODALITIES = ("audio", "image", "label")


@dataclass
class ExportInput:
    """One input of an exported graph: its name, an example tensor and its symbolic axes (axis -> axis name)."""

    name: str
    example: torch.Tensor
    dynamic_axes: dict[int, str] = field(default_factory=dict)


def input_adapter(model: PerceiverIOPreTrainedModel) -> InputAdapter:
    return model.input_adapter if isinstance(model, PerceiverIOModel) else model.perceiver.input_adapter


def _image_inputs(adapter: ImageInputAdapter, batch_size: int) -> list[ExportInput]:
    fourier = isinstance(adapter.position_encoding, FourierPositionEncoding)
    grid = adapter.position_encoding.max_resolution if fourier else adapter.position_encoding.index_dims
    scale = 4 if adapter.prep_type == "conv" else adapter.spatial_downsample
    height, width = (size * scale for size in grid)
    axes = {0: "batch", 2: "height", 3: "width"} if fourier else {0: "batch"}
    return [ExportInput("pixel_values", torch.randn(batch_size, adapter.in_channels, height, width), axes)]


def _text_inputs(adapter: TextInputAdapter, batch_size: int) -> list[ExportInput]:
    length = min(adapter.max_position_embeddings, 16)
    input_ids = torch.randint(0, adapter.vocab_size, (batch_size, length), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones(batch_size, length, dtype=torch.long)
    attention_mask[-1, length // 2 :] = 0  # a padded row
    axes = {0: "batch", 1: "sequence"}
    return [ExportInput("input_ids", input_ids, axes), ExportInput("attention_mask", attention_mask, dict(axes))]


def _flow_inputs(adapter: FlowInputAdapter, batch_size: int) -> list[ExportInput]:
    height, width = adapter.position_encoding.max_resolution
    inputs = torch.rand(batch_size, adapter.num_frames, adapter.in_channels, height, width) * 2 - 1
    return [ExportInput("inputs", inputs, {0: "batch", 3: "height", 4: "width"})]


def _array_inputs(adapter: ArrayInputAdapter, batch_size: int) -> list[ExportInput]:
    return [ExportInput("inputs", torch.randn(batch_size, 16, adapter.num_channels), {0: "batch", 1: "length"})]


def _multimodal_inputs(model: PerceiverIOPreTrainedModel, batch_size: int) -> list[ExportInput]:
    """`audio`, `image` and `label` at the sizes of the decoder's output grids (the autoencoder's own sizes)."""
    adapters = input_adapter(model).modalities
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, PerceiverIODecoder):
        queries = decoder.queries
    else:  # PerceiverIOModel: the config still describes the decoder's queries
        queries = build_output_queries(model.config, (model.config.query_decoder or {}).get("query", {"type": None}))
    grids = dict(getattr(queries, "modalities", {}))
    if tuple(adapters) != MODALITIES or not all(hasattr(grids.get(name), "index_dims") for name in ("audio", "image")):
        raise ValueError(
            "Exporting a multimodal model needs DeepMind's autoencoder layout (audio, image and label inputs, decoded "
            f"by queries over the audio and image grids); this model's inputs are {list(adapters)}."
        )
    frames, height, width = grids["image"].index_dims
    (patches,) = grids["audio"].index_dims
    samples = patches * adapters["audio"].samples_per_patch
    return [
        ExportInput("audio", torch.rand(batch_size, samples, 1) * 2 - 1, {0: "batch"}),
        ExportInput("image", torch.rand(batch_size, frames, adapters["image"].in_channels, height, width), {0: "batch"}),
        ExportInput("label", torch.zeros(batch_size, adapters["label"].num_classes), {0: "batch"}),
    ]


def _model_inputs(model: PerceiverIOPreTrainedModel, batch_size: int) -> list[ExportInput]:
    adapter = input_adapter(model)
    for kind, build in (
        (ImageInputAdapter, _image_inputs),
        (TextInputAdapter, _text_inputs),
        (FlowInputAdapter, _flow_inputs),
        (ArrayInputAdapter, _array_inputs),
    ):
        if isinstance(adapter, kind):
            return build(adapter, batch_size)
    if isinstance(adapter, MultimodalInputAdapter):
        return _multimodal_inputs(model, batch_size)
    raise ValueError(f"Export does not know the inputs of a {type(adapter).__name__}.")


class ExportableModel(nn.Module):
    """`model` with a flat signature: tensors in (`input_names`, in that order), a tuple of tensors out
    (`output_names`). See the module docstring for each head's names and symbolic axes."""

    def __init__(self, model: PerceiverIOPreTrainedModel, batch_size: int = MIN_SIZE):
        super().__init__()
        self.model = model
        self.inputs = _model_inputs(model, batch_size)
        self.autoencoder = isinstance(model, PerceiverIOForMultimodalAutoencoding)
        if self.autoencoder:
            generator = torch.Generator().manual_seed(0)
            for name in ("image", "audio"):  # a few of every output; how many is symbolic
                count = model.decoder.queries.modalities[name].num_outputs
                points = torch.randperm(count, generator=generator)[: max(MIN_SIZE, min(count, 64))]
                self.inputs.append(ExportInput(f"{name}_points", points, {0: f"{name}_points"}))
            self.output_names = [f"{name}_logits" for name in MODALITIES]
        elif isinstance(model, PerceiverIOModel):
            self.output_names = ["last_hidden_state"]
        else:
            self.output_names = ["logits"]
        self.input_names = [spec.name for spec in self.inputs]

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.input_names, tensors))
        if self.autoencoder:
            return self._decode_modalities(**named)
        if isinstance(input_adapter(self.model), MultimodalInputAdapter):
            named = {"inputs": named}
        output = self.model(**named, return_dict=True)
        return (output.last_hidden_state,) if isinstance(self.model, PerceiverIOModel) else (output.logits,)

    def _decode_modalities(self, image_points: torch.Tensor, audio_points: torch.Tensor, **inputs) -> tuple:
        """Each modality decoded on its own from one encoding: the head's outputs for these points, in a graph whose
        shapes are plain sums (decoding the modalities as one stack of queries slices it at symbolic offsets)."""
        input_array, encoded = self.model.perceiver.encode(inputs)
        points = {"audio": audio_points, "image": image_points, "label": None}
        outputs = []
        for name in MODALITIES:
            only = {other: image_points.new_zeros(0) for other in MODALITIES} | {name: points[name]}
            logits, _ = self.model.decode(encoded.last_hidden_state, input_array, only)
            outputs.append(logits[name])
        return tuple(outputs)

    @property
    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        return tuple(spec.example for spec in self.inputs)

    def dynamic_shapes(self) -> tuple[tuple[dict[int, torch.export.Dim], ...]]:
        """`torch.export` dimensions for `*tensors`: one per axis name, shared by every input that has it."""
        adapter = input_adapter(self.model)
        maximum = {"sequence": getattr(adapter, "max_position_embeddings", None)}
        minimum = dict.fromkeys(("height", "width"), MIN_CONV_STEM_SIZE) if getattr(adapter, "prep_type", None) == "conv" else {}
        dims = {}
        for spec in self.inputs:
            for name in spec.dynamic_axes.values():
                dims.setdefault(name, torch.export.Dim(name, min=minimum.get(name, MIN_SIZE), max=maximum.get(name)))
        return (tuple({axis: dims[name] for axis, name in spec.dynamic_axes.items()} for spec in self.inputs),)


@contextmanager
def whole_arrays(model: PerceiverIOPreTrainedModel) -> Iterator[None]:
    """Read the input array and decode the queries in one piece while tracing (see the module docstring)."""
    decoders = [module for module in model.modules() if isinstance(module, PerceiverIODecoder)]
    saved = model.config.input_chunk_size, [decoder.chunk_size for decoder in decoders]
    model.config.input_chunk_size = None
    for decoder in decoders:
        decoder.chunk_size = None
    try:
        yield
    finally:
        model.config.input_chunk_size = saved[0]
        for decoder, chunk_size in zip(decoders, saved[1]):
            decoder.chunk_size = chunk_size


def export_program(model: PerceiverIOPreTrainedModel) -> tuple[torch.export.ExportedProgram, ExportableModel]:
    """`torch.export.export` of `model.eval()` with its flat signature and symbolic axes (see the module docstring).

    Returns the program and the `ExportableModel` that describes its inputs (`input_names`, `example_inputs`) and
    outputs (`output_names`); `program.module()(*tensors)` runs it.
    """
    exportable = ExportableModel(model.eval())
    with whole_arrays(model), torch.no_grad():
        program = torch.export.export(
            exportable, exportable.example_inputs, dynamic_shapes=exportable.dynamic_shapes(), strict=False
        )
    return program, exportable
