"""Shared pieces of the fault-injection tests: one small run's settings, its tables, and the faulty child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from cyclic_bench.cli import main
from cyclic_bench.results import TABLES

# TD3 on two 200-step tasks, checkpoints at every evaluation (every 100 steps), an event inside the stream
RUN_ARGS = [
    "protocol.size=smoke",
    "protocol.cycles=1",
    "seeds=2",
    "method.actor_hidden=[32,32]",
    "method.critic_hidden=[32,32]",
    "progress=false",
    "events=[{step: 150, kind: zero_weights, fraction: 0.25}]",
]
CHILD = Path(__file__).with_name("fault_child.py")


def tables(run_dir: Path) -> dict[str, bytes]:
    """Every table of a run folder, byte for byte."""
    return {table: (run_dir / f"{table}.csv").read_bytes() for table in TABLES}


def run_in_process(*args: str) -> int:
    """`cyclic-bench ARGS` in this process, on one torch thread (as the child processes run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(list(args))
    finally:
        torch.set_num_threads(threads)


def start_child(fault: str, n: int, marker: Path, *args: str) -> subprocess.Popen:
    """`cyclic-bench ARGS` in a child process with one fault planted (see fault_child.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, str(CHILD), fault, str(n), str(marker), "--", *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def one_line(err: str) -> str:
    """The single line of an error report (fails the test if there are more)."""
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]
