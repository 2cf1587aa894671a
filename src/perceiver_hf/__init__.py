"""perceiver_hf: Perceiver IO as a Hugging Face Transformers plugin.

Importing the package registers `PerceiverIOConfig` (`model_type="perceiver_io"`) and the task heads with
transformers' Auto classes, so `AutoModel*.from_pretrained` and `pipeline(...)` work on perceiver_hf folders.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
)

from .configuration import DEEPMIND_GELU, PerceiverIOConfig
from .heads import PerceiverIOForImageClassification
from .heads import PerceiverIOForMultimodalAutoencoding, PerceiverIOMultimodalAutoencodingOutput
from .input_array import InputArray
from .modeling import (
    PerceiverIOClassifierOutput,
    PerceiverIOModel,
    PerceiverIOModelOutput,
    PerceiverIOPreTrainedModel,
)

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register(PerceiverIOConfig.model_type, PerceiverIOConfig, exist_ok=True)
    AutoModel.register(PerceiverIOConfig, PerceiverIOModel, exist_ok=True)
    AutoModelForImageClassification.register(PerceiverIOConfig, PerceiverIOForImageClassification, exist_ok=True)


_register()

__all__ = [
    "DEEPMIND_GELU",
    "InputArray",
    "PerceiverIOClassifierOutput",
    "PerceiverIOConfig",
    "PerceiverIOForImageClassification",
    "PerceiverIOForMultimodalAutoencoding",
    "PerceiverIOMultimodalAutoencodingOutput",
    "PerceiverIOModel",
    "PerceiverIOModelOutput",
    "PerceiverIOPreTrainedModel",
]
