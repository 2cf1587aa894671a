"""Time-series forecasting: a small latent core reads one row per past step; one query per asked-for step decodes a
distribution (or a point forecast) per channel. Not a DeepMind architecture: sizes chosen to train on a CPU."""

from __future__ import annotations

from typing import Any

from .components import pop_options

TIME_SERIES_CORE = {
    "num_latents": 64,
    "d_latents": 128,
    "num_blocks": 1,
    "num_self_attends_per_block": 3,
    "num_self_attention_heads": 4,
    "num_cross_attention_heads": 1,
    "self_attention_widening_factor": 2,
    # With the usual 0.02, query and key weights start so small that every latent attends uniformly to the whole
    # history (its mean: no information after scaling), and learning to look somewhere takes most of the budget.
    "initializer_range": 0.1,
}
# The calendar features the pipeline computes from timestamps (each as a sine and a cosine of its phase).
CALENDAR_FEATURES = ("time_of_day", "day_of_week", "day_of_year")
_COMPONENT_OPTIONS = (
    "num_bands", "max_period", "num_time_features", "patch_length", "steps_per_query", "decoder_num_heads",
    "decoder_widening_factor",
)


def time_series_components(
    num_channels: int,
    context_length: int,
    prediction_length: int,
    d_latents: int,
    distribution_output: str | None = "student_t",
    loss: str = "nll",
    num_bands: int = 32,
    max_period: float | None = None,
    num_time_features: int = 0,
    patch_length: int | None = None,
    steps_per_query: int | None = None,
    decoder_num_heads: int = 4,
    decoder_widening_factor: int = 2,
) -> dict[str, dict[str, Any]]:
    """`input_adapter`, `query_decoder` and `output_adapter` of a forecaster. Each input row holds `patch_length`
    steps (default 16, fewer for contexts under 128 steps: an eighth of them), encoded by the offset of the last
    from the forecast origin (`num_bands` geometric periods up to `max_period`, default four times the span of
    a training window) and `num_time_features` known features. Each decoder query decodes `steps_per_query` steps
    (default: as many as a row holds) from its step on; its query is that step's encoding, mapped to the latents'
    width `d_latents` by a learned linear layer."""
    if patch_length is None:
        patch_length = min(16, max(1, context_length // 8))
    steps_per_query = patch_length if steps_per_query is None else steps_per_query
    time_encoding = {
        "num_bands": num_bands,
        "max_period": float(max_period or 4 * (context_length + prediction_length)),
        "num_time_features": num_time_features,
    }
    if loss == "nll":
        output = {"type": "distribution", "num_channels": num_channels, "distribution": distribution_output}
    else:
        output = {"type": "point", "num_channels": num_channels, "loss": loss}
    output["steps_per_query"] = steps_per_query
    return {
        "input_adapter": {
            "type": "time_series", "num_channels": num_channels, "time_encoding": time_encoding, "patch_length": patch_length
        },
        "query_decoder": {
            "query": {"type": "time", "time_encoding": time_encoding, "num_channels": d_latents},
            "num_heads": decoder_num_heads,
            "widening_factor": decoder_widening_factor,
            "use_query_residual": True,
            "final_project": False,
        },
        "output_adapter": output,
    }


def time_series_forecasting(
    context_length: int,
    prediction_length: int,
    num_channels: int = 1,
    distribution_output: str | None = "student_t",
    loss: str = "nll",
    scaling: str | None = "std",
    num_parallel_samples: int = 100,
    calendar_features: list[str] | None = None,
    **overrides,
) -> dict[str, Any]:
    """A forecaster trained on `context_length` steps of history and `prediction_length` steps ahead (either may
    change at inference), with `num_channels` variables. `loss`: "nll" (the `distribution_output`, "student_t" or
    "normal"), or "mse" / "mae" for a point forecast. `calendar_features`: names from `CALENDAR_FEATURES` that the
    pipeline computes from timestamps (two time features each). `overrides` replace core fields or
    `time_series_components` options."""
    for name, value, least in (("context_length", context_length, 2), ("prediction_length", prediction_length, 1),
                               ("num_channels", num_channels, 1), ("num_parallel_samples", num_parallel_samples, 1)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"`{name}` must be an integer >= {least}, got {value!r}.")
    if loss not in ("nll", "mse", "mae"):
        raise ValueError(f"`loss` must be 'nll' (a distribution), 'mse' or 'mae' (a point forecast), got {loss!r}.")
    unknown = sorted(set(calendar_features or ()) - set(CALENDAR_FEATURES))
    if unknown:
        raise ValueError(f"Unknown calendar features {unknown}; choose from {list(CALENDAR_FEATURES)}.")
    options = pop_options(overrides, _COMPONENT_OPTIONS)
    options.setdefault("num_time_features", 2 * len(calendar_features or ()))
    if calendar_features and options["num_time_features"] != 2 * len(calendar_features):
        raise ValueError("`calendar_features` give two time features each: leave `num_time_features` out.")
    d_latents = overrides.get("d_latents", TIME_SERIES_CORE["d_latents"])
    components = time_series_components(
        num_channels, context_length, prediction_length, d_latents, distribution_output, loss, **options
    )
    return {
        **TIME_SERIES_CORE,
        **overrides,
        **components,
        "context_length": context_length,
        "prediction_length": prediction_length,
        "num_input_channels": num_channels,
        "distribution_output": distribution_output if loss == "nll" else None,
        "loss": loss,
        "scaling": scaling,
        "num_parallel_samples": num_parallel_samples,
        "calendar_features": list(calendar_features or []),
        "architectures": ["PerceiverIOForTimeSeriesForecasting"],
    }
