"""Forecasts: every decoded query becomes distributions over the values of its steps (transformers' distribution
classes), or point forecasts. Outputs are in the scaled space the model works in; `loc` and `scale` (the
series scaler's) map them back to the data's units."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Distribution
from transformers.time_series_utils import AffineTransformed, NormalOutput, StudentTOutput

from .base import OutputAdapter

DISTRIBUTIONS = {"student_t": StudentTOutput, "normal": NormalOutput}
POINT_LOSSES = ("mse", "mae")


class ForecastOutputAdapter(OutputAdapter):
    """Each decoded query holds `steps_per_query` consecutive steps of `num_channels` values: `(batch, queries,
    in_channels)` -> parameters each `(batch, queries * steps_per_query, num_channels)`."""

    def __init__(self, num_channels: int, steps_per_query: int = 1):
        super().__init__()
        if not isinstance(steps_per_query, int) or steps_per_query < 1:
            raise ValueError(f"`steps_per_query` must be a positive integer, got {steps_per_query!r}.")
        self.num_channels, self.steps_per_query = int(num_channels), steps_per_query

    @classmethod
    def from_config(cls, config, in_channels: int, **spec) -> ForecastOutputAdapter:
        return cls(in_channels, **spec)

    def per_step(self, params) -> tuple[torch.Tensor, ...]:
        # transformers' domain maps drop an axis of size 1; keep (batch, steps, channels) throughout.
        # Sizes given, not -1: the batch may be empty.
        return tuple(param.reshape(param.shape[0], math.prod(param.shape[1:]) // self.num_channels, self.num_channels) for param in params)


class DistributionOutputAdapter(ForecastOutputAdapter):
    """The parameters of one distribution per step and channel (`distribution`: `"student_t"` or `"normal"`)."""

    def __init__(self, in_channels: int, num_channels: int, distribution: str = "student_t", steps_per_query: int = 1):
        super().__init__(num_channels, steps_per_query)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"`distribution_output` must be one of {sorted(DISTRIBUTIONS)}, got {distribution!r}.")
        self.distribution_output = DISTRIBUTIONS[distribution](dim=self.num_channels * steps_per_query)
        self.projection = self.distribution_output.get_parameter_projection(in_channels)

    def forward(self, decoded: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.per_step(self.projection(decoded))

    def distribution(self, params: tuple[torch.Tensor, ...], loc: torch.Tensor, scale: torch.Tensor) -> Distribution:
        """The forecast distribution in the data's units, one independent variable per step and channel."""
        return AffineTransformed(self.distribution_output.distribution_class(*params), loc=loc, scale=scale)

    def point_forecast(self, params, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The mean: the distribution's `loc` (a Student's t has one, since transformers' domain map keeps its
        degrees of freedom above 2). Read directly, as torch's `mean` branches on values, which `torch.export`
        cannot trace."""
        named = dict(zip(self.distribution_output.args_dim, params))
        return named["loc"] * scale + loc

    def loss(self, params, loc, scale, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of `target` `(batch, steps, channels)`, per value."""
        return -self.distribution(params, loc, scale).log_prob(target)

    def sample(self, params, loc, scale, num_samples: int) -> torch.Tensor:
        """`(batch, num_samples, steps, channels)` draws."""
        return self.distribution(params, loc, scale).sample((num_samples,)).transpose(0, 1)


class PointOutputAdapter(ForecastOutputAdapter):
    """One value per step and channel, trained with `loss` ("mse" or "mae") on the scaled values, so that every
    series weighs the same whatever its units."""

    def __init__(self, in_channels: int, num_channels: int, loss: str = "mse", steps_per_query: int = 1):
        super().__init__(num_channels, steps_per_query)
        if loss not in POINT_LOSSES:
            raise ValueError(f"A point forecast's `loss` must be one of {POINT_LOSSES}, got {loss!r}.")
        self.loss_kind = loss
        self.projection = nn.Linear(in_channels, self.num_channels * steps_per_query)

    def forward(self, decoded: torch.Tensor) -> tuple[torch.Tensor]:
        return self.per_step((self.projection(decoded),))

    def point_forecast(self, params, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return params[0] * scale + loc

    def loss(self, params, loc, scale, target: torch.Tensor) -> torch.Tensor:
        error = params[0] - (target - loc) / scale
        return error.square() if self.loss_kind == "mse" else error.abs()

    def sample(self, params, loc, scale, num_samples: int) -> torch.Tensor:
        """The point forecast as the one sample, `(batch, 1, steps, channels)` (as transformers' models do)."""
        return self.point_forecast(params, loc, scale)[:, None]
