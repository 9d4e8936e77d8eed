"""A full disk or a read-only folder stops a run with one line saying what is safe; the last good checkpoint resumes exactly.

The file system is simulated by replacing `open` inside cyclic_bench.results, through which every write into a run
folder goes: a disk that fills up at a chosen moment (writes then fail with ENOSPC, part-way through), or a read-only one.
"""

import errno
import shutil

import pytest
from fault_helpers import RUN_ARGS, one_line, run_in_process, tables

from cyclic_bench import checkpoint, results


class Disk:
    """Unlimited until `fill(free)` is called; then `free` more bytes fit and every write beyond fails with ENOSPC."""

    def __init__(self):
        self.free = None

    def fill(self, free: int) -> None:
        self.free = free

    def write(self, f, data) -> int:
        if self.free is not None and len(data) > self.free:
            f.write(data[: self.free])  # what fits is written: a cut-short file, as on a real full disk
            self.free = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.free is not None:
            self.free -= len(data)
        return f.write(data)


class DiskFile:
    def __init__(self, f, disk):
        self.f, self.disk = f, disk

    def write(self, data):
        return self.disk.write(self.f, data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def simulate(monkeypatch, disk: Disk | None = None, read_only: bool = False) -> None:
    real_open = open

    def fake_open(path, mode="r", *args, **kwargs):
        if mode in ("r", "rb"):
            return real_open(path, mode, *args, **kwargs)
        if read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return DiskFile(real_open(path, mode, *args, **kwargs), disk)

    monkeypatch.setattr(results, "open", fake_open, raising=False)


def fill_at_call(monkeypatch, owner, name: str, n: int, disk: Disk, free: int) -> None:
    """The disk fills up when owner.name is called for the n-th time (`free` bytes of that write still fit)."""
    original, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            disk.fill(free)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.parametrize(
    ("where", "owner", "name", "n", "free", "file", "safe_step"),
    [
        ("in its second checkpoint write", checkpoint, "save", 2, 5000, "checkpoint.pt", 100),
        ("in a table append, a row cut short", results.RunDir, "append", 9, 20, "diagnostics.csv", 100),
    ],
)
def test_a_full_disk_is_one_line_and_the_run_resumes_from_its_last_good_checkpoint(
    tmp_path, reference, capsys, monkeypatch, where, owner, name, n, free, file, safe_step
):
    run_dir, disk = tmp_path / "run", Disk()
    simulate(monkeypatch, disk)
    fill_at_call(monkeypatch, owner, name, n, disk, free)
    assert run_in_process("run", *RUN_ARGS, f"hydra.run.dir={run_dir}") == 1, where
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"continue with `cyclic-bench run resume={run_dir}`"), line
    assert f"cannot write {run_dir / file}: No space left on device; the checkpoint of step {safe_step} is intact" in line, line
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == safe_step  # whole and genuine
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == [".lock"]  # no partial temporary file
    monkeypatch.undo()  # space is freed
    assert run_in_process("run", f"resume={run_dir}") == 0
    assert tables(run_dir) == reference[1]


def test_a_read_only_run_folder_is_one_line_and_left_as_it_was(tmp_path, reference, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(reference[0], run_dir)
    (run_dir / "summary.json").unlink()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    simulate(monkeypatch, read_only=True)
    assert run_in_process("run", f"resume={run_dir}") == 1
    line = one_line(capsys.readouterr().err)
    assert f"cannot write {run_dir / '.lock'}: Read-only file system; its checkpoint is untouched" in line, line
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
