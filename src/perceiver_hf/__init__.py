"""perceiver_hf: Perceiver IO and Perceiver AR as a Hugging Face Transformers plugin.

Importing the package registers `PerceiverIOConfig` (`model_type="perceiver_io"`) and the task heads with
transformers' Auto classes, so `AutoModel*.from_pretrained` and `pipeline(...)` work on perceiver_hf folders.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTimeSeriesPrediction,
    AutoModelForTokenClassification,
    AutoTokenizer,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration import PerceiverIOConfig
from .core.modeling import PerceiverIOModel, PerceiverIOPreTrainedModel
from .core.outputs import (
    PerceiverIOClassifierOutput,
    PerceiverIOForecastOutput,
    PerceiverIOMaskedLMOutput,
    PerceiverIOModelOutput,
    PerceiverIOMultimodalAutoencodingOutput,
    PerceiverIOSampleOutput,
)
from .heads import (
    PerceiverIOForImageClassification,
    PerceiverIOForMaskedLM,
    PerceiverIOForMultimodalAutoencoding,
    PerceiverIOForOpticalFlow,
    PerceiverIOForSequenceClassification,
    PerceiverIOForTimeSeriesForecasting,
    PerceiverIOForTokenClassification,
)
from .input_array import InputArray
from .perceiver_ar import (
    KrassermPerceiverARConfig,
    KrassermPerceiverARLoader,
    PerceiverARCache,
    PerceiverARCausalLMOutput,
    PerceiverARConfig,
    PerceiverARForCausalLM,
    PerceiverARModel,
    PerceiverARModelOutput,
    PerceiverARPreTrainedModel,
)
from .pipelines import (
    OpticalFlowPipeline,
    PerceiverIOTokenClassificationPipeline,
    TimeSeriesForecastingPipeline,
    VideoAutoencodingPipeline,
)
from .presets import DEEPMIND_GELU
from .processing import PerceiverIOFlowProcessor, PerceiverIOVideoAutoencodingProcessor
from .tokenization import PerceiverIOByteTokenizer

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register(PerceiverIOConfig.model_type, PerceiverIOConfig, exist_ok=True)
    AutoModel.register(PerceiverIOConfig, PerceiverIOModel, exist_ok=True)
    AutoModelForImageClassification.register(PerceiverIOConfig, PerceiverIOForImageClassification, exist_ok=True)
    AutoModelForMaskedLM.register(PerceiverIOConfig, PerceiverIOForMaskedLM, exist_ok=True)
    AutoModelForSequenceClassification.register(PerceiverIOConfig, PerceiverIOForSequenceClassification, exist_ok=True)
    AutoModelForTokenClassification.register(PerceiverIOConfig, PerceiverIOForTokenClassification, exist_ok=True)
    AutoTokenizer.register(PerceiverIOConfig, tokenizer_class=PerceiverIOByteTokenizer, exist_ok=True)
    # transformers' token-classification task, with character offsets for our byte-level models (unchanged for others).
    token_classification = PIPELINE_REGISTRY.supported_tasks["token-classification"]
    PIPELINE_REGISTRY.supported_tasks["token-classification"] = {
        **token_classification,
        "impl": PerceiverIOTokenClassificationPipeline,
    }
    AutoModelForTimeSeriesPrediction.register(PerceiverIOConfig, PerceiverIOForTimeSeriesForecasting, exist_ok=True)
    AutoConfig.register(PerceiverARConfig.model_type, PerceiverARConfig, exist_ok=True)
    AutoModel.register(PerceiverARConfig, PerceiverARModel, exist_ok=True)
    AutoModelForCausalLM.register(PerceiverARConfig, PerceiverARForCausalLM, exist_ok=True)
    # krasserm/perceiver-io folders load (converted on the fly) through the same Auto classes.
    AutoConfig.register(KrassermPerceiverARConfig.model_type, KrassermPerceiverARConfig, exist_ok=True)
    AutoModelForCausalLM.register(KrassermPerceiverARConfig, KrassermPerceiverARLoader, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        "optical-flow", pipeline_class=OpticalFlowPipeline, pt_model=PerceiverIOForOpticalFlow, type="image"
    )
    PIPELINE_REGISTRY.register_pipeline(
        "time-series-forecasting",
        pipeline_class=TimeSeriesForecastingPipeline,
        pt_model=PerceiverIOForTimeSeriesForecasting,
        type="multimodal",
    )
    PIPELINE_REGISTRY.register_pipeline(
        "video-autoencoding",
        pipeline_class=VideoAutoencodingPipeline,
        pt_model=PerceiverIOForMultimodalAutoencoding,
        type="multimodal",
    )


_register()

__all__ = [
    "DEEPMIND_GELU",
    "InputArray",
    "OpticalFlowPipeline",
    "PerceiverARCache",
    "PerceiverARCausalLMOutput",
    "PerceiverARConfig",
    "PerceiverARForCausalLM",
    "PerceiverARModel",
    "PerceiverARModelOutput",
    "PerceiverARPreTrainedModel",
    "PerceiverIOByteTokenizer",
    "PerceiverIOClassifierOutput",
    "PerceiverIOConfig",
    "PerceiverIOFlowProcessor",
    "PerceiverIOForImageClassification",
    "PerceiverIOForMaskedLM",
    "PerceiverIOForMultimodalAutoencoding",
    "PerceiverIOForOpticalFlow",
    "PerceiverIOForSequenceClassification",
    "PerceiverIOForTimeSeriesForecasting",
    "PerceiverIOForecastOutput",
    "PerceiverIOForTokenClassification",
    "PerceiverIOMaskedLMOutput",
    "PerceiverIOModel",
    "PerceiverIOModelOutput",
    "PerceiverIOMultimodalAutoencodingOutput",
    "PerceiverIOPreTrainedModel",
    "PerceiverIOSampleOutput",
    "PerceiverIOTokenClassificationPipeline",
    "PerceiverIOVideoAutoencodingProcessor",
    "TimeSeriesForecastingPipeline",
    "VideoAutoencodingPipeline",
]
