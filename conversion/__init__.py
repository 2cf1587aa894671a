"""Maintainer tools, run from a checkout (`python conversion/convert_deepmind.py ...`): DeepMind's Haiku
checkpoints and transformers' Perceiver checkpoints -> Hub-ready perceiver_hf folders. Nothing in the runtime
package imports this."""
