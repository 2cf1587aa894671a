"""Which time steps a forecaster decodes, and with which queries.

A forecaster is asked for steps counted from the forecast origin (0 is the first step after the history; negative
steps lie in the history). Each decoder query decodes `steps_per_query` consecutive steps from its own step on,
so the steps asked for are covered by as few queries as that allows: the next H steps by queries at 0, P, 2P, ...
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from .position import TimeEncoding


@dataclass
class TimePoints:
    """Time steps to decode, `steps` `(1 or batch, n)`, and their known `time_features` `(batch, n, features)`."""

    steps: torch.Tensor
    time_features: torch.Tensor | None = None


@dataclass
class QueryPlan:
    """The queries that cover the steps asked for, and where each asked-for step lands among their outputs:
    `gather` `(1 or batch, n)` indexes the `queries x steps_per_query` decoded steps (`None`: they are the steps
    asked for)."""

    def gather_steps(self, params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """`(batch, queries x steps_per_query, channels)` decoded parameters -> `(batch, n, channels)`."""
        if self.gather is None:
            return params
        rows = torch.arange(params[0].shape[0], device=params[0].device)[:, None]
        return tuple(param[rows, self.gather] for param in params)

    queries: TimePoints
    gather: torch.Tensor | None
    num_steps: int


def time_plan(
    prediction_length: int | None,
    future_time_index: torch.Tensor | None,
    time_features: torch.Tensor | None,
    steps_per_query: int,
    default_length: int,
    encoding: TimeEncoding,
    device: torch.device,
) -> QueryPlan:
    """The plan for `future_time_index` (`(steps,)` or `(batch, steps)` offsets), else for a forecast of the next
    `prediction_length` steps (default `default_length`); `time_features` are checked against the queries'
    `encoding`."""
    if future_time_index is None:
        length = default_length if prediction_length is None else prediction_length
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"`prediction_length` must be a positive integer, got {length!r}.")
        encoding.check_time_features(time_features, length, "future_time_features")
        return forecast_plan(length, time_features, steps_per_query, device)
    if not isinstance(future_time_index, torch.Tensor) or future_time_index.ndim not in (1, 2) or not (
        future_time_index.shape[-1]
    ):
        got = tuple(future_time_index.shape) if isinstance(future_time_index, torch.Tensor) else type(future_time_index).__name__
        raise ValueError(f"Expected `future_time_index` of shape (steps,) or (batch, steps), got {got}.")
    if prediction_length is not None and future_time_index.shape[-1] != prediction_length:
        raise ValueError("Give `prediction_length` or `future_time_index`, not two different horizons.")
    encoding.check_time_features(time_features, future_time_index.shape[-1], "future_time_features")
    return plan_queries(future_time_index.reshape(-1, future_time_index.shape[-1]).to(device), time_features, steps_per_query)


def forecast_plan(length: int, time_features: torch.Tensor | None, steps_per_query: int, device) -> QueryPlan:
    """The queries of a forecast of the next `length` steps: at 0, P, 2P, ... (the plan `plan_queries` finds for
    `arange(length)`, without looking at values, so that it compiles and exports)."""
    starts = torch.arange(0, length, steps_per_query, device=device)
    features = None if time_features is None else time_features[:, ::steps_per_query]
    gather = None if steps_per_query == 1 else torch.arange(length, device=device)[None]
    return QueryPlan(TimePoints(starts[None], features), gather, length)


def plan_queries(steps: torch.Tensor, time_features: torch.Tensor | None, steps_per_query: int) -> QueryPlan:
    """Cover `steps` `(1 or batch, n)` with queries of `steps_per_query` steps each, shared by the batch: placed
    greedily from the earliest step asked for by any example (consecutive steps from 0 take queries at 0, P,
    2P, ...)."""
    num_steps = steps.shape[1]
    if steps_per_query == 1:
        return QueryPlan(TimePoints(steps, time_features), None, num_steps)
    rows = steps.tolist()
    if any(step != int(step) for row in rows for step in row):
        raise ValueError(f"This model decodes {steps_per_query} steps per query: `future_time_index` must be whole steps.")
    if time_features is not None and any(row != rows[0] for row in rows):
        raise ValueError(
            f"This model decodes {steps_per_query} steps per query: with time features, give one `future_time_index` "
            "for the whole batch, shape (steps,)."
        )
    starts = []
    for step in sorted({int(step) for row in rows for step in row}):
        if not starts or step >= starts[-1] + steps_per_query:
            starts.append(step)
    # Every step lies in the query of the last start at or before it.
    gather = []
    for row in rows:
        queries = [bisect.bisect_right(starts, step) - 1 for step in row]
        gather.append([query * steps_per_query + int(step) - starts[query] for query, step in zip(queries, row)])
    features = None
    if time_features is not None:
        features = time_features[:, [rows[0].index(start) for start in starts]]
    queries = TimePoints(torch.tensor(starts, device=steps.device, dtype=steps.dtype)[None], features)
    return QueryPlan(queries, torch.tensor(gather, device=steps.device), num_steps)
