"""Training losses that transformers' `loss_function` does not provide (optical flow's end-point error, the
autoencoder's per-modality reconstruction losses, the class-weighted token-classification loss, the forecasting loss
over observed future values), and the checks of class labels that make a wrong label a clear error rather than
torch's bare `IndexError` (classification and masked-LM heads compute their losses with `loss_function`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .output_adapters import ModalityOutputAdapter, MultimodalOutputAdapter


def check_class_indices(labels: torch.Tensor, num_classes: int, shape: tuple[int, ...], ignore_index: int | None = None) -> None:
    """`labels` must be integer class indices in `[0, num_classes)` (or `ignore_index`) of the given `shape`."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}.")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} but the logits need {tuple(shape)}: give one class index per "
            + ("position, -100 where no loss is wanted." if ignore_index is not None else "example.")
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}.")
    if torch.compiler.is_compiling() or labels.numel() == 0:
        return
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        valid |= labels == ignore_index
    if not bool(valid.all()):
        bad = labels[~valid].unique()[:5].tolist()
        ignored = f" or be {ignore_index} (ignored)" if ignore_index is not None else ""
        raise ValueError(
            f"labels must lie in [0, {num_classes}){ignored}, got {bad}. The model has {num_classes} labels: check "
            "the label mapping, or pass `num_labels`/`id2label` (and `ignore_mismatched_sizes=True`) when loading."
        )


def has_labels(labels: torch.Tensor, ignore_index: int = -100) -> bool:
    """Whether a batch has anything to learn from: an empty batch, or one whose labels are all `ignore_index`, gets a
    zero loss from the heads rather than the mean over nothing (0/0 = NaN)."""
    return torch.compiler.is_compiling() or bool((labels != ignore_index).any())


def zero_loss(logits: torch.Tensor) -> torch.Tensor:
    """A zero loss that still belongs to the graph (a backward pass gives zero gradients)."""
    return logits.sum() * 0.0


