"""Custom pipeline tasks, registered with transformers by `import perceiver_hf`."""

from .optical_flow import OpticalFlowPipeline
from .token_classification import PerceiverIOTokenClassificationPipeline
from .video_autoencoding import VideoAutoencodingPipeline

__all__ = ["OpticalFlowPipeline", "PerceiverIOTokenClassificationPipeline", "VideoAutoencodingPipeline"]
