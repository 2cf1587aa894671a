"""Task heads: `PreTrainedModel`s that wire adapters, the latent core and output queries to a task."""

from .image_classification import PerceiverIOForImageClassification
from .multimodal_autoencoding import PerceiverIOForMultimodalAutoencoding, PerceiverIOMultimodalAutoencodingOutput
from .optical_flow import PerceiverIOForOpticalFlow

__all__ = [
    "PerceiverIOForImageClassification",
    "PerceiverIOForMultimodalAutoencoding",
    "PerceiverIOForOpticalFlow",
    "PerceiverIOMultimodalAutoencodingOutput",
]
