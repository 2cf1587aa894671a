"""Training losses that transformers' `loss_function` does not provide: optical flow's end-point error and the
autoencoder's per-modality reconstruction losses. (Classification and masked-LM heads use `loss_function`.)"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .output_adapters import ModalityOutputAdapter, MultimodalOutputAdapter


def end_point_error(flow: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between predicted and ground-truth flow vectors `(..., 2)`.

    Pixels whose ground truth is not finite (NaN/inf marks unknown flow in sparse datasets such as KITTI) are
    left out of the mean.
    """
    valid = torch.isfinite(target).all(dim=-1)
    target = target.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    error = torch.linalg.vector_norm(flow - target, dim=-1).masked_fill(~valid, 0.0)
    return error.sum() / valid.sum().clamp(min=1)


def reconstruction_loss(
    adapters: MultimodalOutputAdapter,
    logits: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    subsampled_output_points: Mapping[str, torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum (`adapters.loss_weights`) of per-modality losses, and the losses themselves: mean squared error
    for pixels and audio samples, cross-entropy for the label (class indices, or class probabilities). Targets of
    subsampled outputs are gathered from full-size targets (`image` as `(batch, frames, 3, height, width)`,
    `audio` as `(batch, samples[, 1])`)."""
    points = dict(subsampled_output_points or {})
    unknown = sorted(set(targets) - set(adapters.keys()))
    if unknown:
        raise ValueError(f"labels name modalities {unknown}; the model reconstructs {sorted(adapters.keys())}.")
    losses = {}
    for name, target in targets.items():
        if name not in logits:
            raise ValueError(f"labels has a {name!r} target but subsampled_output_points selects no {name} output.")
        adapter, prediction = adapters[name], logits[name]
        if adapter.kind == "classification":
            losses[name] = _classification_loss(prediction, target)
            continue
        target = _gather_target(adapter, target, points.get(name), prediction)
        losses[name] = nn.functional.mse_loss(prediction, target.to(prediction.dtype))
    if not losses:
        raise ValueError("labels is empty: give at least one modality's target.")
    total = sum(adapters.loss_weights.get(name, 1.0) * loss for name, loss in losses.items())
    return total, losses


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
        per_query = target.permute(0, 1, 3, 4, 2).reshape(target.shape[0], -1, channels)
    else:
        samples = adapter.linear.out_features
        if target.ndim not in (2, 3) or (target.ndim == 3 and target.shape[-1] != 1) or target.shape[1] % samples:
            raise ValueError(
                f"The audio target must be a mono waveform (batch, samples[, 1]) with a multiple of {samples} samples, "
                f"got shape {tuple(target.shape)}."
            )
        per_query = target.reshape(target.shape[0], -1, samples)
    if points is not None:
        per_query = per_query[:, points.to(per_query.device)]
    gathered = per_query if adapter.kind == "pixels" else per_query.reshape(per_query.shape[0], -1)
    if gathered.shape[0] != batch_size or gathered.shape != prediction.shape:
        raise ValueError(
            f"The {adapter.kind} target gives {tuple(gathered.shape)} values for {tuple(prediction.shape)} outputs: "
            "it must have the size of the model's output (the config's frames, frame size and audio length)."
        )
    return gathered
