"""Maintainer tools, run from a checkout (`python -m conversion.convert_deepmind ...`): DeepMind's Haiku
checkpoints and transformers' Perceiver checkpoints -> Hub-ready perceiver_hf folders. Nothing in the runtime
package imports this."""
