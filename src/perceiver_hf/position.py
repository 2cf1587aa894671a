"""Position encodings: Fourier features (computed, never stored) and trainable embeddings.

Conventions follow DeepMind's Perceiver IO exactly, because converted checkpoints depend on them:

* positions are `linspace(-1, 1, n)` per index dimension (both ends included), laid out with an
  'ij' meshgrid and flattened row-major;
* frequencies are `linspace(1, max_resolution / 2, num_bands)` per dimension;
* channels are ordered `[pos_1 .. pos_d, sin(pi f_k pos_i) (i-major, k-minor), cos(...)]`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _as_dim(size) -> int:
    # Symbolic sizes (torch.export, torch.compile with dynamic shapes) stay symbolic: int() would fix them.
    return size if isinstance(size, (int, torch.SymInt)) else int(size)


def _as_dims(index_dims: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(index_dims, (int, torch.SymInt)):
        return (index_dims,)
    return tuple(_as_dim(d) for d in index_dims)


def _num_elements(dims: Sequence[int]) -> int:
    # math.prod on Python ints keeps torch.compile happy (np.prod on shapes breaks graphs).
    return math.prod(dims)


def _feature_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def grid_coordinates(flat: torch.Tensor, index_dims: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """Row-major coordinates of the flat indices `flat` in a grid of shape `index_dims` (`torch.unravel_index`,
    written with floor division so that symbolic sizes stay symbolic under `torch.export`)."""
    coordinates = []
    for size in reversed(index_dims):
        quotient = torch.div(flat, size, rounding_mode="floor")
        coordinates.append(flat - quotient * size)  # not `%`: ONNX export has no remainder by a symbolic size
        flat = quotient
    return tuple(reversed(coordinates))


def _linspace(size: int, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    """`torch.linspace(-1, 1, size)`. A symbolic `size` (under `torch.export`) would be fixed to its example value
    by `linspace`, so it is computed from `arange` instead, the same way (from both ends), to within rounding."""
    if not isinstance(size, torch.SymInt):
        return torch.linspace(-1.0, 1.0, steps=size, dtype=dtype, device=device)
    index = torch.arange(size, device=device, dtype=dtype)
    step = 2.0 / torch.sym_max(size - 1, 1)
    return torch.where(index < (size + 1) // 2, -1.0 + step * index, 1.0 - step * (size - 1 - index))


def linear_positions(
    index_dims: Sequence[int],
    start: int = 0,
    end: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Grid positions in [-1, 1] for the flat indices `start:end` of an array of shape `index_dims`.

    Returns a `(end - start, len(index_dims))` tensor of `dtype` (float32 unless float64 is asked for). Rows are
    gathered from the per-dimension `linspace`, so any slice holds exactly the values of the full grid (chunked
    decoding relies on that).
    """
    dims = _as_dims(index_dims)
    total = _num_elements(dims)
    end = total if end is None else end
    flat = torch.arange(start, end, device=device)
    coordinates = grid_coordinates(flat, dims)
    columns = [
        _linspace(size, dtype, device)[coordinate]
        for size, coordinate in zip(dims, coordinates)
    ]
    return torch.stack(columns, dim=-1)


def fourier_features(
    positions: torch.Tensor,
    num_bands: int,
    max_resolution: Sequence[int],
    concat_pos: bool = True,
    sine_only: bool = False,
) -> torch.Tensor:
    """Fourier features of `positions` (`(..., d)`, values in [-1, 1]) as `(..., C)`.

    Computed in float32 (DeepMind's and transformers' precision, which converted checkpoints were trained with),
    or in float64 for float64 positions, so that a float64 model is float64 throughout.
    """
    compute_dtype = _feature_dtype(positions.dtype)
    positions = positions.to(compute_dtype)
    frequencies = torch.stack(
        [
            torch.linspace(1.0, resolution / 2, steps=num_bands, dtype=compute_dtype, device=positions.device)
            for resolution in max_resolution
        ]
    )  # (d, num_bands)
    scaled = positions[..., :, None] * frequencies  # (..., d, num_bands)
    scaled = scaled.flatten(-2)  # i-major, k-minor
    features = [torch.sin(math.pi * scaled)] if sine_only else [torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)]
    if concat_pos:
        features.insert(0, positions)
    return torch.cat(features, dim=-1)


