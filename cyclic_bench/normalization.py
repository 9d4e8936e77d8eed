"""The 0 and the 1 of a task's normalised score, at the episode length a stream actually plays.

A score is (return - random) / (reference - random). Both ends depend on how long an episode is: a random
HalfCheetah loses about 0.28 per step, so its return over 50 steps is -13 and over 1000 steps -284. Each protocol
therefore ships, per task, the random-policy return measured at every episode length its sizes play
(`measure_random_returns`, through `cyclic-bench random-returns`), and `random_return_at` looks it up:

- a measured length gives the measured mean;
- a length between two measured ones gives the linear interpolation between them (with return 0 at length 0);
- a length beyond the longest measured one extends the last segment's per-step rate.

Reference returns are published for full-length episodes (1000 steps); `scaled_reference` gives the same per-step
rate at the length played. Each lookup also says, in words, how its value was obtained, and the leaderboard
prints that beside every task.
"""

from __future__ import annotations

import numpy as np

from cyclic_bench.stream import ActionAdapter, Stream
from cyclic_bench.trainer import env_seed

FULL_LENGTH = 1000  # steps of the full-length episodes that published reference returns are measured over

RandomReturns = dict[int, tuple[float, float, int]]  # episode length -> (mean return, standard error, episodes measured)


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


def random_return_at(measured: RandomReturns, length: int) -> tuple[float, str]:
    """The random-policy return at episode length `length` from the returns measured at some lengths, and its source."""
    if length in measured:
        mean, stderr, episodes = measured[length]
        return mean, f"uniform random actions, measured over {episodes} episodes of {length} steps, standard error {stderr:g}"
    points = [(0, 0.0)] + sorted((n, values[0]) for n, values in measured.items())
    below = max((p for p in points if p[0] < length), key=lambda p: p[0])
    above = min((p for p in points if p[0] > length), key=lambda p: p[0], default=None)
    if above is None:  # beyond the longest measured length: keep the last segment's per-step rate
        below, above = points[-2], points[-1]
        how = f"extrapolated from the returns measured at {below[0]} and {above[0]} steps"
    else:
        start = f"{below[0]}" if below[0] else "0 (return 0)"
        how = f"interpolated between the returns measured at {start} and {above[0]} steps"
    value = below[1] + (above[1] - below[1]) * (length - below[0]) / (above[0] - below[0])
    return round(value, 1), f"uniform random actions, {how}, not measured at {length} steps"


def scaled_reference(full_length_return: float, length: int) -> float:
    """A reference return published for 1000-step episodes, at the same per-step rate over `length` steps."""
    return full_length_return * length / FULL_LENGTH
