"""Starting a per-position head from a masked language model: its encoder and decoder carry over, the projection
of each position's output to the head's labels starts new.

A masked LM's config has the decoder a per-position head needs (one learned query per input position) without a
final projection (its logits are tied to the byte embeddings). `adopt_masked_lm_decoder` adds the projection, and
`FromMaskedLM.from_pretrained` loads perceiver_hf or transformers masked-LM checkpoints into the head, saying in
one line what was kept and what starts new instead of transformers' table of missing and unused weights.
"""

from __future__ import annotations

import tempfile

from transformers.utils import logging

from ..configuration import PerceiverIOConfig
from ..from_transformers import HUB_KWARGS, convert_config_dict, transformers_source_config, write_converted_checkpoint

logger = logging.get_logger(__name__)

_NEW_PROJECTION = r"^decoder\.output_projection\."
_MASKED_LM_LOGITS = r"^output_adapter\."  # the masked LM's byte-logits bias, tied to the embeddings


def adopt_masked_lm_decoder(config: PerceiverIOConfig) -> bool:
    """Give a masked LM's config (a per-position decoder without projection) a projection to `num_labels`;
    returns whether it did."""
    decoder = dict(config.decoder or {})
    if decoder.get("final_project", True):
        return False
    config.decoder = {**decoder, "final_project": True}
    return True


class FromMaskedLM:
    """Mixin of `PreTrainedModel` heads whose `__init__` calls `self.starts_from_masked_lm(config)` first."""

    def starts_from_masked_lm(self, config: PerceiverIOConfig) -> None:
        self.starts_new_projection = adopt_masked_lm_decoder(config)

    def ignore_masked_lm_differences(self) -> None:
        """After `post_init`: the new projection and the unused logits bias are reported in one line instead."""
        if self.starts_new_projection:
            self._keys_to_ignore_on_load_missing.add(_NEW_PROJECTION)
            self._keys_to_ignore_on_load_unexpected.add(_MASKED_LM_LOGITS)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load the head, or start it from a masked LM's folder (perceiver_hf's, or transformers'
        `PerceiverForMaskedLM` such as `deepmind/language-perceiver`, converted on the fly): the encoder and the
        decoder (position queries, cross-attention) are kept, the projection to `num_labels` starts new (pass
        `num_labels` or `id2label`). Shapes that differ are an error unless `ignore_mismatched_sizes=True`."""
        source = transformers_source_config(pretrained_model_name_or_path, kwargs)
        if source is None or convert_config_dict(source)["architectures"] != ["PerceiverIOForMaskedLM"]:
            return cls._load_and_report(pretrained_model_name_or_path, pretrained_model_name_or_path, *model_args, **kwargs)
        hub_kwargs = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        with tempfile.TemporaryDirectory(prefix="perceiver_hf_") as folder:
            write_converted_checkpoint(pretrained_model_name_or_path, folder, source, hub_kwargs)
            model = cls._load_and_report(folder, pretrained_model_name_or_path, *model_args, **kwargs)
        (model[0] if isinstance(model, tuple) else model).config.name_or_path = str(pretrained_model_name_or_path)
        return model

    @classmethod
    def _load_and_report(cls, folder, name, *model_args, **kwargs):
        model = super().from_pretrained(folder, *model_args, **kwargs)
        loaded = model[0] if isinstance(model, tuple) else model
        if loaded.starts_new_projection:
            logger.warning(
                f"{cls.__name__} from the masked LM {name}: kept the encoder and the decoder's "
                f"{loaded.decoder.queries.queries.shape[0]} position queries and cross-attention; the classifier "
                f"`decoder.output_projection` ({loaded.config.num_labels} labels) starts new (train it), the byte "
                "logits' bias `output_adapter.bias` is left out."
            )
            loaded.starts_new_projection = False
        return model
