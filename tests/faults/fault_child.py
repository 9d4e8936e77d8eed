"""`cyclic-bench` with one fault planted, run as a child process by the fault-injection tests.

    python fault_child.py FAULT N MARKER -- ARGS...

FAULT is one of
    kill_at_step        SIGKILL itself just before training step N
    kill_in_checkpoint  SIGKILL itself halfway through writing its N-th checkpoint (a partial temporary file stays)
    kill_in_append      SIGKILL itself halfway through its N-th append to a table (a partial row stays)
    pause_at_step       at step N, holding the folder's lock, create MARKER.paused and wait until MARKER.go exists
then runs `cyclic-bench ARGS...` (one torch thread, as the tests' in-process runs).
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import torch

from cyclic_bench import checkpoint, cli, results
from cyclic_bench.trainer import Engine


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def plant(fault: str, n: int, marker: Path) -> None:
    calls = {"count": 0}

    def nth_call() -> bool:
        calls["count"] += 1
        return calls["count"] == n

    if fault in ("kill_at_step", "pause_at_step"):
        train_step = Engine.train_step

        def at_step(self, task_index):
            if self.step == n and fault == "kill_at_step":
                die()
            if self.step == n:
                marker.with_suffix(".paused").touch()
                while not marker.with_suffix(".go").exists():
                    time.sleep(0.02)
            train_step(self, task_index)

        Engine.train_step = at_step
    elif fault == "kill_in_checkpoint":
        save = checkpoint.save

        def half_a_checkpoint(state, f):
            if not nth_call():
                return save(state, f)
            whole = io.BytesIO()
            save(state, whole)
            f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            die()

        checkpoint.save = half_a_checkpoint
    elif fault == "kill_in_append":
        append = results.RunDir.append

        def half_an_append(self, table, new_rows):
            if not new_rows or not nth_call():
                return append(self, table, new_rows)
            path = self.file(f"{table}.csv")
            text = results._csv_text(results.TABLES[table], new_rows).split(b"\n", 1)[1]  # the rows, without the header
            with open(path, "ab") as f:
                f.write(text[: len(text) // 2])
            die()

        results.RunDir.append = half_an_append
    else:
        raise SystemExit(f"unknown fault {fault}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    fault, n, marker, separator, *args = sys.argv[1:]
    assert separator == "--"
    plant(fault, int(n), Path(marker))
    sys.exit(cli.main(args))
