"""Reading DeepMind's Haiku checkpoints safely, and mapping Haiku modules to perceiver_hf parameters.

Checkpoint pickles are untrusted data. `load_haiku_pickle` unpickles with an allow-list: NumPy arrays and
dtypes, Haiku's `FlatMapping` (read as a plain dict), and nothing else. A pickle that names any other global
(`os.system`, `builtins.eval`, ...) is refused before anything runs.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


# Leaves are parameters or BatchNorm counters: anything else (object arrays, strings) has no place in a checkpoint.
_NUMERIC_KINDS = "biuf"


def _check_tree(tree, path: str = "") -> None:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise CheckpointError(f"Unexpected non-string key {key!r} at {path or 'the top level'} of the checkpoint.")
            _check_tree(value, f"{path}/{key}" if path else key)
    elif isinstance(tree, (np.ndarray, np.generic)):
        if tree.dtype.kind not in _NUMERIC_KINDS:
            raise CheckpointError(f"`{path}` of the checkpoint has dtype {tree.dtype}; expected numeric arrays.")
    elif not isinstance(tree, (int, float)):
        raise CheckpointError(f"Unexpected {type(tree).__name__} at `{path}` of the checkpoint; expected arrays.")


def load_haiku_pickle(path: str | Path) -> dict:
    """Unpickle a Haiku checkpoint file without executing code; returns nested dicts of NumPy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    with path.open("rb") as file:
        try:
            tree = _AllowListUnpickler(file).load()
        except CheckpointError:
            raise
        except Exception as error:  # truncated or corrupt bytes surface as many different exceptions
            raise CheckpointError(
                f"{path} is not a readable checkpoint pickle ({type(error).__name__}: {error}); the file may be "
                "truncated or corrupt. Download it again."
            ) from error
        trailing = len(file.read(1 << 20))
    if trailing:
        raise CheckpointError(
            f"{path} has data after the end of its pickle; the file is corrupt (two files joined, or a broken "
            "download). Download it again."
        )
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path} holds a {type(tree).__name__}, not a mapping of Haiku parameters.")
    _check_tree(tree)
    return tree


def split_params_and_state(tree: dict) -> tuple[dict, dict]:
    """ImageNet files are `{"params": ..., "state": ...}`; the others are the bare params mapping."""
    if set(tree) == {"params", "state"}:
        return tree["params"], tree["state"]
    return tree, {}


def _parameter_count(tree: Mapping) -> int:
    return sum(int(np.asarray(array).size) for arrays in tree.values() for array in arrays.values())


@dataclass(frozen=True)
class _Layout:
    """How a Haiku array becomes a torch tensor, and which Haiku shape a torch shape corresponds to."""

    to_torch: Callable[[torch.Tensor], torch.Tensor]
    haiku_shape: Callable[[tuple[int, ...], tuple[int, ...]], tuple[int, ...]]  # (torch shape, array shape)


_AS_IS = _Layout(lambda tensor: tensor, lambda expected, actual: expected)
# hk.Linear `w` is [in, out]; nn.Linear.weight is [out, in].
_LINEAR = _Layout(lambda tensor: tensor.T.contiguous(), lambda expected, actual: expected[::-1])
# hk.Conv2D `w` is HWIO; nn.Conv2d.weight is OIHW.
_CONV = _Layout(
    lambda tensor: tensor.permute(3, 2, 0, 1).contiguous(),
    lambda expected, actual: (expected[2], expected[3], expected[1], expected[0]),
)
# LayerNorm/BatchNorm vectors are [C] or, for BatchNorm, [1, 1, 1, C].
_VECTOR = _Layout(
    lambda tensor: tensor.reshape(-1),
    lambda expected, actual: (1,) * (len(actual) - 1) + tuple(expected) if actual else tuple(expected),
)


