"""perceiver_hf: Perceiver IO as a Hugging Face Transformers plugin.

Importing the package registers `PerceiverIOConfig` (`model_type="perceiver_io"`) and the task heads with
transformers' Auto classes, so `AutoModel*.from_pretrained` and `pipeline(...)` work on perceiver_hf folders.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration import DEEPMIND_GELU, PerceiverIOConfig
from .heads import PerceiverIOForImageClassification
from .heads import PerceiverIOForOpticalFlow
from .input_array import InputArray
from .modeling import (
    PerceiverIOClassifierOutput,
    PerceiverIOModel,
    PerceiverIOModelOutput,
    PerceiverIOPreTrainedModel,
)
from .pipelines import OpticalFlowPipeline
from .processing_flow import PerceiverIOFlowProcessor

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register(PerceiverIOConfig.model_type, PerceiverIOConfig, exist_ok=True)
    AutoModel.register(PerceiverIOConfig, PerceiverIOModel, exist_ok=True)
    AutoModelForImageClassification.register(PerceiverIOConfig, PerceiverIOForImageClassification, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        "optical-flow", pipeline_class=OpticalFlowPipeline, pt_model=PerceiverIOForOpticalFlow, type="image"
    )


_register()

__all__ = [
    "DEEPMIND_GELU",
    "InputArray",
    "PerceiverIOClassifierOutput",
    "PerceiverIOConfig",
    "PerceiverIOForImageClassification",
    "OpticalFlowPipeline",
    "PerceiverIOFlowProcessor",
    "PerceiverIOForOpticalFlow",
    "PerceiverIOModel",
    "PerceiverIOModelOutput",
    "PerceiverIOPreTrainedModel",
]
