import pickle

import numpy as np
import pytest
import torch
from helpers import same_state

from cyclic_bench import checkpoint
from cyclic_bench.errors import ConfigError


def test_every_kind_of_state_comes_back_exactly(tmp_path):
    buffer = torch.arange(12.0).view(3, 4)
    state = {
        "tensors": [torch.tensor([1.5, float("nan"), float("inf")]), buffer[:, :2], torch.ones(2, dtype=torch.bool), torch.tensor(7)],
        "arrays": [np.arange(5, dtype=np.uint32), np.array([[0.1, np.nan]], dtype=np.float32), np.zeros((0, 3)), np.array([True])],
        "scalars": [np.float64(0.1), np.int64(-3), np.float32(1 / 3), 2**100, -0.0, float("nan"), "text", None, True],
        "rng": ("MT19937", np.arange(3, dtype=np.uint32), 624, 0, 0.0),  # numpy's RandomState.get_state()
        "keys": {1: "int key", (2, 3): "tuple key", "$tensor": "a key that looks like a marker"},
    }
    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as f:
        checkpoint.save(state, f)
    loaded = checkpoint.load(path)
    assert same_state(loaded, state)
    assert loaded["arrays"][0].flags.writeable  # restored arrays are ordinary, writable arrays


def test_a_state_that_json_and_tensors_cannot_hold_is_refused_when_saved(tmp_path):
    with open(tmp_path / "checkpoint.pt", "wb") as f, pytest.raises(TypeError, match=r"cannot hold an object array \(at state.bad\[1\]\)"):
        checkpoint.save({"bad": [0, np.array([object()])]}, f)
    with open(tmp_path / "checkpoint.pt", "wb") as f, pytest.raises(TypeError, match=r"cannot hold set \(at state\[0\]\)"):
        checkpoint.save([{1, 2}], f)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # creates the marker file when unpickled


@pytest.mark.parametrize("kind", ["torch zip", "raw pickle"])
def test_a_checkpoint_holding_code_is_refused_unread(tmp_path, kind):
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "payload-ran"
    state = {"format": checkpoint.FORMAT, "tree": "{}", "tensors": [], "extra": Payload(marker)}
    if kind == "torch zip":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(ConfigError, match=f"checkpoint {path} cannot be used: it is foreign or damaged"):
        checkpoint.load(path)
    assert not marker.exists()
