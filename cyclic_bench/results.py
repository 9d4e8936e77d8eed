"""A run directory: what was run, with what, and what came out, written so that a kill never corrupts it.

    config.yaml        the resolved configuration (what `resume=` and reproduction read back)
    meta.json          package versions, code revision, device, command line
    evaluations.csv    one row per (seed, evaluation step, evaluated task)
    diagnostics.csv    one row per (seed, evaluation step, diagnostic)
    online.csv         per-step means of training-time quantities (reward, a bandit's regret) over each evaluation window
    events.csv         perturbation events: step, kind, task, detail
    failures.csv       seeds that went non-finite: step and reason
    summary.json       final scores per seed and task, failed seeds, speed (written when the run ends)
    checkpoint.pt      the latest checkpoint (never committed)

Every whole-file write goes to a temporary file first and is renamed over the target (atomic on POSIX).
Tables are appended during the run and rewritten from the checkpoint's rows on resume, so none is lost or doubled.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch

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


def atomic_write(path: Path, write) -> None:
    """Call write(open_file) on a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o644)  # mkstemp makes files private; results are meant to be read by others
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
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
            with open(self.file(f"{table}.csv"), "a", newline="") as f:
                csv.DictWriter(f, TABLES[table]).writerows(new_rows)

    def save_checkpoint(self, state: dict) -> None:
        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def load_checkpoint(self) -> dict | None:
        if not self.checkpoint.is_file():
            return None
        return torch.load(self.checkpoint, map_location="cpu", weights_only=False)


def _csv_text(columns: list[str], rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def run_metadata(device: torch.device) -> dict:
    """Package versions, code revision and machine facts, for the record."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "packages": versions,
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
