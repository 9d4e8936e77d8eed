"""A hostile, foreign or damaged checkpoint (or configuration) is refused in one line naming the file; nothing runs or changes."""

import pickle
import random
import shutil

import pytest
import torch
from fault_helpers import one_line, run_in_process

from cyclic_bench import checkpoint


class Payload:
    """Unpickling it would create the file `marker`: proof that a load ran code from the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def raw_pickle(path, genuine, marker):
    path.write_bytes(pickle.dumps({"step": Payload(marker)}))


def torch_zip(path, genuine, marker):
    torch.save({"format": checkpoint.FORMAT, "tree": "{}", "tensors": [], "step": Payload(marker)}, path)


def foreign(path, genuine, marker):
    torch.save({"model": torch.zeros(3), "epoch": 7}, path)  # loads as weights, but is not a checkpoint of this suite


def truncated(path, genuine, marker):
    path.write_bytes(genuine[: len(genuine) // 2])


def empty(path, genuine, marker):
    path.write_bytes(b"")


def random_bytes(path, genuine, marker):
    path.write_bytes(random.Random(16).randbytes(4096))


def damaged_tree(path, genuine, marker):
    torch.save({"format": checkpoint.FORMAT, "tree": '{"step": {"$tensor": 5}}', "tensors": []}, path)


def other_run(path, genuine, marker):
    with open(path, "wb") as f:  # genuine format, but not a state of this run
        checkpoint.save({"step": 100, "wall_seconds": 1.0, "rows": {}, "method": {"active": torch.ones(5, dtype=torch.bool)}}, f)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (raw_pickle, "it is foreign or damaged"),
        (torch_zip, "it is foreign or damaged"),
        (foreign, "it is not a cyclic-bench checkpoint v1 file"),
        (truncated, "it is truncated or damaged"),
        (empty, "it is empty"),
        (random_bytes, "damaged"),
        (damaged_tree, "its contents are damaged"),
        (other_run, "does not fit this run"),
    ],
)
def test_a_bad_checkpoint_is_refused_in_one_line_and_changes_nothing(tmp_path, reference, capsys, make, why):
    run_dir, marker = tmp_path / "run", tmp_path / "payload-ran"
    shutil.copytree(reference[0], run_dir)
    (run_dir / "summary.json").unlink()
    make(run_dir / "checkpoint.pt", (reference[0] / "checkpoint.pt").read_bytes(), marker)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert run_in_process("run", f"resume={run_dir}") == 2
    line = one_line(capsys.readouterr().err)
    assert f"checkpoint {run_dir / 'checkpoint.pt'}" in line and why in line, line
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


@pytest.mark.parametrize(
    ("text", "why"),
    [("seeds: [\n", "is not valid YAML (line 2"), ("- a list\n", "is not a run configuration"), ("seeds: 2\n", "has no checkpoint_every")],
)
def test_a_damaged_configuration_is_refused_in_one_line(tmp_path, reference, capsys, text, why):
    run_dir = tmp_path / "run"
    shutil.copytree(reference[0], run_dir)
    (run_dir / "config.yaml").write_text(text)
    assert run_in_process("run", f"resume={run_dir}") == 2
    line = one_line(capsys.readouterr().err)
    assert f"{run_dir / 'config.yaml'} " in line and why in line, line
