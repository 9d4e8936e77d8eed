"""Measure the random-policy return of every task of a stream: the 0 of its normalised score."""

from __future__ import annotations

import numpy as np

from cyclic_bench.stream import ActionAdapter, Stream
from cyclic_bench.trainer import env_seed


def measure_random_returns(stream: Stream, episodes: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and standard error of the return of uniformly random actions over `episodes` episodes per task
    (held-out tasks included)."""
    rng = np.random.default_rng(seed)
    results = {}
    for j, task in enumerate(stream.eval_tasks):
        pool = task.make_pool([env_seed(seed, 3, j, k) for k in range(episodes)])
        pool.reset()
        adapter = ActionAdapter(task)
        returns, running = np.zeros(episodes), np.ones(episodes, bool)
        while running.any():
            if task.action_kind == "discrete":
                actions = rng.integers(task.action_dim, size=episodes)
            else:
                actions = rng.uniform(-1.0, 1.0, size=(episodes, task.action_dim))
            result = pool.step(adapter(actions), which=running, autoreset=False)
            returns += np.where(running, result.reward, 0.0)
            running &= ~(result.terminated | result.truncated)
        pool.close()
        results[task.name] = {"mean": round(float(returns.mean()), 1), "stderr": round(float(returns.std(ddof=1) / np.sqrt(episodes)), 1)}
    return results
