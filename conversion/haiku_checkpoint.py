"""Reading DeepMind's Haiku checkpoints safely, and mapping Haiku modules to perceiver_hf parameters.

Checkpoint pickles are untrusted data. `load_haiku_pickle` unpickles with an allow-list: NumPy arrays and
dtypes, Haiku's `FlatMapping` (read as a plain dict), and nothing else. A pickle that names any other global
(`os.system`, `builtins.eval`, ...) is refused before anything runs.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, truncated, malicious, or does not fit the configured architecture."""


# Globals a Haiku/NumPy checkpoint legitimately refers to. Haiku's mapping types become plain dicts, so
# unpickling needs neither Haiku nor JAX.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_MAPPING_GLOBALS = {
    ("haiku._src.data_structures", "FlatMapping"),
    ("haiku._src.data_structures", "FlatMap"),
    ("haiku._src.data_structures", "frozendict"),
    ("collections", "OrderedDict"),
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _MAPPING_GLOBALS:
            return dict
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module.replace("numpy.core", "numpy._core") if hasattr(np, "_core") else module, name)
        raise CheckpointError(
            f"Refusing to load the checkpoint: its pickle asks for the global `{module}.{name}`, which is not a "
            "NumPy array or a Haiku parameter mapping. Checkpoint pickles may run code, so only those are allowed."
        )


def _check_tree(tree, path: str = "") -> None:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise CheckpointError(f"Unexpected non-string key {key!r} at {path or 'the top level'} of the checkpoint.")
            _check_tree(value, f"{path}/{key}" if path else key)
    elif not isinstance(tree, (np.ndarray, np.generic, int, float)):
        raise CheckpointError(f"Unexpected {type(tree).__name__} at {path} of the checkpoint; expected arrays.")


