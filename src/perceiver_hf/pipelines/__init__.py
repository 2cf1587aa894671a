"""Custom pipeline tasks, registered with transformers by `import perceiver_hf`."""

from .optical_flow import OpticalFlowPipeline
from .time_series_forecasting import TimeSeriesForecastingPipeline
from .token_classification import PerceiverIOTokenClassificationPipeline
from .video_autoencoding import VideoAutoencodingPipeline

__all__ = [
    "OpticalFlowPipeline",
    "PerceiverIOTokenClassificationPipeline",
    "TimeSeriesForecastingPipeline",
    "VideoAutoencodingPipeline",
]
