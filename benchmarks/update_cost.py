"""Cost of one training step with its gradient update: ms per `observe` of a registered method, S seeds.

The method's replay is pre-filled with random HalfCheetah-sized transitions (no learning), then each timed
`observe` stores one transition and runs one update, with every hook of the method around it, as in training. Only
the public Method interface is used (`get_method`, `observe`), so the same script times any code revision: to
compare two checkouts, run it alternately from each, many short times, and take the ratio of the medians
(BENCHMARKS.md shows the loop).

Run from the repository root:
    python benchmarks/update_cost.py                               # td3, S = 30, 256-256, 40 timed steps
    python benchmarks/update_cost.py --method redo --base sac --seeds 8 --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import get_method

OBS_DIM, ACTION_DIM, PREFILL, WARMUP = 17, 6, 1000, 5  # HalfCheetah-v5 sizes; untimed first steps


def transitions(n_seeds: int, count: int, learn: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        obs, next_obs = torch.randn(n_seeds, 1, OBS_DIM, generator=g), torch.randn(n_seeds, 1, OBS_DIM, generator=g)
        action = torch.rand(n_seeds, 1, ACTION_DIM, generator=g) * 2 - 1
        done = torch.zeros(n_seeds, 1, dtype=torch.bool)
        yield Transition(obs, action, torch.randn(n_seeds, 1, generator=g), next_obs, done, done, learn=learn)


def measure(method: str, base: str | None, n_seeds: int, hidden: list[int], steps: int) -> list[float]:
    """Seconds of each of `steps` timed observe calls (one update each)."""
    method_cls, config_cls = get_method(method) if base is None else get_method(method, base)
    total = PREFILL + WARMUP + steps
    spec = MethodSpec(OBS_DIM, ACTION_DIM, "continuous", tuple(range(n_seeds)), n_tasks=1, total_steps=total, device=torch.device("cpu"))
    agent = method_cls(config_cls(actor_hidden=list(hidden), critic_hidden=list(hidden)), spec)
    for t in transitions(n_seeds, PREFILL, learn=False, seed=0):
        agent.observe(t)
    seconds = []
    for k, t in enumerate(transitions(n_seeds, WARMUP + steps, learn=True, seed=1)):
        start = time.perf_counter()
        agent.observe(t)
        if k >= WARMUP:
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="td3", help="a registered learner or intervention")
    parser.add_argument("--base", help="the learner an intervention runs on (default its default learner)")
    parser.add_argument("--seeds", type=int, default=30, help="S, seeds trained together")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="actor and critic hidden sizes")
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    args = parser.parse_args()
    seconds = measure(args.method, args.base, args.seeds, args.hidden, args.steps)
    report = {"method": args.method, "base": args.base, "seeds": args.seeds, "hidden": args.hidden, "threads": torch.get_num_threads()}
    report |= {"ms_per_step_median": statistics.median(seconds) * 1e3, "ms_per_step_mean": statistics.mean(seconds) * 1e3}
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
