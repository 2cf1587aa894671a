"""Processors: raw frames, clips and audio -> model inputs, as DeepMind's colabs prepare them (and back).

Images and text use transformers' `PerceiverImageProcessor` and `PerceiverTokenizer`; these are what transformers
does not have."""

from .flow import PerceiverIOFlowProcessor
from .video import PerceiverIOVideoAutoencodingProcessor

__all__ = ["PerceiverIOFlowProcessor", "PerceiverIOVideoAutoencodingProcessor"]
