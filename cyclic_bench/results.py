"""A run directory: what was run, with what, and what came out, written so that a kill never corrupts it.

    config.yaml        the resolved configuration (what `resume=` and reproduction read back)
    meta.json          package versions (plug-ins' too), the method's package, code revision, device, command line
    evaluations.csv    one row per (seed, evaluation step, evaluated task)
    diagnostics.csv    one row per (seed, evaluation step, diagnostic)
    online.csv         per-step means of training-time quantities (reward, a bandit's regret) over each evaluation window
    events.csv         perturbation events: step, kind, task, detail
    failures.csv       seeds that went non-finite: step and reason
    summary.json       final scores per seed and task, failed seeds, speed (written when the run ends)
    checkpoint.pt      the latest checkpoint (never committed)

    .lock              held by the one process writing the folder (an exclusive lock, released when it ends or dies)

Every whole-file write goes to a temporary file first and is renamed over the target (atomic on POSIX); a temporary
file that a kill left behind is removed when the next writer starts. Tables are appended during the run and
rewritten from the checkpoint's rows on resume, so none is lost or doubled. Checkpoints hold tensors and JSON only
(`cyclic_bench.checkpoint`), so loading one never runs code. Only one process writes a folder at a time: the lock
is taken before anything is written, and the kernel releases it when its holder exits, however it exits.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path

import torch

from cyclic_bench import checkpoint
from cyclic_bench.errors import ConfigError
from cyclic_bench.registry import method_plugin, plugins

EVAL_COLUMNS = ["seed", "step", "cycle", "trained_task", "eval_task", "return", "return_std", "score"]
DIAG_COLUMNS = ["seed", "step", "cycle", "trained_task", "name", "value"]
FAILURE_COLUMNS = ["seed", "step", "reason"]
ONLINE_COLUMNS = ["seed", "step", "cycle", "trained_task", "name", "value"]
EVENT_COLUMNS = ["step", "kind", "task", "detail"]
TABLES = {
    "evaluations": EVAL_COLUMNS,
    "diagnostics": DIAG_COLUMNS,
    "online": ONLINE_COLUMNS,
    "events": EVENT_COLUMNS,
    "failures": FAILURE_COLUMNS,
}
PACKAGES = ["cyclic-bench", "torch", "numpy", "gymnasium", "mujoco", "dm-control", "hydra-core", "rliable"]
RESULT_FILES = ("config.yaml", "meta.json", "summary.json", "checkpoint.pt", *(f"{table}.csv" for table in TABLES))
LOCK_FILE = ".lock"
_held_locks: set[int] = set()  # file descriptors of the run-folder locks this process holds


def _release_locks_in_child() -> None:
    """A forked child (an environment worker) drops its copies of the locks, so they die with the writer, not with it."""
    for fd in _held_locks:
        with suppress(OSError):
            os.close(fd)
    _held_locks.clear()


os.register_at_fork(after_in_child=_release_locks_in_child)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Name `path` in an OSError raised while writing it (a failed write() names no file of its own)."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def atomic_write(path: Path, write) -> None:
    """Call write(open_file) on a temporary file beside `path`, then rename it over `path`."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}"
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "xb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):  # a read-only or full file system may refuse even this; the next start removes it
                os.unlink(tmp)
            raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.file("checkpoint.pt")

    def is_run(self) -> bool:
        return self.file("config.yaml").is_file()

    def rewrite_tables(self, rows: dict[str, list[dict]]) -> None:
        """Replace every table with exactly `rows` (at start and on resume)."""
        for table, columns in TABLES.items():
            atomic_write(self.file(f"{table}.csv"), lambda f, t=table, c=columns: f.write(_csv_text(c, rows.get(t, []))))

    def append(self, table: str, new_rows: list[dict]) -> None:
        if new_rows:
            path = self.file(f"{table}.csv")
            with writing(path), open(path, "a", newline="") as f:
                csv.DictWriter(f, TABLES[table]).writerows(new_rows)

    def save_checkpoint(self, state: dict) -> None:
        atomic_write(self.checkpoint, lambda f: checkpoint.save(state, f))

    def load_checkpoint(self) -> dict | None:
        """The checkpoint's state, None without one; ConfigError (one line) for a foreign or damaged file."""
        if not self.checkpoint.is_file():
            return None
        return checkpoint.load(self.checkpoint)

    # ---- one writer ---------------------------------------------------------------------------------------
    def refuse_if_busy(self) -> None:
        """ConfigError if another process holds the folder's writer lock (checked before anything is allocated)."""
        if self.file(LOCK_FILE).is_file():
            with open(self.file(LOCK_FILE), "rb") as f:
                if not _try_lock(f):
                    self._refuse_busy(f)

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the folder's exclusive writer lock for the block, creating the folder; ConfigError if another holds it.

        A lock left by a killed process is free (the kernel drops it with its holder), so it is simply taken over.
        """
        path = self.file(LOCK_FILE)
        self.path.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:  # closing it releases the lock; the file stays, since removing it would race
            if not _try_lock(f):
                self._refuse_busy(f)
            _held_locks.add(f.fileno())
            try:
                with writing(path):
                    f.truncate(0)
                    f.write(f"{os.getpid()}\n".encode())
                    f.flush()
                yield
            finally:
                _held_locks.discard(f.fileno())

    def _refuse_busy(self, f) -> None:
        f.seek(0)
        holder = f.read(32).decode(errors="replace").strip() or "unknown"
        raise ConfigError(
            f"run folder {self.path} is being written by another process (pid {holder}); "
            "wait for it to finish or stop it, or write to another folder"
        )

    def remove_temporary_files(self) -> list[str]:
        """Delete the temporary files of writes a kill interrupted (call with the writer lock held); their names."""
        removed = []
        for entry in sorted(self.path.iterdir()):
            if entry.is_file() and any(entry.name.startswith(f".{name}.") for name in RESULT_FILES):
                with writing(entry):
                    entry.unlink()
                removed.append(entry.name)
        return removed


def _try_lock(f) -> bool:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _csv_text(columns: list[str], rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def run_metadata(device: torch.device, method: str | None = None) -> dict:
    """Package versions (plug-ins' too), code revision and machine facts, and the package that provides `method`."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    found = plugins()
    versions |= {p["package"]: p["version"] for p in found if p["package"] and p["package"] not in versions}
    origin = (method_plugin(method) if method else None) or {"package": "cyclic-bench", "version": versions["cyclic-bench"]}
    return {
        "packages": versions,
        "plugins": found,
        "method_package": {"name": origin["package"], "version": origin["version"]},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "code_revision": code_revision(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "command": sys.argv,
    }


def code_revision() -> str:
    """The git commit of the installed source, with '+dirty' if it has uncommitted changes; 'unknown' outside git."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=source, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")