def check_sequence_labels(labels: torch.Tensor, logits: torch.Tensor, problem_type: str | None) -> None:
    """Labels of a classifier, by transformers' `problem_type` rules (inferred from `num_labels` and the labels'
    dtype when unset): class indices `(batch,)`, multi-label targets `(batch, num_labels)`, or regression targets."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}.")
    batch_size, num_labels = logits.shape
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        elif not labels.is_floating_point():
            raise ValueError(
                f"labels of dtype {labels.dtype}: give class indices as torch.long, or multi-label targets as floats."
            )
        else:
            problem_type = "multi_label_classification"
    if problem_type == "single_label_classification":
        check_class_indices(labels.reshape(-1) if labels.shape == (batch_size, 1) else labels, num_labels, (batch_size,))
    elif problem_type == "multi_label_classification":
        if tuple(labels.shape) != (batch_size, num_labels) or not labels.is_floating_point():
            raise ValueError(
                f"Multi-label classification takes float targets of shape ({batch_size}, {num_labels}), got "
                f"{labels.dtype} of shape {tuple(labels.shape)}."
            )
    elif labels.numel() != batch_size * num_labels:
        raise ValueError(
            f"Regression takes targets of shape ({batch_size}, {num_labels}) (or ({batch_size},) for one output), got "
            f"shape {tuple(labels.shape)}."
        )


def token_classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: Sequence[float] | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    **kwargs,
) -> torch.Tensor:
    """Cross-entropy of `(batch, length, num_labels)` logits against `(batch, length)` labels, -100 left out (as
    transformers' `ForTokenClassification` loss). `class_weights` weight each label's positions (the mean is then
    weighted, as PyTorch's); `num_items_in_batch` (Trainer's count under gradient accumulation) makes it a sum
    divided by that count. A batch without a single labelled position has a zero loss (not NaN)."""
    check_class_indices(labels, logits.shape[-1], tuple(logits.shape[:2]), ignore_index=-100)
    weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32, device=logits.device)
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1).to(logits.device)
    if not has_labels(flat_labels):
        return zero_loss(flat_logits)
    if num_items_in_batch is None:
        return nn.functional.cross_entropy(flat_logits, flat_labels, weight=weight, ignore_index=-100)
    loss = nn.functional.cross_entropy(flat_logits, flat_labels, weight=weight, ignore_index=-100, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


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
    if not isinstance(targets, Mapping):
        raise TypeError(
            f"labels must be a dict of targets by modality ({', '.join(sorted(adapters.keys()))}), got "
            f"{type(targets).__name__}."
        )
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
        mse = nn.functional.mse_loss(prediction, target.to(prediction.dtype)) if prediction.numel() else None
        losses[name] = zero_loss(prediction) if mse is None else mse  # an empty batch: nothing to reconstruct
    if not losses:
        raise ValueError("labels is empty: give at least one modality's target.")
    total = sum(adapters.loss_weights.get(name, 1.0) * loss for name, loss in losses.items())
    return total, losses


def _classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if target.ndim == 1 and not target.is_floating_point():
        check_class_indices(target, logits.shape[-1], (logits.shape[0],), ignore_index=-100)
        if not has_labels(target):
            return zero_loss(logits)
        return nn.functional.cross_entropy(logits, target.to(logits.device))
    if target.shape == logits.shape and target.is_floating_point():
        if not target.numel():
            return zero_loss(logits)
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
        per_query = target.permute(0, 1, 3, 4, 2).reshape(target.shape[0], math.prod(target.shape[1:]) // channels, channels)
    else:
        samples = adapter.linear.out_features
        if target.ndim not in (2, 3) or (target.ndim == 3 and target.shape[-1] != 1) or target.shape[1] % samples:
            raise ValueError(
                f"The audio target must be a mono waveform (batch, samples[, 1]) with a multiple of {samples} samples, "
                f"got shape {tuple(target.shape)}."
            )
        per_query = target.reshape(target.shape[0], target.shape[1] // samples, samples)
    if points is not None:
        per_query = per_query[:, points.to(per_query.device)]
    gathered = per_query if adapter.kind == "pixels" else per_query.flatten(1)
    if gathered.shape[0] != batch_size or gathered.shape != prediction.shape:
        raise ValueError(
            f"The {adapter.kind} target gives {tuple(gathered.shape)} values for {tuple(prediction.shape)} outputs: "
            "it must have the size of the model's output (the config's frames, frame size and audio length)."
        )
    return gathered


def forecast_loss(adapter, params, loc: torch.Tensor, scale: torch.Tensor, target, observed=None) -> torch.Tensor:
    """The forecasting loss of an output adapter (`DistributionOutputAdapter`: negative log-likelihood;
    `PointOutputAdapter`: squared or absolute error of the scaled values), averaged over the observed target
    values `(batch, steps, channels)`; missing ones (0 in `observed`, where NaN is allowed) are left out."""
    expected = tuple(params[0].shape)
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != expected:
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(
            f"Expected `future_values` of shape {expected} (batch, decoded steps, channels) to match the forecast, "
            f"got {got}."
        )
    finite = torch.isfinite(target)
    if observed is None:
        if not finite.all():
            raise ValueError(
                "`future_values` has NaN or infinite values: pass `future_observed_mask` (0 where a value is missing) "
                "to leave them out of the loss."
            )
        observed = finite
    elif tuple(observed.shape) != expected:
        raise ValueError(f"Expected `future_observed_mask` of shape {expected}, got {tuple(observed.shape)}.")
    observed = observed.to(torch.bool)
    if not finite[observed].all():
        raise ValueError("`future_values` has NaN or infinite values where `future_observed_mask` is 1: set it to 0 there.")
    target = target.to(params[0].dtype).masked_fill(~observed, 0.0)
    per_value = adapter.loss(params, loc, scale, target).masked_fill(~observed, 0.0)
    return per_value.sum() / observed.sum().clamp_min(1)
