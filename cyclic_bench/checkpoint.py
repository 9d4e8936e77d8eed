"""Checkpoint files that are safe to load from anywhere: tensors plus JSON, and nothing else is ever unpickled.

A checkpoint is a torch zip holding {"format": FORMAT, "tree": JSON text, "tensors": [tensor, ...]}. Loading uses
`torch.load(weights_only=True)`, whose unpickler builds only tensors and plain containers and refuses any other
object unread, so a crafted file cannot run code. The JSON tree is the saved state with each tensor replaced by its
index; numpy arrays travel as raw bytes with their dtype and shape (object dtypes refused), tuples and dicts whose
keys are not plain strings are marked, so a state comes back exactly as it was saved (floats through JSON are exact).
A foreign, truncated or damaged file is refused with one line naming it.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from cyclic_bench.errors import ConfigError

FORMAT = "cyclic-bench checkpoint v1"
MARK = "$"  # marker keys start with this; plain dicts whose keys do too are stored as item lists
PLAIN = (type(None), bool, int, float, str)  # exact types JSON holds as they are (numpy's float64 is a float subclass)
TENSOR, NDARRAY, SCALAR, TUPLE, ITEMS = (f"{MARK}{kind}" for kind in ("tensor", "ndarray", "scalar", "tuple", "items"))


class Unsupported(TypeError):
    """A value a checkpoint cannot hold; `path` says where in the state it sits."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what, self.path = what, []

    def __str__(self) -> str:
        where = "state" + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in reversed(self.path))
        return f"a checkpoint cannot hold {self.what} (at {where}): use tensors, numpy arrays and plain data"


def save(state: Any, f: BinaryIO) -> None:
    """Write `state` (tensors, numpy arrays and scalars, and JSON-able values in dicts, lists and tuples) to `f`."""
    tensors: list[torch.Tensor] = []
    tree = _encode(state, tensors)
    try:
        torch.save({"format": FORMAT, "tree": json.dumps(tree), "tensors": tensors}, f)
    except RuntimeError as error:
        if isinstance(error.__context__, OSError):  # torch reports a failed write (a full disk) as its own error
            raise error.__context__ from None
        raise


def load(path: Path) -> Any:
    """The state saved in the checkpoint at `path`; ConfigError (one line naming the file) if it is not a genuine one."""
    if path.stat().st_size == 0:
        _refuse(path, "it is empty (a write was cut short)")
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickles on stderr; the refusal below says enough
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        _refuse(path, "it is foreign or damaged: it holds something other than tensors and plain data, so it was not loaded")
    except Exception as error:  # a truncated zip, a raw pickle cut short, random bytes: torch raises many kinds
        _refuse(path, f"it is truncated or damaged ({type(error).__name__})")
    if not (isinstance(raw, dict) and raw.get("format") == FORMAT):
        _refuse(path, f"it is not a {FORMAT} file")
    try:
        return _decode(json.loads(raw["tree"]), raw["tensors"])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        _refuse(path, f"its contents are damaged ({type(error).__name__})")


def _refuse(path: Path, why: str):
    raise ConfigError(f"checkpoint {path} cannot be used: {why}; move it away to restart that run from step 0") from None


def _encode(value: Any, tensors: list[torch.Tensor]) -> Any:
    kind = type(value)
    if kind in PLAIN:
        return value
    if isinstance(value, dict):  # OrderedDicts too (module state dicts); they load back as plain dicts
        if all(type(k) is str and not k.startswith(MARK) for k in value):
            return {k: v if type(v) in PLAIN else _encode_at(k, v, tensors) for k, v in value.items()}
        return {ITEMS: [[_encode_at(k, k, tensors), _encode_at(k, v, tensors)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        items = [v if type(v) in PLAIN else _encode_at(i, v, tensors) for i, v in enumerate(value)]
        return items if isinstance(value, list) else {TUPLE: items}
    if isinstance(value, np.generic):
        return {SCALAR: value.item(), "dtype": value.dtype.str}
    if isinstance(value, torch.Tensor):
        tensors.append(value.detach())
        return {TENSOR: len(tensors) - 1}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise Unsupported("an object array")
        tensors.append(torch.from_numpy(np.frombuffer(value.tobytes(), dtype=np.uint8).copy()))
        return {NDARRAY: len(tensors) - 1, "dtype": value.dtype.str, "shape": list(value.shape)}
    raise Unsupported(kind.__name__)


def _encode_at(key: Any, value: Any, tensors: list[torch.Tensor]) -> Any:
    try:
        return _encode(value, tensors)
    except Unsupported as error:
        error.path.append(key)
        raise


def _decode(node: Any, tensors: list) -> Any:
    if type(node) is list:
        return [v if type(v) in PLAIN else _decode(v, tensors) for v in node]
    if type(node) is not dict:
        return node
    if len(node) <= 3 and any(k.startswith(MARK) for k in node):
        return _decode_marked(node, tensors)
    return {k: v if type(v) in PLAIN else _decode(v, tensors) for k, v in node.items()}


def _decode_marked(node: dict, tensors: list) -> Any:
    if TENSOR in node:
        return _tensor(tensors[node[TENSOR]])
    if NDARRAY in node:
        dtype = np.dtype(node["dtype"])
        if dtype.hasobject:
            raise ValueError("object arrays are never loaded")
        data = _tensor(tensors[node[NDARRAY]]).numpy().tobytes()
        return np.frombuffer(data, dtype=dtype).reshape(node["shape"]).copy()
    if SCALAR in node:
        dtype = np.dtype(node["dtype"])
        if dtype.hasobject:
            raise ValueError("object scalars are never loaded")
        return dtype.type(node[SCALAR])
    if TUPLE in node:
        return tuple(_decode(v, tensors) for v in node[TUPLE])
    if ITEMS in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node[ITEMS]}
    raise ValueError(f"unknown marker in {sorted(node)}")


def _tensor(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError("a tensor slot holds something else")
    return value
