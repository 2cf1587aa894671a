"""`PerceiverARForCausalLM`: Perceiver AR with its tied language-model head, loss and `generate()`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from .generation import PerceiverARGenerationMixin
from .inputs import cache_field
from .modeling import PerceiverARModel, PerceiverARPreTrainedModel


@dataclass
class PerceiverARCausalLMOutput(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` whose `logits` cover the latent positions only, plus the `prefix_len` used."""

    prefix_len: int | None = None


class PerceiverARForCausalLM(PerceiverARPreTrainedModel, PerceiverARGenerationMixin):
    """Perceiver AR language model: logits are the latents' hidden states times the token embeddings (tied), plus
    an optional bias."""

    _tied_weights_keys = {"lm_head.weight": "perceiver_ar.token_embeddings.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.perceiver_ar = PerceiverARModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=config.output_bias)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        prefix_len: int | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> PerceiverARCausalLMOutput:
        r"""
        Like `PerceiverARModel.forward`, plus `labels`.

        Returns `logits` for the latent positions only, `(batch, input_len - prefix_len, vocab_size)`, as
        krasserm/perceiver-io's model does: position `prefix_len + i` predicts token `prefix_len + i + 1`.

        labels (`(batch, input_len)`, *optional*): transformers' causal-LM convention: the same length as
            `input_ids` (usually `labels=input_ids`), shifted inside, -100 ignored. The loss covers the tokens the
            latents predict.
        """
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)} (they are shifted inside, as in "
                f"transformers' causal LMs); got {tuple(labels.shape)}."
            )
        outputs = self.perceiver_ar(
            input_ids,
            attention_mask=attention_mask,
            prefix_len=prefix_len,
            past_key_values=cache if cache is not None else past_key_values,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            latent_labels = labels[:, labels.shape[1] - logits.shape[1] :]
            loss = self.loss_function(logits, latent_labels, vocab_size=self.config.vocab_size, **kwargs)
        cache = getattr(outputs, cache_field(type(outputs)))
        return PerceiverARCausalLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            prefix_len=outputs.prefix_len,
            **{cache_field(CausalLMOutputWithPast): cache},
        )
