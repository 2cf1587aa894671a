"""Four real series that ship inside Python packages (the `timeseries` extra: pmdarima, statsmodels, pandas),
each with the forecasting task it is evaluated on: context and horizon, season, and the forecast origins of the
rolling-origin evaluation (the last part of the series; everything before the first origin is for training)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(f"The forecasting data sets need {package}: `pip install 'perceiver-hf[timeseries]'`.") from None


@dataclass
class ForecastTask:
    """A series and how it is forecast.

    Attributes:
        values: `(steps, channels)` float32, NaN where a value is missing (never interpolated).
        timestamps: pandas `DatetimeIndex` of the steps.
        season_length: steps per season: the seasonal-naive forecast repeats the last season, and MASE is scaled
            by its in-sample error.
        context_length, prediction_length: steps of history a forecast sees, and steps it forecasts.
        num_origins, origin_stride: forecast origins, `origin_stride` steps apart, the last one `prediction_length`
            steps before the end.
        calendar_features: the calendar features that describe the series' cycles (see `processing.time_series`).
    """

    name: str
    values: np.ndarray
    timestamps: object
    season_length: int
    context_length: int
    prediction_length: int
    num_origins: int
    origin_stride: int
    calendar_features: list[str] = field(default_factory=list)
    channel_names: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def origins(self) -> list[int]:
        """Indices of the first forecast step of each origin."""
        last = len(self.values) - self.prediction_length
        return [last - k * self.origin_stride for k in reversed(range(self.num_origins))]

    @property
    def train_end(self) -> int:
        """Training may use the steps before this index only: the first origin."""
        return self.origins[0]

    @property
    def num_channels(self) -> int:
        return self.values.shape[1]


def taylor() -> ForecastTask:
    """Half-hourly electricity demand of England and Wales, Monday 5 June to Sunday 27 August 2000 (pmdarima's
    `taylor`, 4,032 steps): daily and weekly cycles. Six weeks of context, one day ahead, the last week's 7 days."""
    pd = _require("pandas")
    datasets = _require("pmdarima.datasets")
    values = np.asarray(datasets.load_taylor(), dtype=np.float32)[:, None]
    timestamps = pd.date_range("2000-06-05", periods=len(values), freq="30min")
    return ForecastTask(
        "taylor", values, timestamps, season_length=336, context_length=2016, prediction_length=48,
        num_origins=7, origin_stride=48, calendar_features=["time_of_day", "day_of_week"], channel_names=["demand"],
        description="electricity demand, half-hourly, 4,032 steps",
    )


def co2() -> ForecastTask:
    """Weekly atmospheric CO2 at Mauna Loa, March 1958 to December 2001 (statsmodels' `co2`, 2,284 weeks, 59 of them
    missing and kept missing). Six years of context, one year ahead, origins half a year apart over the last 3 years."""
    frame = _require("statsmodels.datasets.co2").load_pandas().data
    return ForecastTask(
        "co2", frame["co2"].to_numpy(dtype=np.float32)[:, None], frame.index, season_length=52, context_length=312,
        prediction_length=52, num_origins=5, origin_stride=26, calendar_features=["day_of_year"],
        channel_names=["co2"], description="Mauna Loa CO2, weekly, 2,284 steps (59 missing)",
    )


def elnino() -> ForecastTask:
    """Monthly sea-surface temperature of the El Nino region, 1950 to 2010 (statsmodels' `elnino`, 61 years x 12
    months). Ten years of context, one year ahead, the last 5 years."""
    pd = _require("pandas")
    frame = _require("statsmodels.datasets.elnino").load_pandas().data
    values = frame.drop(columns="YEAR").to_numpy(dtype=np.float32).reshape(-1, 1)
    timestamps = pd.date_range(f"{int(frame['YEAR'].iloc[0])}-01-01", periods=len(values), freq="MS")
    return ForecastTask(
        "elnino", values, timestamps, season_length=12, context_length=120, prediction_length=12, num_origins=5,
        origin_stride=12, calendar_features=["day_of_year"], channel_names=["temperature"],
        description="El Nino sea-surface temperature, monthly, 732 steps",
    )


def macrodata() -> ForecastTask:
    """Quarterly US macroeconomic series, 1959Q1 to 2009Q3 (statsmodels' `macrodata`: 203 quarters, the 12 series
    besides year and quarter, forecast jointly). Ten years of context, two years ahead, 5 origins a year apart."""
    pd = _require("pandas")
    frame = _require("statsmodels.datasets.macrodata").load_pandas().data
    columns = [name for name in frame.columns if name not in ("year", "quarter")]
    timestamps = pd.date_range(f"{int(frame['year'].iloc[0])}-01-01", periods=len(frame), freq="QS")
    return ForecastTask(
        "macrodata", frame[columns].to_numpy(dtype=np.float32), timestamps, season_length=4, context_length=40,
        prediction_length=8, num_origins=5, origin_stride=4, calendar_features=["day_of_year"],
        channel_names=columns, description="US macroeconomic series, quarterly, 203 steps x 12 channels",
    )


TASKS = {"taylor": taylor, "co2": co2, "elnino": elnino, "macrodata": macrodata}


def load_task(name: str) -> ForecastTask:
    if name not in TASKS:
        raise ValueError(f"Unknown series {name!r}; choose from {sorted(TASKS)}.")
    return TASKS[name]()
