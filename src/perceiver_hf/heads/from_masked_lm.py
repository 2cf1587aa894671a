"""Starting a text head from a masked language model's checkpoint: the encoder carries over, and the head says in
one line what else it kept and what starts new, instead of transformers' table of missing, unused and mismatched
weights.

A head that can start from a masked LM names the parts of a masked LM it replaces (`masked_lm_replaces`, parameter
prefixes) and how its config differs from the masked LM's (`masked_lm_config`). Built from a masked LM's config, it
takes its own architecture for those parts; loaded from a masked LM's folder (perceiver_hf's, or transformers'
`PerceiverForMaskedLM` such as `deepmind/language-perceiver`, converted on the fly), those parts start from the
head's initialisation, whatever the masked LM had there.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from transformers.utils import logging

from ..configuration import PerceiverIOConfig

logger = logging.get_logger(__name__)


def is_masked_lm_config(config: PerceiverIOConfig) -> bool:
    """Whether a config describes a masked LM: logits tied to the byte embeddings (folders saved before output
    adapters had types name the head only)."""
    adapter_type = (config.output_adapter or {}).get("type")
    if adapter_type is not None:
        return adapter_type == "tied_embeddings"
    return (config.architectures or []) == ["PerceiverIOForMaskedLM"]


class StartsFromMaskedLM:
    """Mixin of `PerceiverIOHead` subclasses (listed before it) that can start from a masked LM."""

    masked_lm_replaces: ClassVar[tuple[str, ...]] = ()  # parameter prefixes, e.g. ("output_adapter.",)

    @classmethod
    def masked_lm_config(cls, config: PerceiverIOConfig) -> None:
        """Turn a (copied) masked LM config into this head's, in place."""
        raise NotImplementedError

    def __init__(self, config: PerceiverIOConfig, *args, **kwargs):
        self.started_from_masked_lm = is_masked_lm_config(config)
        if self.started_from_masked_lm:
            config = copy.deepcopy(config)
            type(self).masked_lm_config(config)
            config.architectures = [type(self).__name__]
        super().__init__(config, *args, **kwargs)
        if self.started_from_masked_lm:
            # Loading would list these as missing and unused; `from_pretrained` says it in one line instead.
            replaced = {"^" + prefix.replace(".", r"\.") for prefix in self.masked_lm_replaces}
            self._keys_to_ignore_on_load_missing = replaced
            self._keys_to_ignore_on_load_unexpected = replaced

    def masked_lm_kept(self) -> str:
        """What of a masked LM this head keeps, in words."""
        return "the encoder"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load the head, or start it from a masked LM's folder or Hub id: the encoder (and whatever else of the
        masked LM the head shares) is kept, the parts in `masked_lm_replaces` start new (pass `num_labels` or
        `id2label`). Other shapes that differ are an error unless `ignore_mismatched_sizes=True`, as usual."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if model.started_from_masked_lm:
            model.started_from_masked_lm = False
            new_parts = ", ".join(f"`{prefix[:-1]}`" for prefix in cls.masked_lm_replaces)
            logger.warning(
                f"{cls.__name__} started from the masked LM {pretrained_model_name_or_path}: kept "
                f"{model.masked_lm_kept()}; {new_parts} ({model.config.num_labels} labels) start new: train them."
            )
        return loaded

    def _adjust_missing_and_unexpected_keys(self, loading_info) -> None:
        """transformers' loading hook (before its report): the masked LM's weights of the replaced parts were either
        of other shapes (not loaded, listed as mismatched) or of the same shapes (loaded); either way these parts
        start new, so they are initialised again and not reported."""
        super()._adjust_missing_and_unexpected_keys(loading_info)
        if not self.started_from_masked_lm:
            return
        loading_info.mismatched_keys = {
            entry for entry in loading_info.mismatched_keys if not entry[0].startswith(self.masked_lm_replaces)
        }
        with torch.no_grad():
            for prefix in self.masked_lm_replaces:
                part = self.get_submodule(prefix[:-1])
                for tensor in part.parameters():
                    tensor._is_hf_initialized = False  # transformers' initialisers skip tensors flagged as loaded
                part.apply(self._init_weights)