def load_haiku_pickle(path: str | Path) -> dict:
    """Unpickle a Haiku checkpoint file without executing code; returns nested dicts of NumPy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    data = path.read_bytes()
    try:
        tree = _AllowListUnpickler(io.BytesIO(data)).load()
    except CheckpointError:
        raise
    except Exception as error:  # truncated or corrupt bytes surface as many different exceptions
        raise CheckpointError(
            f"{path} is not a readable checkpoint pickle ({type(error).__name__}: {error}); the file may be "
            "truncated or corrupt. Download it again."
        ) from error
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path} holds a {type(tree).__name__}, not a mapping of Haiku parameters.")
    _check_tree(tree)
    return tree


def split_params_and_state(tree: dict) -> tuple[dict, dict]:
    """ImageNet files are `{"params": ..., "state": ...}`; the others are the bare params mapping."""
    if set(tree) == {"params", "state"}:
        return tree["params"], tree["state"]
    return tree, {}


class HaikuParams:
    """Haiku parameters (`module path -> {name -> array}`) handed out as torch tensors, with accounting.

    Every `take` marks an array as used; `check_all_used` then fails on any array the conversion did not
    place, so nothing in a checkpoint is ever silently dropped.
    """

    def __init__(self, params: Mapping[str, Mapping[str, np.ndarray]], state: Mapping | None = None):
        self.params = params
        self.state = state or {}
        self.used: set[tuple[str, str]] = set()

    def _lookup(self, tree: Mapping, kind: str, module: str, name: str) -> np.ndarray:
        if module not in tree:
            raise CheckpointError(f"The checkpoint has no {kind} module `{module}` (looking for `{name}`).")
        if name not in tree[module]:
            raise CheckpointError(f"The checkpoint module `{module}` has no {kind} `{name}`.")
        self.used.add((module, name))
        return tree[module][name]

    def take(self, module: str, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        array = np.asarray(self._lookup(self.params, "parameter", module, name))
        if shape is not None and tuple(array.shape) != tuple(shape):
            raise CheckpointError(
                f"Parameter `{module}/{name}` has shape {tuple(array.shape)} but the configured architecture "
                f"needs {tuple(shape)}."
            )
        return torch.from_numpy(np.array(array, dtype=np.float32, copy=True))

    def take_state(self, module: str, name: str) -> np.ndarray:
        return self._lookup(self.state, "state", module, name)

    def check_all_used(self) -> None:
        leftovers = [
            f"{module}/{name}"
            for tree in (self.params, self.state)
            for module, arrays in tree.items()
            for name in arrays
            if (module, name) not in self.used
        ]
        if leftovers:
            raise CheckpointError(
                f"{len(leftovers)} checkpoint arrays have no place in the converted model, e.g. {sorted(leftovers)[:5]}. "
                "The checkpoint does not match the configured architecture."
            )

    # Haiku module -> perceiver_hf parameters -------------------------------------------------------------

    def linear(self, module: str, prefix: str, bias: bool = True) -> dict[str, torch.Tensor]:
        """`hk.Linear` (`w` [in, out]) -> `nn.Linear` (`weight` [out, in])."""
        weights = {f"{prefix}.weight": self.take(module, "w").T.contiguous()}
        if bias:
            weights[f"{prefix}.bias"] = self.take(module, "b")
        return weights

    def layer_norm(self, module: str, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": self.take(module, "scale").reshape(-1),
            f"{prefix}.bias": self.take(module, "offset").reshape(-1),
        }

    def conv2d(self, module: str, prefix: str, bias: bool = True) -> dict[str, torch.Tensor]:
        """`hk.Conv2D` (`w` HWIO) -> `nn.Conv2d` (`weight` OIHW)."""
        weights = {f"{prefix}.weight": self.take(module, "w").permute(3, 2, 0, 1).contiguous()}
        if bias:
            weights[f"{prefix}.bias"] = self.take(module, "b")
        return weights

    def batch_norm(self, module: str, prefix: str) -> dict[str, torch.Tensor]:
        """`hk.BatchNorm` params and EMA state -> `nn.BatchNorm2d` (inference uses the EMA averages)."""
        mean = self.take_state(f"{module}/~/mean_ema", "average")
        var = self.take_state(f"{module}/~/var_ema", "average")
        counter = self.take_state(f"{module}/~/mean_ema", "counter")
        for ema in ("mean_ema", "var_ema"):
            self.take_state(f"{module}/~/{ema}", "hidden")  # Haiku's debiasing accumulator; inference ignores it
        self.take_state(f"{module}/~/var_ema", "counter")
        return {
            **self.layer_norm(module, prefix),
            f"{prefix}.running_mean": torch.tensor(np.asarray(mean, dtype=np.float32)).reshape(-1),
            f"{prefix}.running_var": torch.tensor(np.asarray(var, dtype=np.float32)).reshape(-1),
            f"{prefix}.num_batches_tracked": torch.tensor(int(np.asarray(counter)), dtype=torch.long),
        }

    def attention_layer(self, module: str, prefix: str, is_cross_attention: bool) -> dict[str, torch.Tensor]:
        """A DeepMind `CrossAttention` / `SelfAttention` module -> a `PerceiverIOLayer`.

        Inside it, `attention/linear{,_1,_2,_3}` are the query, key, value and output projections. Cross-attention
        has `layer_norm` (queries), `layer_norm_1` (keys/values) and `layer_norm_2` (before the MLP); self-attention
        has `layer_norm` (before attention) and `layer_norm_1` (before the MLP).
        """
        weights = self.layer_norm(f"{module}/layer_norm", f"{prefix}.attention.query_norm")
        if is_cross_attention:
            weights.update(self.layer_norm(f"{module}/layer_norm_1", f"{prefix}.attention.kv_norm"))
            weights.update(self.layer_norm(f"{module}/layer_norm_2", f"{prefix}.mlp_norm"))
        else:
            weights.update(self.layer_norm(f"{module}/layer_norm_1", f"{prefix}.mlp_norm"))
        for ours, theirs in (("query", "linear"), ("key", "linear_1"), ("value", "linear_2"), ("output", "linear_3")):
            weights.update(self.linear(f"{module}/attention/{theirs}", f"{prefix}.attention.{ours}"))
        weights.update(self.linear(f"{module}/mlp/linear", f"{prefix}.mlp.fc1"))
        weights.update(self.linear(f"{module}/mlp/linear_1", f"{prefix}.mlp.fc2"))
        return weights

    def encoder(self, module: str, prefix: str, num_self_attends_per_block: int) -> dict[str, torch.Tensor]:
        """A DeepMind `PerceiverEncoder` -> `PerceiverIOEncoder` (latents, cross-attention, shared block)."""
        weights = {f"{prefix}.latents": self.take(f"{module}/~/trainable_position_encoding", "pos_embs")}
        weights.update(self.attention_layer(f"{module}/~/cross_attention", f"{prefix}.cross_attention", True))
        for index in range(num_self_attends_per_block):
            name = "self_attention" if index == 0 else f"self_attention_{index}"
            weights.update(
                self.attention_layer(f"{module}/~/{name}", f"{prefix}.self_attention_layers.{index}", False)
            )
        return weights
