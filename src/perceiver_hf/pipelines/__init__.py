"""Custom transformers pipelines, registered by `import perceiver_hf`."""

from .optical_flow import OpticalFlowPipeline

__all__ = ["OpticalFlowPipeline"]
