"""Forecasts: every decoded time step becomes a distribution over the step's values (transformers' distribution
classes), or a point forecast. Outputs are in the scaled space the model works in; `loc` and `scale` (the
series scaler's) map them back to the data's units."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution
from transformers.time_series_utils import AffineTransformed, NormalOutput, StudentTOutput

from .base import OutputAdapter

DISTRIBUTIONS = {"student_t": StudentTOutput, "normal": NormalOutput}
POINT_LOSSES = ("mse", "mae")


class DistributionOutputAdapter(OutputAdapter):
    """`(batch, steps, in_channels)` decoded steps -> the parameters of one distribution per step and channel
    (`distribution`: `"student_t"` or `"normal"`), each `(batch, steps, num_channels)`."""

    def __init__(self, in_channels: int, num_channels: int, distribution: str = "student_t"):
        super().__init__()
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"`distribution_output` must be one of {sorted(DISTRIBUTIONS)}, got {distribution!r}.")
        self.num_channels = int(num_channels)
        self.distribution_output = DISTRIBUTIONS[distribution](dim=self.num_channels)
        self.projection = self.distribution_output.get_parameter_projection(in_channels)

    @classmethod
    def from_config(cls, config, in_channels: int, **spec) -> DistributionOutputAdapter:
        return cls(in_channels, **spec)

    def forward(self, decoded: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # transformers' domain maps drop a channel axis of size 1; keep (batch, steps, channels) throughout.
        return tuple(param.reshape(*decoded.shape[:-1], self.num_channels) for param in self.projection(decoded))

    def distribution(self, params: tuple[torch.Tensor, ...], loc: torch.Tensor, scale: torch.Tensor) -> Distribution:
        """The forecast distribution in the data's units, one independent variable per step and channel."""
        return AffineTransformed(self.distribution_output.distribution_class(*params), loc=loc, scale=scale)

    def point_forecast(self, params, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.distribution(params, loc, scale).mean

    def loss(self, params, loc, scale, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of `target` `(batch, steps, channels)`, per value."""
        return -self.distribution(params, loc, scale).log_prob(target)

    def sample(self, params, loc, scale, num_samples: int) -> torch.Tensor:
        """`(batch, num_samples, steps, channels)` draws."""
        return self.distribution(params, loc, scale).sample((num_samples,)).transpose(0, 1)


class PointOutputAdapter(OutputAdapter):
    """`(batch, steps, in_channels)` decoded steps -> one value per step and channel, trained with `loss` ("mse" or
    "mae") on the scaled values, so that every series weighs the same whatever its units."""

    def __init__(self, in_channels: int, num_channels: int, loss: str = "mse"):
        super().__init__()
        if loss not in POINT_LOSSES:
            raise ValueError(f"A point forecast's `loss` must be one of {POINT_LOSSES}, got {loss!r}.")
        self.loss_kind = loss
        self.projection = nn.Linear(in_channels, int(num_channels))

    @classmethod
    def from_config(cls, config, in_channels: int, **spec) -> PointOutputAdapter:
        return cls(in_channels, **spec)

    def forward(self, decoded: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.projection(decoded),)

    def point_forecast(self, params, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return params[0] * scale + loc

    def loss(self, params, loc, scale, target: torch.Tensor) -> torch.Tensor:
        error = params[0] - (target - loc) / scale
        return error.square() if self.loss_kind == "mse" else error.abs()

    def sample(self, params, loc, scale, num_samples: int) -> torch.Tensor:
        """The point forecast as the one sample, `(batch, 1, steps, channels)` (as transformers' models do)."""
        return self.point_forecast(params, loc, scale)[:, None]
