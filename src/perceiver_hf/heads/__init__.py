"""Task heads: `PreTrainedModel`s that wire adapters, the latent core and output queries to a task."""

from .base import PerceiverIOHead
from .classification import PerceiverIOClassifier
from .image_classification import PerceiverIOForImageClassification
from .masked_lm import PerceiverIOForMaskedLM
from .multimodal_autoencoding import PerceiverIOForMultimodalAutoencoding
from .optical_flow import PerceiverIOForOpticalFlow
from .sequence_classification import PerceiverIOForSequenceClassification
from .time_series_forecasting import PerceiverIOForTimeSeriesForecasting
from .token_classification import PerceiverIOForTokenClassification

__all__ = [
    "PerceiverIOClassifier",
    "PerceiverIOForImageClassification",
    "PerceiverIOForMaskedLM",
    "PerceiverIOForMultimodalAutoencoding",
    "PerceiverIOForOpticalFlow",
    "PerceiverIOForSequenceClassification",
    "PerceiverIOForTimeSeriesForecasting",
    "PerceiverIOForTokenClassification",
    "PerceiverIOHead",
]