class FourierPositionEncoding(nn.Module):
    """Fixed Fourier-feature position encoding, computed on the fly for any index shape.

    Nothing is stored: a flow model's 182,528 x 258 table would otherwise weigh 190 MB in the checkpoint.
    """

    def __init__(
        self,
        num_bands: int,
        max_resolution: Sequence[int],
        concat_pos: bool = True,
        sine_only: bool = False,
    ):
        super().__init__()
        self.num_bands = int(num_bands)
        self.max_resolution = _as_dims(max_resolution)
        self.concat_pos = concat_pos
        self.sine_only = sine_only

    @property
    def num_dimensions(self) -> int:
        return len(self.max_resolution)

    @property
    def num_channels(self) -> int:
        per_dimension = self.num_bands * (1 if self.sine_only else 2)
        return self.num_dimensions * per_dimension + (self.num_dimensions if self.concat_pos else 0)

    def channel_dimensions(self) -> torch.Tensor:
        """For each output channel, the index of the position dimension it is computed from."""
        dims = list(range(self.num_dimensions))
        per_band = [d for d in dims for _ in range(self.num_bands)]
        owners = (dims if self.concat_pos else []) + per_band * (1 if self.sine_only else 2)
        return torch.tensor(owners)

    def forward(
        self,
        index_dims: Sequence[int],
        start: int = 0,
        end: int | None = None,
        positions: torch.Tensor | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Encoding of the grid `index_dims` (rows `start:end` of it), or of explicit `positions` `(..., d)`."""
        if positions is None:
            dims = _as_dims(index_dims)
            if len(dims) != self.num_dimensions:
                raise ValueError(
                    f"Fourier position encoding was configured for {self.num_dimensions}-D positions "
                    f"(max_resolution={self.max_resolution}) but got index dimensions {dims}."
                )
            positions = linear_positions(dims, start, end, device=device, dtype=_feature_dtype(dtype))
        features = fourier_features(positions, self.num_bands, self.max_resolution, self.concat_pos, self.sine_only)
        return features.to(dtype)

    def extra_repr(self) -> str:
        return f"num_bands={self.num_bands}, max_resolution={self.max_resolution}, concat_pos={self.concat_pos}, sine_only={self.sine_only}"


class TrainablePositionEncoding(nn.Module):
    """A learned `(prod(index_dims), num_channels)` table, optionally resized bicubically for 2-D inputs."""

    def __init__(self, index_dims: int | Sequence[int], num_channels: int):
        super().__init__()
        self.index_dims = _as_dims(index_dims)
        self.num_channels = int(num_channels)
        self.position_embeddings = nn.Parameter(torch.empty(_num_elements(self.index_dims), self.num_channels))
        nn.init.normal_(self.position_embeddings, std=0.02)

    def forward(self, index_dims: Sequence[int] | None = None, interpolate: bool = False) -> torch.Tensor:
        """The `(M, C)` table for `index_dims` (the trained shape when omitted)."""
        dims = self.index_dims if index_dims is None else _as_dims(index_dims)
        if dims == self.index_dims:
            return self.position_embeddings
        if not interpolate:
            raise ValueError(
                f"Learned position encodings were trained for index shape {self.index_dims} but the input has "
                f"shape {dims}. Resize the input, or pass `interpolate_pos_encoding=True` to resize the encodings."
            )
        if len(self.index_dims) != 2 or len(dims) != 2:
            raise ValueError(
                f"Only 2-D learned position encodings can be interpolated (trained shape {self.index_dims}, "
                f"requested {dims})."
            )
        height, width = self.index_dims
        grid = self.position_embeddings.reshape(1, height, width, self.num_channels).permute(0, 3, 1, 2)
        # Bicubic with align_corners=False, as transformers' Perceiver does, so results stay comparable.
        grid = nn.functional.interpolate(grid, size=dims, mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(_num_elements(dims), self.num_channels)

    def extra_repr(self) -> str:
        return f"index_dims={self.index_dims}, num_channels={self.num_channels}"


class TimeEncoding(nn.Module):
    """Features of time steps (for time series): `t / max_period`, `sin` and `cos` of `2 pi t / p` for `num_bands`
    periods `p` spaced geometrically from `min_period` to `max_period` steps, then `num_time_features` features
    given with every step (calendar features such as the time of day, or any known covariate).

    The grid encodings above place a fixed number of points in [-1, 1]; a time step here is an offset counted in
    steps (from the forecast origin), so every past or future step has an encoding and a model can be asked for
    any horizon. Geometric periods cover both the step-to-step scale and the whole context with few bands.
    """

    def __init__(self, num_bands: int = 32, max_period: float = 4096.0, min_period: float = 2.0, num_time_features: int = 0):
        super().__init__()
        if num_bands < 1 or not 0 < min_period < max_period or num_time_features < 0:
            raise ValueError(
                f"A time encoding needs num_bands >= 1, 0 < min_period < max_period and num_time_features >= 0, got "
                f"num_bands={num_bands}, min_period={min_period}, max_period={max_period}, "
                f"num_time_features={num_time_features}."
            )
        self.num_bands, self.max_period, self.min_period = int(num_bands), float(max_period), float(min_period)
        self.num_time_features = int(num_time_features)

    @property
    def num_channels(self) -> int:
        return 2 * self.num_bands + 1 + self.num_time_features

    def forward(
        self, steps: torch.Tensor, time_features: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
        name: str = "time_features",
    ) -> torch.Tensor:
        """`(1 or batch, n)` time steps and `(batch, n, num_time_features)` features -> `(1 or batch, n,
        num_channels)`. `name` is the argument the features came in, for error messages."""
        self.check_time_features(time_features, steps.shape[-1], name)
        compute_dtype = _feature_dtype(dtype)
        steps = steps.to(compute_dtype)[..., None]
        periods = torch.logspace(
            math.log10(self.min_period), math.log10(self.max_period), self.num_bands, dtype=compute_dtype,
            device=steps.device,
        )
        angles = (2 * math.pi) * steps / periods
        features = torch.cat([steps / self.max_period, torch.sin(angles), torch.cos(angles)], dim=-1).to(dtype)
        if time_features is None:
            return features
        features = features.expand(time_features.shape[0], -1, -1)
        return torch.cat([features, time_features.to(dtype)], dim=-1)

    def check_time_features(self, time_features: torch.Tensor | None, num_steps: int, name: str) -> None:
        """Refuse missing or misshapen time features, naming the argument `name` they came in."""
        expected = (num_steps, self.num_time_features)
        if self.num_time_features and time_features is None:
            raise ValueError(
                f"This model was built with {self.num_time_features} time features per step: pass `{name}` of "
                f"shape (batch, {expected[0]}, {expected[1]})."
            )
        if time_features is not None and (time_features.ndim != 3 or tuple(time_features.shape[1:]) != expected):
            raise ValueError(
                f"Expected `{name}` of shape (batch, {expected[0]}, {expected[1]}), got {tuple(time_features.shape)}"
                f" (the model takes {self.num_time_features} time features per step)."
            )

    def extra_repr(self) -> str:
        return (
            f"num_bands={self.num_bands}, min_period={self.min_period}, max_period={self.max_period}, "
            f"num_time_features={self.num_time_features}"
        )


def build_position_encoding(spec: dict) -> FourierPositionEncoding | TrainablePositionEncoding:
    """The position encoding described by a config dict (`{"type": "fourier" | "trainable", ...}`)."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind == "fourier":
        return FourierPositionEncoding(**spec)
    if kind == "trainable":
        return TrainablePositionEncoding(**spec)
    raise ValueError(f"Unknown position encoding type {kind!r}; expected 'fourier' or 'trainable'.")