class HaikuParams:
    """Haiku parameters (`module path -> {name -> array}`) handed out as torch tensors, with accounting.

    Every `take` marks an array as used; `check_all_used` then fails on any array the conversion did not
    place, so nothing in a checkpoint is ever silently dropped.

    Given `target_shapes` (the state-dict shapes of the configured perceiver_hf model), every array placed
    through the helpers below (or `take(..., into=key)`) is checked the moment it is read, so a checkpoint
    that does not fit the configuration is refused at its first mismatching parameter, named in Haiku's terms.
    `check_state_dict` then checks the finished state dict as a whole.
    """

    def __init__(
        self,
        params: Mapping[str, Mapping[str, np.ndarray]],
        state: Mapping | None = None,
        target_shapes: Mapping[str, tuple[int, ...]] | None = None,
    ):
        self.params = params
        self.state = state or {}
        self.target_shapes = None if target_shapes is None else {k: tuple(v) for k, v in target_shapes.items()}
        self.used: set[tuple[str, str]] = set()
        self.sources: dict[str, str] = {}  # perceiver_hf key -> Haiku `module/name`
        self._taken: dict[int, tuple[torch.Tensor, str]] = {}  # id of a tensor handed out -> (tensor, source)
        self.last_taken: str | None = None

    @property
    def num_parameters(self) -> int:
        return _parameter_count(self.params)

    def _lookup(self, tree: Mapping, kind: str, module: str, name: str) -> np.ndarray:
        if module not in tree:
            raise CheckpointError(f"The checkpoint has no {kind} module `{module}` (looking for `{name}`).")
        if name not in tree[module]:
            raise CheckpointError(f"The checkpoint module `{module}` has no {kind} `{name}`.")
        self.used.add((module, name))
        self.last_taken = f"{module}/{name}"
        return tree[module][name]

    def take(
        self, module: str, name: str, shape: tuple[int, ...] | None = None, into: str | None = None
    ) -> torch.Tensor:
        """The array `module/name` as a float32 tensor; `into` names the perceiver_hf parameter it becomes
        (checked against `target_shapes` as it is read)."""
        array = np.asarray(self._lookup(self.params, "parameter", module, name))
        if shape is not None and tuple(array.shape) != tuple(shape):
            raise CheckpointError(
                f"Parameter `{module}/{name}` has shape {tuple(array.shape)} but the configured architecture "
                f"needs {tuple(shape)}."
            )
        tensor = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        if into is not None:
            return self._placed(into, tensor, f"{module}/{name}", _AS_IS)
        self._taken[id(tensor)] = (tensor, f"{module}/{name}")
        return tensor

    def take_state(self, module: str, name: str) -> np.ndarray:
        return self._lookup(self.state, "state", module, name)

    def _placed(self, key: str, tensor: torch.Tensor, source: str, layout: _Layout) -> torch.Tensor:
        """`tensor` (as read from `source`) in perceiver_hf's layout for `key`, after checking its shape."""
        expected = None if self.target_shapes is None else self.target_shapes.get(key)
        try:
            converted = layout.to_torch(tensor)
        except RuntimeError:  # e.g. a 2-D array where a conv kernel belongs
            converted = None
        if expected is not None and (converted is None or tuple(converted.shape) != expected):
            raise self.mismatch(source, tuple(tensor.shape), key, layout.haiku_shape(expected, tuple(tensor.shape)))
        if converted is None:
            raise CheckpointError(f"Parameter `{source}` of shape {tuple(tensor.shape)} cannot become `{key}`.")
        self.sources[key] = source
        return converted

    @staticmethod
    def mismatch(source: str, shape: tuple[int, ...], key: str, needed: tuple[int, ...]) -> CheckpointError:
        return CheckpointError(
            f"The checkpoint does not fit the configured architecture: parameter `{source}` has shape {shape}, "
            f"but the configuration needs {tuple(needed)} (for perceiver_hf's `{key}`). Check --task, or pass the "
            "architecture the checkpoint was trained with as --deepmind-config."
        )

    def source_of(self, key: str, tensor: torch.Tensor) -> str | None:
        """The Haiku `module/name` a state-dict entry was read from, when known."""
        if key in self.sources:
            return self.sources[key]
        taken = self._taken.get(id(tensor))
        return taken[1] if taken is not None and taken[0] is tensor else None

    def check_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """The converted state dict has exactly the configured model's entries, each of the right shape."""
        if self.target_shapes is None:
            raise ValueError("check_state_dict needs the target_shapes of the configured model.")
        for key, tensor in state_dict.items():
            expected = self.target_shapes.get(key)
            if expected is not None and tuple(tensor.shape) != expected:
                source = self.source_of(key, tensor)
                if source is None:
                    raise CheckpointError(
                        f"The checkpoint does not fit the configured architecture: perceiver_hf's `{key}` gets shape "
                        f"{tuple(tensor.shape)} from the checkpoint, but the configuration needs {expected}."
                    )
                raise self.mismatch(source, tuple(tensor.shape), key, expected)
        missing = [key for key in self.target_shapes if key not in state_dict]
        unexpected = [key for key in state_dict if key not in self.target_shapes]
        if missing or unexpected:
            raise CheckpointError(
                f"The conversion left {len(missing)} parameters of the configured model without weights "
                f"{missing[:5]} and produced {len(unexpected)} weights the model does not have {unexpected[:5]}."
            )

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

    def _put(self, weights: dict, key: str, module: str, name: str, layout: _Layout) -> None:
        weights[key] = self._placed(key, self.take(module, name), f"{module}/{name}", layout)

    def _weight_and_bias(self, module: str, prefix: str, layout: _Layout, bias: bool) -> dict[str, torch.Tensor]:
        weights: dict[str, torch.Tensor] = {}
        self._put(weights, f"{prefix}.weight", module, "w", layout)
        if bias:
            self._put(weights, f"{prefix}.bias", module, "b", _AS_IS)
        return weights

    def linear(self, module: str, prefix: str, bias: bool = True) -> dict[str, torch.Tensor]:
        """`hk.Linear` (`w` [in, out]) -> `nn.Linear` (`weight` [out, in])."""
        return self._weight_and_bias(module, prefix, _LINEAR, bias)

    def layer_norm(self, module: str, prefix: str) -> dict[str, torch.Tensor]:
        weights: dict[str, torch.Tensor] = {}
        self._put(weights, f"{prefix}.weight", module, "scale", _VECTOR)
        self._put(weights, f"{prefix}.bias", module, "offset", _VECTOR)
        return weights

    def conv2d(self, module: str, prefix: str, bias: bool = True) -> dict[str, torch.Tensor]:
        """`hk.Conv2D` (`w` HWIO) -> `nn.Conv2d` (`weight` OIHW)."""
        return self._weight_and_bias(module, prefix, _CONV, bias)

    def batch_norm(self, module: str, prefix: str) -> dict[str, torch.Tensor]:
        """`hk.BatchNorm` params and EMA state -> `nn.BatchNorm2d` (inference uses the EMA averages)."""
        weights = self.layer_norm(module, prefix)
        for ema, key in (("mean_ema", "running_mean"), ("var_ema", "running_var")):
            average = torch.from_numpy(np.array(self.take_state(f"{module}/~/{ema}", "average"), dtype=np.float32))
            weights[f"{prefix}.{key}"] = self._placed(f"{prefix}.{key}", average, f"{module}/~/{ema}/average", _VECTOR)
            self.take_state(f"{module}/~/{ema}", "hidden")  # Haiku's debiasing accumulator; inference ignores it
        counter = self.take_state(f"{module}/~/mean_ema", "counter")
        self.take_state(f"{module}/~/var_ema", "counter")
        weights[f"{prefix}.num_batches_tracked"] = torch.tensor(int(np.asarray(counter)), dtype=torch.long)
        return weights

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
        latents = f"{prefix}.latents"
        weights = {latents: self.take(f"{module}/~/trainable_position_encoding", "pos_embs", into=latents)}
        weights.update(self.attention_layer(f"{module}/~/cross_attention", f"{prefix}.cross_attention", True))
        for index in range(num_self_attends_per_block):
            name = "self_attention" if index == 0 else f"self_attention_{index}"
            weights.update(
                self.attention_layer(f"{module}/~/{name}", f"{prefix}.self_attention_layers.{index}", False)
            )
        return weights
