"""Multimodal autoencoding: DeepMind's Kinetics-700 model reconstructs video, audio and the class label.

The input adapter packs audio patches, video patches and a (masked) one-hot label into one array; the
latents encode it once; the decoder queries one output per audio patch, one per pixel and one for the label
(`MultimodalQueries`), and each modality's output adapter maps the shared decoder output to samples, RGB
values or class logits.

A full reconstruction decodes 16 x 224 x 224 pixels plus 1,920 audio patches: 804,737 queries of 1,026
channels. One call encodes once and decodes them in chunks, each chunk reduced to pixels and samples before
the next, so peak memory stays bounded; transformers' Perceiver instead needs the whole model re-run for
each of 128 subsampled chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput, can_return_tuple

from tqdm.auto import tqdm

from ..configuration import PerceiverIOConfig
from ..folded_decoding import AffineMap, FoldedCrossAttentionDecoder, can_fold
from ..input_array import InputArray
from ..modeling import PerceiverIODecoder, PerceiverIOModel, PerceiverIOPreTrainedModel, concatenate_blocks
from ..queries import FactoredQueries, MultimodalQueries


@dataclass
class PerceiverIOMultimodalAutoencodingOutput(ModelOutput):
    """Output of `PerceiverIOForMultimodalAutoencoding` (the fields of transformers' `PerceiverClassifierOutput`,
    plus the per-modality terms of the loss).

    Attributes:
        loss: weighted sum of the per-modality reconstruction losses, when `labels` are given.
        logits: `{"audio": (batch, patches * samples_per_patch), "image": (batch, pixels, 3),
            "label": (batch, num_labels)}` for the decoded (all, or subsampled) outputs.
        hidden_states, attentions: the encoder's (see `PerceiverIOModelOutput`).
        cross_attentions: the encoder cross-attention weights followed by the decoder's.
        modality_losses: the unweighted loss of each modality that had a target.
    """

    loss: torch.Tensor | None = None
    logits: dict[str, torch.Tensor] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None
    modality_losses: dict[str, torch.Tensor] | None = None


class ModalityOutputAdapter(nn.Module):
    """A linear map of the decoder output, laid out for one modality.

    `kind` is `"audio"` (each query is a patch of `samples_per_patch` samples, flattened into a waveform),
    `"pixels"` (each query is a pixel with `num_channels` values) or `"classification"` (one query, `num_classes`
    logits).
    """

    def __init__(self, in_channels: int, kind: str, **spec):
        super().__init__()
        sizes = {"audio": "samples_per_patch", "pixels": "num_channels", "classification": "num_classes"}
        if kind not in sizes:
            raise ValueError(f"Unknown output adapter type {kind!r}; expected one of {sorted(sizes)}.")
        self.kind = kind
        self.linear = nn.Linear(in_channels, int(spec[sizes[kind]]))

    @classmethod
    def from_spec(cls, in_channels: int, spec: dict) -> ModalityOutputAdapter:
        """From a `config.output_adapter["modalities"]` entry, e.g. `{"type": "pixels", "num_channels": 3}`."""
        spec = dict(spec)
        return cls(in_channels, spec.pop("type", None), **spec)

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        """`(batch, queries, in_channels)` -> `(batch, queries, out_channels)`, applied chunk by chunk."""
        return self.linear(decoded)

    def layout(self, outputs: torch.Tensor) -> torch.Tensor:
        """All chunks' outputs in transformers' layout."""
        if self.kind == "audio":
            return outputs.reshape(outputs.shape[0], -1)
        if self.kind == "classification":
            return outputs[:, 0]
        return outputs


class PerceiverIOForMultimodalAutoencoding(PerceiverIOPreTrainedModel):
    """Perceiver IO video+audio+label autoencoder (DeepMind's Kinetics-700 model).

    Without `subsampled_output_points`, one call reconstructs everything: every pixel of every frame, every
    audio sample and the label logits, decoded in chunks of `config.decoder["chunk_size"]` queries.
    """

    main_input_name = "inputs"
    input_modalities = ("video", "audio")

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        self.perceiver = PerceiverIOModel(config)
        self.decoder = PerceiverIODecoder(config)
        if not isinstance(self.decoder.queries, MultimodalQueries):
            raise ValueError("Multimodal autoencoding needs `config.decoder['query']` of type 'multimodal'.")
        spec = dict(config.output_adapter or {})
        modalities = spec.get("modalities") or {}
        if sorted(modalities) != sorted(self.decoder.queries.modalities):
            raise ValueError(
                f"`config.output_adapter['modalities']` names {sorted(modalities)} but the decoder queries "
                f"{sorted(self.decoder.queries.modalities)}."
            )
        decoded_channels = self.decoder.output_projection.out_features
        self.output_adapters = nn.ModuleDict(
            {name: ModalityOutputAdapter.from_spec(decoded_channels, modalities[name]) for name in sorted(modalities)}
        )
        self.loss_weights = {name: float(weight) for name, weight in (spec.get("loss_weights") or {}).items()}
        self.post_init()

    def _gather_inputs(self, inputs, image=None, audio=None, label=None) -> dict[str, torch.Tensor]:
        """`inputs`, or the modalities given by name (`label` defaults to zeros: the model always masks it)."""
        named = {name: value for name, value in (("image", image), ("audio", audio), ("label", label)) if value is not None}
        if inputs is not None and named:
            raise ValueError(f"You cannot use both `inputs` and {sorted(named)}: pass the modalities one way.")
        if inputs is None and not named:
            raise ValueError(
                "You have to specify `inputs`: a dict with `image` (batch, frames, 3, height, width), `audio` "
                "(batch, samples, 1) and `label` (batch, num_labels), e.g. from PerceiverIOVideoAutoencodingProcessor "
                "(or pass `image=` and `audio=`)."
            )
        if inputs is not None:
            return inputs
        adapters = self.perceiver.input_adapter.modalities
        if "label" not in named and "label" in adapters and named:
            reference = next(iter(named.values()))
            named["label"] = reference.new_zeros(reference.shape[0], adapters["label"].num_channels)
        return named

    # -- decoding ----------------------------------------------------------------------------------------------

    def _postprocess(self, sizes: dict[str, int]):
        """Per decoded chunk: split its rows by modality and map each part through its output adapter."""
        bounds, offset = {}, 0
        for name, size in sizes.items():
            bounds[name] = (offset, offset + size)
            offset += size

        def postprocess(decoded: torch.Tensor, start: int, end: int) -> dict[str, torch.Tensor]:
            outputs = {}
            for name, (lo, hi) in bounds.items():
                a, b = max(start, lo), min(end, hi)
                if a < b:
                    outputs[name] = self.output_adapters[name](decoded[:, a - start : b - start])
            return outputs

        return postprocess

    def decode(
        self,
        latents: torch.Tensor,
        input_array: InputArray,
        subsampled_output_points: Mapping[str, torch.Tensor | None] | None = None,
        chunk_size: int | None = None,
        output_attentions: bool = False,
        folded: bool | None = None,
        progress: bool = False,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Decode the (subsampled) outputs of every modality from the latents, in chunks.

        `folded` picks the inference-time algebra of `perceiver_hf.folded_decoding` (same results, several
        times faster for many queries). By default it is used without autograd and attention outputs, when
        there are at least as many queries as query channels (below that, precomputing costs more than it saves).
        """
        sizes = self.decoder.queries.modality_sizes(input_array, subsampled_output_points)
        foldable = not output_attentions and not torch.is_grad_enabled() and can_fold(self.decoder.cross_attention)
        if folded is None:
            folded = foldable and sum(sizes.values()) >= self.decoder.queries.num_channels
        if folded:
            if not foldable:
                raise ValueError(
                    "Folded decoding is for inference: run it under torch.no_grad() and without output_attentions."
                )
            return self._decode_folded(latents, sizes, subsampled_output_points, chunk_size, progress), None
        decoded, weights = self.decoder(
            latents,
            input_array,
            output_attentions=output_attentions,
            chunk_size=chunk_size,
            postprocess=self._postprocess(sizes),
            subsampled_points=subsampled_output_points,
        )
        # A modality with an empty subsample has no outputs, hence no entry.
        logits = {name: adapter.layout(decoded[name]) for name, adapter in self.output_adapters.items() if name in decoded}
        return logits, weights

    def _decode_folded(
        self,
        latents: torch.Tensor,
        sizes: dict[str, int],
        subsampled_output_points: Mapping[str, torch.Tensor | None] | None,
        chunk_size: int | None,
        progress: bool,
    ) -> dict[str, torch.Tensor]:
        layer = FoldedCrossAttentionDecoder(self.decoder.cross_attention, latents)
        chunk_size = chunk_size or self.decoder.chunk_size or max(sizes.values())
        total_chunks = sum(-(-size // chunk_size) for size in sizes.values())
        bar = tqdm(total=total_chunks, desc="Decoding", unit="chunk", disable=not progress)
        logits = {}
        for name, size in sizes.items():
            if size == 0:
                continue
            adapter = self.output_adapters[name]
            output_map = AffineMap.compose(self.decoder.output_projection, adapter.linear)
            queries = self.decoder.queries.factored(name, 0, size, subsampled_output_points)
            step = _aligned_chunk_size(queries, chunk_size)
            # Folding the output map pays off when it is applied to more queries than it has outputs.
            decode = layer.decode if size >= output_map.out_features else layer.decode_unfolded_output
            blocks = []
            for start in range(0, size, step):
                block = FactoredQueries(queries.tables, queries.indices[start : start + step], queries.constant)
                blocks.append(decode(block, output_map))
                bar.update()
            logits[name] = adapter.layout(concatenate_blocks(blocks))
        bar.close()
        return logits

    @torch.no_grad()
    def reconstruct(
        self,
        inputs: Mapping[str, torch.Tensor] | None = None,
        chunk_size: int | None = None,
        progress: bool = False,
        image: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Reconstruct every modality in one call, laid out like the inputs: `image` `(batch, frames, 3, height,
        width)`, `audio` `(batch, samples, 1)`, and `label` logits `(batch, num_labels)`.

        Encodes once and decodes all outputs in chunks of `chunk_size` queries (peak memory stays bounded);
        `progress=True` shows a progress bar over the chunks. The modalities may be given by name. Values are the
        model's outputs, not clamped (pixels near [0, 1], samples near [-1, 1], as DeepMind's colab returns them);
        `PerceiverIOVideoAutoencodingProcessor.post_process` clamps them into uint8 frames and [-1, 1] samples.
        """
        inputs = self._gather_inputs(inputs, image, audio, label)
        input_array, encoded = self.perceiver.encode(inputs)
        logits, _ = self.decode(encoded.last_hidden_state, input_array, None, chunk_size, progress=progress)
        reconstruction = {}
        for name, output in logits.items():
            adapter, queries = self.output_adapters[name], self.decoder.queries.modalities[name]
            if adapter.kind == "pixels":  # (batch, pixels, C) -> (batch, [frames,] C, height, width)
                grid = output.reshape(output.shape[0], *queries.index_dims, output.shape[-1])
                output = grid.movedim(-1, -3)
            elif adapter.kind == "audio":
                output = output[..., None]
            reconstruction[name] = output
        return reconstruction

    # -- loss ----------------------------------------------------------------------------------------------------

    def reconstruction_loss(
        self,
        logits: dict[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        subsampled_output_points: Mapping[str, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of per-modality losses: mean squared error for pixels and audio samples, cross-entropy
        for the label (class indices, or class probabilities). Targets of subsampled outputs are gathered from
        full-size targets (`image` as `(batch, frames, 3, height, width)`, `audio` as `(batch, samples[, 1])`)."""
        points = dict(subsampled_output_points or {})
        unknown = sorted(set(targets) - set(self.output_adapters))
        if unknown:
            raise ValueError(f"labels name modalities {unknown}; the model reconstructs {sorted(self.output_adapters)}.")
        losses = {}
        for name, target in targets.items():
            if name not in logits:
                raise ValueError(f"labels has a {name!r} target but subsampled_output_points selects no {name} output.")
            adapter, prediction = self.output_adapters[name], logits[name]
            if adapter.kind == "classification":
                losses[name] = _classification_loss(prediction, target)
                continue
            target = _gather_target(adapter, target, points.get(name), prediction)
            losses[name] = nn.functional.mse_loss(prediction, target.to(prediction.dtype))
        if not losses:
            raise ValueError("labels is empty: give at least one modality's target.")
        total = sum(self.loss_weights.get(name, 1.0) * loss for name, loss in losses.items())
        return total, losses

    # -- forward -------------------------------------------------------------------------------------------------

    @can_return_tuple
    def forward(
        self,
        inputs: Mapping[str, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        subsampled_output_points: Mapping[str, torch.Tensor | None] | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        labels: Mapping[str, torch.Tensor] | torch.Tensor | None = None,
        chunk_size: int | None = None,
        image: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
        **kwargs,
    ) -> PerceiverIOMultimodalAutoencodingOutput:
        r"""
        inputs (`dict[str, torch.Tensor]`):
            `image` `(batch, frames, 3, height, width)` in [0, 1], `audio` `(batch, samples, 1)` in [-1, 1] and
            `label` `(batch, num_labels)` (zeros: the label is always masked), e.g. from
            `PerceiverIOVideoAutoencodingProcessor`.
        subsampled_output_points (`dict[str, torch.Tensor]`, *optional*):
            Flat indices of the outputs to decode per modality (`image`: into frames x height x width, `audio`:
            into audio patches; `None` or absent: all). Without it, everything is reconstructed in one call.
        labels (`dict[str, torch.Tensor]` or `torch.LongTensor`, *optional*):
            Reconstruction targets per modality (any of `image`, `audio`, `label`; full size even when outputs
            are subsampled), for a weighted loss (`config.output_adapter["loss_weights"]`). A tensor is taken as
            the class targets, with the inputs themselves as the image and audio targets (autoencoding).
        chunk_size (`int`, *optional*):
            Queries decoded at a time (default `config.decoder["chunk_size"]`); bounds memory, never changes results.
        image, audio, label (`torch.Tensor`, *optional*):
            The modalities by name instead of `inputs` (`label` defaults to zeros), so that batches are flat dicts
            of tensors that transformers' default data collator and `Trainer` handle as they are.
        """
        inputs = self._gather_inputs(inputs, image, audio, label)
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)

        input_array, encoded = self.perceiver.encode(
            inputs,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits, decoder_weights = self.decode(
            encoded.last_hidden_state, input_array, subsampled_output_points, chunk_size, output_attentions
        )

        loss = modality_losses = None
        if labels is not None:
            if isinstance(labels, torch.Tensor):
                labels = {"image": inputs["image"], "audio": inputs["audio"], "label": labels}
            loss, modality_losses = self.reconstruction_loss(logits, labels, subsampled_output_points)

        return self.head_output(
            PerceiverIOMultimodalAutoencodingOutput,
            encoded,
            decoder_weights,
            loss=loss,
            logits=logits,
            modality_losses=modality_losses,
        )


def _aligned_chunk_size(queries: FactoredQueries, chunk_size: int) -> int:
    """Round the chunk size down to whole rows of the last grid dimension (the folded decoder broadcasts those)."""
    if not queries.tables:
        return chunk_size
    width = queries.tables[-1].shape[0]
    return max(width, chunk_size // width * width)


def _classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if target.ndim == 1 and not target.is_floating_point():
        return nn.functional.cross_entropy(logits, target.to(logits.device))
    if target.shape == logits.shape:
        return nn.functional.cross_entropy(logits, target.to(logits.dtype))  # class probabilities
    raise ValueError(
        f"The label target must be class indices of shape ({logits.shape[0]},) or class probabilities of shape "
        f"{tuple(logits.shape)}, got {target.dtype} of shape {tuple(target.shape)}."
    )


def _gather_target(
    adapter: ModalityOutputAdapter, target: torch.Tensor, points: torch.Tensor | None, prediction: torch.Tensor
) -> torch.Tensor:
    """The entries of a full-size target that the (possibly subsampled) prediction reconstructs."""
    batch_size = prediction.shape[0]
    if adapter.kind == "pixels":
        channels = adapter.linear.out_features
        if target.ndim != 5 or target.shape[2] != channels:
            raise ValueError(
                f"The image target must have the input layout (batch, frames, {channels}, height, width), got shape "
                f"{tuple(target.shape)}."
            )
        per_pixel = target.permute(0, 1, 3, 4, 2).reshape(target.shape[0], -1, channels)
    else:
        samples = adapter.linear.out_features
        if target.ndim not in (2, 3) or (target.ndim == 3 and target.shape[-1] != 1) or target.shape[1] % samples:
            raise ValueError(
                f"The audio target must be a mono waveform (batch, samples[, 1]) with a multiple of {samples} samples, "
                f"got shape {tuple(target.shape)}."
            )
        per_pixel = target.reshape(target.shape[0], -1, samples)
    if points is not None:
        per_pixel = per_pixel[:, points.to(per_pixel.device)]
    gathered = per_pixel if adapter.kind == "pixels" else per_pixel.reshape(per_pixel.shape[0], -1)
    if gathered.shape[0] != batch_size or gathered.shape != prediction.shape:
        raise ValueError(
            f"The {adapter.kind} target gives {tuple(gathered.shape)} values for {tuple(prediction.shape)} outputs: "
            "it must have the size of the model's output (the config's frames, frame size and audio length)."
        )
    return gathered
