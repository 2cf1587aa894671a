"""Perceiver AR (arXiv 2202.07765): long-context autoregressive generation at a short context's cost."""

from .cache import PerceiverARCache
from .causal_lm import PerceiverARCausalLMOutput, PerceiverARForCausalLM
from .configuration import PerceiverARConfig
from .from_krasserm import KrassermPerceiverARConfig, KrassermPerceiverARLoader
from .modeling import PerceiverARModel, PerceiverARModelOutput, PerceiverARPreTrainedModel

__all__ = [
    "KrassermPerceiverARConfig",
    "KrassermPerceiverARLoader",
    "PerceiverARCache",
    "PerceiverARCausalLMOutput",
    "PerceiverARConfig",
    "PerceiverARForCausalLM",
    "PerceiverARModel",
    "PerceiverARModelOutput",
    "PerceiverARPreTrainedModel",
]
