"""Fully sharded data parallel training (FSDP2, torch's `fully_shard`): which modules are the sharding units.

Each `PerceiverIOLayer` (attention + MLP) of the encoder is one unit: its parameters are gathered for its forward
and backward and sharded again after, so a process holds one layer's full weights at a time. A decoder is one unit
with its cross-attention layer: it projects the latents' keys and values once per call, outside that layer's
forward, and reuses them for every block of queries, so the layer's weights must be gathered for the whole decoder
call. Whatever is left (latents, input adapter, output adapters) forms the root unit.
"""

from __future__ import annotations

from torch import nn

from .core.attention import PerceiverIOLayer
from .core.decoder import PerceiverIODecoder


def fsdp_units(model: nn.Module) -> list[nn.Module]:
    """The modules of `model` to shard as units, in module order: every decoder, and every `PerceiverIOLayer`
    outside the decoders."""
    units, in_decoder = [], set()
    for module in model.modules():
        if isinstance(module, PerceiverIODecoder):
            units.append(module)
            in_decoder.update(id(inner) for inner in module.modules())
        elif isinstance(module, PerceiverIOLayer) and id(module) not in in_decoder:
            units.append(module)
    return units


def fully_shard_model(model: nn.Module, **fsdp_kwargs) -> nn.Module:
    """Apply torch's `fully_shard` to each unit of `fsdp_units(model)`, then to `model` (the root); `fsdp_kwargs`
    (`mesh`, `reshard_after_forward`, `mp_policy`, ...) go to every call. Returns `model`, sharded in place."""
    from torch.distributed.fsdp import fully_shard

    for unit in fsdp_units(model):
        fully_shard(unit, **fsdp_kwargs)
    fully_shard(model, **fsdp_kwargs)
    return model


__all__ = ["fsdp_units", "fully_shard_model"]
