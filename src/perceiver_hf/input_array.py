"""The input array the encoder cross-attends to, kept factored until it is read.

An input adapter turns a modality into the paper's input array `(batch, M, C)`. For images and flow
most of those channels are position encodings that are identical for every example: materialising
`[content, positions]` for a batch of 224x224 images is a 50,176-row tensor per example, and the
layer norm, keys and values of it are three more. Keeping content and positions apart lets the
encoder read the array a block of rows at a time, so no full-length copy of it ever exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace

import torch


@dataclass
class InputArray:
    """`(batch, length, channels)` input array as per-example content and batch-shared positions.

    Attributes:
        content: `(batch, length, content_channels)`, what differs between examples.
        positions: `(1 or batch, length, position_channels)` position encodings, or `None`.
        combine: `"concat"` to append positions as channels, `"add"` to sum them with the content.
        attention_mask: optional `(batch, length)` mask, 1 (or True) for rows that may be attended to.
        modality_sizes: for multimodal arrays, the number of rows of each modality (in row order).
        content_projection: an optional per-row map (such as a 1x1 convolution) applied to content rows as they
            are read, so that its full-length output never exists either.
    """

    content: torch.Tensor
    positions: torch.Tensor | None = None
    combine: str = "concat"
    attention_mask: torch.Tensor | None = None
    modality_sizes: dict[str, int] | None = None
    content_projection: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self):
        if self.combine not in ("concat", "add"):
            raise ValueError(f"`combine` must be 'concat' or 'add', got {self.combine!r}.")
        mask = self.attention_mask
        if mask is None:
            return
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"attention_mask must be a torch.Tensor of shape (batch, length), got {type(mask).__name__}.")
        # Its shape is the encoder's to check, where the error can say what the rows are.
        if mask.is_complex() or (mask.is_floating_point() and not bool(torch.isfinite(mask).all())):
            raise ValueError(f"attention_mask must hold 0s and 1s, got dtype {mask.dtype} with non-finite values.")

    @property
    def batch_size(self) -> int:
        return self.content.shape[0]

    @property
    def length(self) -> int:
        return self.content.shape[1]

    @property
    def num_channels(self) -> int:
        return self.rows(0, 1).shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.content.dtype

    @property
    def device(self) -> torch.device:
        return self.content.device

    def to(self, *args, **kwargs) -> InputArray:
        """Move/cast the tensors (Accelerate's device hooks move arguments through `.to`)."""
        content = self.content.to(*args, **kwargs)
        positions = None if self.positions is None else self.positions.to(*args, **kwargs)
        mask = None if self.attention_mask is None else self.attention_mask.to(content.device)
        return replace(self, content=content, positions=positions, attention_mask=mask)

    def rows(self, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Materialise rows `start:end` as a `(batch, rows, channels)` tensor."""
        content = self.content[:, start:end]
        if self.content_projection is not None:
            content = self.content_projection(content)
        if self.positions is None:
            return content
        positions = self.positions[:, start:end].to(content.dtype)
        if self.combine == "add":
            return content + positions
        return torch.cat([content, positions.expand(content.shape[0], -1, -1)], dim=-1)

    def materialize(self) -> torch.Tensor:
        """The whole array as one `(batch, length, channels)` tensor."""
        return self.rows()

    def map_rows(self, per_row: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], block_size: int | None = None):
        """`per_row` (a row-wise map returning a tuple of tensors) applied to the whole array, `block_size` rows
        at a time: the outputs are filled block by block, so only one block of the full-width array exists."""
        if block_size is None or self.length <= block_size:
            return per_row(self.materialize())
        outputs = None
        for start in range(0, self.length, block_size):
            block = per_row(self.rows(start, start + block_size))
            if outputs is None:
                outputs = tuple(part.new_empty((self.batch_size, self.length, part.shape[-1])) for part in block)
            for target, part in zip(outputs, block):
                target[:, start : start + block_size] = part
        return outputs


def split_tensors(value) -> tuple[tuple[torch.Tensor, ...], Callable[[tuple[torch.Tensor, ...]], object]]:
    """The tensors of `value` (a tensor, a dataclass such as `InputArray`, or `None`) and a function that rebuilds it
    from them, or from the detached copies a reentrant gradient checkpoint hands back."""
    if value is None:
        return (), lambda tensors: None
    if isinstance(value, torch.Tensor):
        return (value,), lambda tensors: tensors[0]
    if not is_dataclass(value):
        raise TypeError(f"Expected a tensor, an InputArray or KeyValues, got {type(value).__name__}.")
    names = [field.name for field in fields(value) if isinstance(getattr(value, field.name), torch.Tensor)]
    return tuple(getattr(value, name) for name in names), lambda tensors: replace(value, **dict(zip(names, tensors)))
