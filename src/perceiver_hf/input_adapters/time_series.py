"""Time series in, input array out: one row per past step, holding the step's values and whether each was
observed (the channels of a step, as a pixel holds its colours), with the step's time features as positions."""

from __future__ import annotations

import torch
from torch import nn

from ..input_array import InputArray
from ..position import TimeEncoding
from .base import InputAdapter

# Scaling a series needs a spread, hence two observed values of every channel.
MIN_OBSERVED_STEPS = 2


class TimeSeriesInputAdapter(InputAdapter):
    """`(batch, steps, num_channels)` scaled values and their observed mask -> rows `[values, observed]` with
    the time encoding of each step (`TimeEncoding`: Fourier features of its offset from the forecast origin, then
    the step's time features). Steps where no channel was observed are masked out of the encoder's attention.

    With `patch_length` P > 1, a row holds P consecutive steps (the history is padded at its start with missing
    steps to a multiple of P) and the time encoding of the patch's last step.

    Args:
        num_channels: channels (variables) of the series.
        time_encoding: `TimeEncoding` arguments, shared with the model's output queries.
        patch_length: steps per row.
    """

    def __init__(self, num_channels: int, time_encoding: dict | None = None, patch_length: int = 1):
        super().__init__()
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"A time series needs num_channels >= 1, got {num_channels!r}.")
        if not isinstance(patch_length, int) or patch_length < 1:
            raise ValueError(f"`patch_length` must be a positive integer, got {patch_length!r}.")
        self.num_series_channels = num_channels
        self.patch_length = patch_length
        self.time_encoding = TimeEncoding(**(time_encoding or {}))

    @property
    def num_channels(self) -> int:
        return 2 * self.num_series_channels * self.patch_length + self.time_encoding.num_channels

    def prepare(
        self, past_values: torch.Tensor, past_observed_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check a history and return it with missing values zeroed, and its boolean observed mask."""
        channels = self.num_series_channels
        if not isinstance(past_values, torch.Tensor) or past_values.ndim != 3 or past_values.shape[-1] != channels:
            got = f"shape {tuple(past_values.shape)}" if isinstance(past_values, torch.Tensor) else type(past_values).__name__
            hint = " Add the channel axis: `past_values[..., None]`." if got.startswith("shape") and (
                past_values.ndim == 2 and channels == 1
            ) else ""
            raise ValueError(
                f"Expected `past_values` of shape (batch, context_length, {channels}): the model was built for "
                f"{channels} channel(s); got {got}.{hint}"
            )
        if not past_values.is_floating_point():
            raise TypeError(f"Expected floating-point `past_values`, got dtype {past_values.dtype}.")
        if past_observed_mask is None:
            observed = torch.ones_like(past_values, dtype=torch.bool)
        else:
            if not isinstance(past_observed_mask, torch.Tensor) or past_observed_mask.shape != past_values.shape:
                got = tuple(past_observed_mask.shape) if isinstance(past_observed_mask, torch.Tensor) else type(past_observed_mask).__name__
                raise ValueError(
                    f"Expected `past_observed_mask` of the shape of `past_values`, {tuple(past_values.shape)}, got {got}."
                )
            observed = past_observed_mask.to(torch.bool)
        if not torch.compiler.is_compiling():  # checks of the values: a compiled graph cannot branch on them
            self._check_values(past_values, observed, past_observed_mask is not None)
        return past_values.masked_fill(~observed, 0.0), observed

    def _check_values(self, past_values: torch.Tensor, observed: torch.Tensor, mask_given: bool) -> None:
        finite = torch.isfinite(past_values)
        if not mask_given and not finite.all():
            raise ValueError(
                f"`past_values` has {int((~finite).sum())} NaN or infinite value(s) and no `past_observed_mask`: "
                "pass `past_observed_mask` (1 where a value was observed, 0 where it is missing), and the "
                "missing values are ignored."
            )
        if mask_given and not finite[observed].all():
            raise ValueError(
                "`past_values` has NaN or infinite values at steps that `past_observed_mask` marks as observed: "
                "set the mask to 0 there."
            )
        counts = observed.sum(dim=1)
        if past_values.shape[0] and counts.min() < MIN_OBSERVED_STEPS:
            series, channel = divmod(int(counts.argmin()), self.num_series_channels)
            raise ValueError(
                f"The history is too short: series {series}, channel {channel} has {int(counts.min())} observed "
                f"value(s) in its {past_values.shape[1]} steps; the model needs at least {MIN_OBSERVED_STEPS} (to "
                "scale it). Give a longer history."
            )

    def forward(
        self,
        values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        time_index: torch.Tensor | None = None,
        time_features: torch.Tensor | None = None,
        **kwargs,
    ) -> InputArray:
        """`values` as `prepare` returns them (scaled), `observed_mask` (default: all observed), `time_index`
        `(1 or batch, steps)` offsets of the steps (default `-steps .. -1`: the steps just before the forecast
        origin) and `time_features` `(batch, steps, num_time_features)`."""
        if observed_mask is None:
            observed_mask = torch.ones_like(values, dtype=torch.bool)
        patch, num_steps = self.patch_length, values.shape[1]
        if time_index is None:
            time_index = torch.arange(-num_steps, 0, device=values.device)[None]
        elif time_index.shape[-1] != num_steps or time_index.ndim not in (1, 2) or patch > 1:
            raise ValueError(
                f"Expected `past_time_index` of shape (batch, {num_steps}) or ({num_steps},), one offset per past "
                f"step (and a model without patches), got {tuple(time_index.shape)}."
            )
        time_index = time_index.reshape(-1, num_steps)
        self.time_encoding.check_time_features(time_features, num_steps, "past_time_features")
        if patch > 1:
            padding = -num_steps % patch
            values, observed_mask = (nn.functional.pad(t, (0, 0, padding, 0)) for t in (values, observed_mask))
            time_index = torch.arange(patch - num_steps - padding - 1, 0, patch, device=values.device)[None]
            if time_features is not None:
                time_features = nn.functional.pad(time_features, (0, 0, padding, 0))[:, patch - 1 :: patch]
            values, observed_mask = (t.reshape(t.shape[0], t.shape[1] // patch, patch * t.shape[-1]) for t in (values, observed_mask))
        positions = self.time_encoding(time_index, time_features, dtype=values.dtype, name="past_time_features")
        content = torch.cat([values, observed_mask.to(values.dtype)], dim=-1)
        rows_observed = observed_mask.any(dim=-1)
        return InputArray(content, positions, attention_mask=rows_observed)
