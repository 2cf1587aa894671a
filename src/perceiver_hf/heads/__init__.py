"""Task heads: `PreTrainedModel`s that wire adapters, the latent core and output queries to a task."""

from .image_classification import PerceiverIOForImageClassification

__all__ = ["PerceiverIOForImageClassification"]
