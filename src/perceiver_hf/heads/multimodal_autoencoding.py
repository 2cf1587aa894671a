"""Multimodal autoencoding: DeepMind's Kinetics-700 model reconstructs video, audio and the class label.

Audio patches, video patches and a (masked) one-hot label are packed into one input array, encoded once, and
decoded by one query per audio patch, per pixel and for the label, each mapped by its modality's output adapter.
A full reconstruction (804,737 queries) is one call, decoded in chunks (transformers' re-runs it per chunk).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..configuration import PerceiverIOConfig
from ..core.outputs import PerceiverIOMultimodalAutoencodingOutput
from ..core.rewrites import planner
from ..input_array import InputArray
from ..losses import reconstruction_loss
from ..output_adapters import MultimodalOutputAdapter, build_output_adapter
from ..progress import ProgressBar
from ..queries import MultimodalQueries
from .base import PerceiverIOHead


class PerceiverIOForMultimodalAutoencoding(PerceiverIOHead):
    """Perceiver IO video+audio+label autoencoder (DeepMind's Kinetics-700 model).

    Without `subsampled_output_points`, one call reconstructs everything: every pixel of every frame, every
    audio sample and the label logits, decoded in chunks of `config.query_decoder["chunk_size"]` queries.
    """

    main_input_name = "inputs"
    input_modalities = ("video", "audio")

    def __init__(self, config: PerceiverIOConfig):
        super().__init__(config)
        if not isinstance(self.decoder.queries, MultimodalQueries):
            raise ValueError("Multimodal autoencoding needs `config.query_decoder['query']` of type 'multimodal'.")
        # One linear map per modality, under the name checkpoints hold them by.
        adapters = self.output_adapters = build_output_adapter(config, self.decoder.output_channels, "multimodal")
        modalities = sorted(self.decoder.queries.modalities)
        if not isinstance(adapters, MultimodalOutputAdapter) or sorted(adapters) != modalities:
            raise ValueError(
                f"`config.output_adapter` must map the modalities {modalities} that the decoder queries, got "
                f"{config.output_adapter}."
            )
        self.post_init()

    def decode(
        self,
        latents: torch.Tensor,
        input_array: InputArray,
        subsampled_output_points: Mapping[str, torch.Tensor | None] | None = None,
        chunk_size: int | None = None,
        output_attentions: bool = False,
        folded: bool | None = None,
        on_block=None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Decode the (subsampled) outputs of every modality from the latents, in chunks. `folded` (default: the
        planner's choice) decodes with the folded decoder: same results, several times faster for many queries."""
        queries, layer = self.decoder.queries, self.decoder.cross_attention
        sizes = queries.modality_sizes(input_array, subsampled_output_points)
        if planner.decodes_folded(layer, sum(sizes.values()), queries.num_channels, output_attentions, folded):
            parts = {
                name: (queries.factored(name, 0, size, subsampled_output_points), self.output_adapters[name].linear)
                for name, size in sizes.items()
                if size
            }
            decoded = self.decoder.decode_folded(latents, parts, chunk_size, on_block)
            return self.output_adapters.layout(decoded), None
        decoded, weights = self.decoder(
            latents,
            input_array,
            output_attentions=output_attentions,
            chunk_size=chunk_size,
            postprocess=self.output_adapters.split(sizes),
            subsampled_points=subsampled_output_points,
            on_block=on_block,
        )
        return self.output_adapters.layout(decoded), weights

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
        width)`, `audio` `(batch, samples, 1)`, and `label` logits `(batch, num_labels)`. Decoded in chunks of
        `chunk_size` queries (peak memory stays bounded); `progress=True` shows a progress bar over the chunks.
        Values are the model's outputs, not clamped (pixels near [0, 1], samples near [-1, 1], as DeepMind's colab
        returns them); `PerceiverIOVideoAutoencodingProcessor.post_process` clamps them into uint8 frames."""
        inputs = self.perceiver.input_adapter.gather(inputs, image=image, audio=audio, label=label)
        self.output_adapters.check_inputs(inputs, self.decoder.queries.grids())
        input_array, encoded = self.perceiver.encode(inputs)
        on_block = ProgressBar("Decoding", unit="chunk") if progress else None
        logits, _ = self.decode(encoded.last_hidden_state, input_array, None, chunk_size, on_block=on_block)
        return self.output_adapters.reconstruction(logits, self.decoder.queries.grids())

    @can_return_tuple
    def forward(
        self,
        inputs: Mapping[str, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        subsampled_output_points: Mapping[str, torch.Tensor | None] | None = None,
        labels: Mapping[str, torch.Tensor] | torch.Tensor | None = None,
        chunk_size: int | None = None,
        image: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
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
            Queries decoded at a time (default `config.query_decoder["chunk_size"]`); bounds memory, never changes
            results.
        image, audio, label (`torch.Tensor`, *optional*):
            The modalities by name instead of `inputs` (`label` defaults to zeros), so that batches are flat dicts
            of tensors that transformers' default data collator and `Trainer` handle as they are.
        """
        inputs = self.perceiver.input_adapter.gather(inputs, image=image, audio=audio, label=label)
        self.output_adapters.check_inputs(inputs, self.decoder.queries.grids())
        input_array, encoded, output_attentions = self.encode(inputs, attention_mask, **kwargs)
        latents, points = encoded.last_hidden_state, subsampled_output_points
        logits, decoder_weights = self.decode(latents, input_array, points, chunk_size, output_attentions)

        loss = modality_losses = None
        if labels is not None:
            if isinstance(labels, torch.Tensor):
                labels = {"image": inputs["image"], "audio": inputs["audio"], "label": labels}
            loss, modality_losses = reconstruction_loss(self.output_adapters, logits, labels, subsampled_output_points)
        fields = {"loss": loss, "logits": logits, "modality_losses": modality_losses}
        return self.head_output(PerceiverIOMultimodalAutoencodingOutput, encoded, decoder_weights, **fields)
