"""Scaling each series inside a forecasting model: the model sees every history on a common scale, and its
forecasts are mapped back. The statistics are those of transformers' time-series scalers (`scaling="std"`:
mean and standard deviation; `"mean"`: mean absolute value; `None`: none), over the observed steps only."""

from __future__ import annotations

import torch
from torch import nn

SCALINGS = ("std", "mean", None)


class SeriesScaler(nn.Module):
    """`(batch, steps, channels)` values and their observed mask -> scaled values, `loc` and `scale`
    (`(batch, 1, channels)` each), so that `values = scaled * scale + loc`.

    `"std"`: `loc` is the mean of the observed values, `scale` their standard deviation (`sqrt(variance +
    1e-5)`, so a constant series does not divide by zero). `"mean"`: `loc` is 0 and `scale` the mean absolute
    observed value (at least 1e-10); a series without any observed value takes the batch's mean absolute value.
    """

    def __init__(self, scaling: str | None = "std"):
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError(f"`scaling` must be one of {SCALINGS}, got {scaling!r}.")
        self.scaling = scaling

    def forward(
        self, values: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        observed = observed.to(values.dtype)
        count = observed.sum(dim=1, keepdim=True)
        if self.scaling == "std":
            loc = (values * observed).sum(dim=1, keepdim=True) / count.clamp_min(1.0)
            variance = (((values - loc) * observed) ** 2).sum(dim=1, keepdim=True) / count.clamp_min(1.0)
            scale = torch.sqrt(variance + 1e-5)
        elif self.scaling == "mean":
            total = (values * observed).abs().sum(dim=1, keepdim=True)
            batch_default = total.sum(dim=0) / count.sum(dim=0).clamp_min(1.0)
            scale = torch.where(count > 0, total / count.clamp_min(1.0), batch_default).clamp_min(1e-10)
            loc = torch.zeros_like(scale)
        else:
            loc = torch.zeros_like(values[:, :1])
            scale = torch.ones_like(loc)
        return (values - loc) / scale, loc, scale

    def extra_repr(self) -> str:
        return f"scaling={self.scaling!r}"
