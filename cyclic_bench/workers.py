"""Environment pools stepped in parallel worker processes.

`ProcessPool` splits a pool's N environments into contiguous slices, one per worker process; each worker builds
its slice with the task's own `make_pool`, so snapshots, dynamics changes and the seed-major layout behave exactly
as in-process (snapshots are per-environment lists, so a run may resume with another worker count).
Workers start by fork (Linux), which hands them the task's factory without pickling it; they only run the
simulator (no torch), so forking a process that has torch loaded is safe. Stepping sends every slice its actions
first and then collects the results, so the slices run at the same time. A worker whose training process was killed
exits by itself within a second (forked workers hold each other's pipe ends, so none would see its pipe close).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence

import numpy as np

from cyclic_bench.envs import EnvPool, PoolStep

PARENT_CHECK_SECONDS = 1.0  # how often an idle worker checks that the training process is still alive


def _serve(make_pool: Callable[[Sequence[int]], EnvPool], seeds: Sequence[int], conn) -> None:
    trainer = os.getppid()
    pool = make_pool(seeds)
    try:
        while True:
            if not conn.poll(PARENT_CHECK_SECONDS):
                if os.getppid() != trainer:
                    break  # the training process was killed: nothing will come, and a worker must not outlive it
                continue
            command, args = conn.recv()
            if command == "close":
                break
            try:
                conn.send((True, getattr(pool, command)(*args)))
            except Exception as error:  # handed back to the parent, which raises it there
                conn.send((False, error))
    finally:
        pool.close()
        conn.close()


class ProcessPool(EnvPool):
    def __init__(self, make_pool: Callable[[Sequence[int]], EnvPool], seeds: Sequence[int], workers: int):
        self.n = len(seeds)
        bounds = np.linspace(0, self.n, min(workers, self.n) + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        context = mp.get_context("fork")
        self.conns, self.processes = [], []
        for part in self.slices:
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(make_pool, list(seeds)[part], child), daemon=True)
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)

    def _call(self, command: str, per_worker_args: list[tuple]) -> list:
        for conn, args in zip(self.conns, per_worker_args, strict=True):
            conn.send((command, args))
        results = [conn.recv() for conn in self.conns]
        for ok, value in results:
            if not ok:
                raise value
        return [value for _, value in results]

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        args = [(None if seeds is None else list(seeds)[part],) for part in self.slices]
        return np.concatenate(self._call("reset", args))

    def step(self, actions: np.ndarray, which: np.ndarray | None = None, autoreset: bool = True) -> PoolStep:
        args = [(actions[part], None if which is None else which[part], autoreset) for part in self.slices]
        parts = self._call("step", args)
        infos = {key: np.concatenate([p.info[key] for p in parts]) for key in parts[0].info}
        return PoolStep(
            obs=np.concatenate([p.obs for p in parts]),
            reward=np.concatenate([p.reward for p in parts]),
            terminated=np.concatenate([p.terminated for p in parts]),
            truncated=np.concatenate([p.truncated for p in parts]),
            final_obs=np.concatenate([p.final_obs for p in parts]),
            info=infos,
        )

    def get_state(self) -> list:
        return [entry for part in self._call("get_state", [()] * len(self.slices)) for entry in part]

    def set_state(self, state: list) -> None:
        self._call("set_state", [(state[part],) for part in self.slices])

    def scale_dynamics(self, quantity: str, scale: float) -> None:
        self._call("scale_dynamics", [(quantity, scale)] * len(self.slices))

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(BrokenPipeError, OSError):  # a worker that already died needs no goodbye
                conn.send(("close", ()))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
