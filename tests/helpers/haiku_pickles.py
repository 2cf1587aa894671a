"""Test helpers: checkpoints written exactly as DeepMind's official files are, without Haiku installed.

DeepMind's files (2021, dm-haiku 0.0.4/0.0.5) are pickle protocol 3: `haiku._src.data_structures.FlatMapping`
wraps the dict at both levels, and arrays go through NumPy 1.x's `numpy.core.multiarray._reconstruct`.
`write_haiku_pickle` emits those globals by name, so the files are the real format, not an approximation.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np

_FLAT_MAPPING = b"haiku._src.data_structures\nFlatMapping\n"
_RECONSTRUCT = b"numpy.core.multiarray\n_reconstruct\n"


class _FlatMapping:
    """Pickles as `haiku._src.data_structures.FlatMapping(dict)`, as Haiku's own class does."""

    def __init__(self, mapping: dict):
        self.mapping = mapping

    def __reduce__(self):
        return _FlatMapping, (self.mapping,)


class _HaikuPickler(pickle._Pickler):  # the Python pickler: its `save_global` can be overridden
    def save_global(self, obj, name=None):
        if obj is _FlatMapping:
            self.write(pickle.GLOBAL + _FLAT_MAPPING)
        elif getattr(obj, "__name__", None) == "_reconstruct" and obj.__module__.endswith("core.multiarray"):
            self.write(pickle.GLOBAL + _RECONSTRUCT)  # NumPy 2 would write `numpy._core`
        else:
            return super().save_global(obj, name)
        self.memoize(obj)


def _wrap(modules: dict) -> _FlatMapping:
    return _FlatMapping({module: _FlatMapping(dict(arrays)) for module, arrays in modules.items()})


def write_haiku_pickle(target: str | Path | BinaryIO, params: dict, state: dict | None = None, wrapped: bool = True):
    """Write `{module: {name: array}}` params (and state) as DeepMind did, to a file path or a binary stream.

    `wrapped=True` writes the ImageNet layout `{"params": FlatMapping, "state": FlatMapping}`; False writes the
    bare params mapping (language, optical flow, video).
    """
    tree = {"params": _wrap(params), "state": _wrap(state or {})} if wrapped else _wrap(params)
    if hasattr(target, "write"):
        _HaikuPickler(target, protocol=3).dump(tree)
        return target
    path = Path(target)
    with path.open("wb") as file:
        _HaikuPickler(file, protocol=3).dump(tree)
    return path


def random_arrays(shapes: dict, seed: int = 0) -> dict:
    """`{module: {name: shape}}` -> `{module: {name: array}}` of float32 noise (int32 for EMA counters)."""
    generator = np.random.default_rng(seed)
    return {
        module: {
            name: np.array(1000, dtype=np.int32)
            if name == "counter"
            else generator.standard_normal(shape, dtype=np.float32)
            for name, shape in arrays.items()
        }
        for module, arrays in shapes.items()
    }


def official_structures(fixtures_dir: Path) -> dict:
    """The six official checkpoints' structures, keyed by DeepMind's file name."""
    models = json.loads((fixtures_dir / "official_structure.json").read_text())["models"]
    return {model["official_file"]: model for model in models.values()}
