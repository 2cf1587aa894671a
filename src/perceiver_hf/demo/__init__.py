"""The main job (`perceiver-hf demo`): fine-tune a Perceiver IO image classifier on the handwritten digits that
ship with scikit-learn, save a Hub-ready folder, and report its held-out accuracy through the pipeline."""

from .recipe import DemoSettings, build_model, build_trainer, digits_config, training_arguments
from .run import DemoResult, run_demo

__all__ = ["DemoResult", "DemoSettings", "build_model", "build_trainer", "digits_config", "run_demo", "training_arguments"]
