"""End-to-end throughput: seed-steps/s of a seed-batched method against a loop of single-seed agents, the
environment-only ceiling of three vector-env designs, and peak memory.

For each S (seeds, one HalfCheetah-v5 environment each), in the same run:
  env-only    env-steps/s with random actions: in-process pool | our worker-process pool | Gymnasium AsyncVectorEnv
  end-to-end  seed-steps/s of act -> env step -> observe (one update per step): batched | loop of S single-seed agents,
              the batched agent's environments stepped in-process or in worker processes (`--workers`)
  memory      peak host RSS of this process, and peak GPU memory of the batched agent when on CUDA
Plus, with `--buffer-seeds`, the memory of the batched method's 1M-transition replay buffers for that many seeds.

Run from the repository root:
    python benchmarks/throughput.py                                    # S = 1 8 30 100, TD3, device auto
    python benchmarks/throughput.py --device cpu --seeds 1 8 --steps 20 --method ne
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import time
from functools import partial

import numpy as np
import torch
from cyclic_bench.protocols.cyclic_mujoco import _make_env, make_task
from seed_batching import PREFILL, WARMUP, device_name, env_step_all, make_players, prefill, sync, time_alternating

from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import get_method, load_all
from cyclic_bench.stream import ActionAdapter
from cyclic_bench.workers import ProcessPool

OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah-v5


def make_agents(method: str, seed_groups, hidden: list[int], device: torch.device, total_steps: int, buffer: int):
    method_cls, config_cls = get_method(method)
    config = config_cls(actor_hidden=list(hidden), critic_hidden=list(hidden), buffer_size=buffer)
    return [
        method_cls(config, MethodSpec(OBS_DIM, ACTION_DIM, "continuous", seeds, n_tasks=1, total_steps=total_steps, device=device))
        for seeds in seed_groups
    ]


def env_only(n_envs: int, steps: int, workers: int) -> dict[str, float]:
    """env-steps/s of random actions for each vector-env design, timed one after the other."""
    import gymnasium as gym

    task = make_task("HalfCheetah", 1000)
    seeds = list(range(n_envs))
    designs = {
        "in-process": lambda: task.make_pool(seeds),
        f"workers({workers})": lambda: ProcessPool(task.make_pool, seeds, workers),
        "AsyncVectorEnv": lambda: _AsyncGym(gym.vector.AsyncVectorEnv([partial(_make_env, "HalfCheetah-v5", 1000, {})] * n_envs)),
    }
    rng = np.random.default_rng(0)
    rates = {}
    for name, build in designs.items():
        pool = build()
        pool.reset(seeds)
        for _ in range(WARMUP):
            pool.step(rng.uniform(-1, 1, (n_envs, ACTION_DIM)).astype(np.float32))
        start = time.perf_counter()
        for _ in range(steps):
            pool.step(rng.uniform(-1, 1, (n_envs, ACTION_DIM)).astype(np.float32))
        rates[name] = n_envs * steps / (time.perf_counter() - start)
        pool.close()
    return rates


class _AsyncGym:
    """Gymnasium's AsyncVectorEnv behind the two calls the env-only timing makes."""

    def __init__(self, envs):
        self.envs = envs

    def reset(self, seeds):
        return self.envs.reset(seed=seeds)[0]

    def step(self, actions):
        return self.envs.step(actions)

    def close(self):
        self.envs.close()


def end_to_end(method: str, n_seeds: int, hidden: list[int], steps: int, device: torch.device, workers: int, loop: bool) -> dict:
    total = PREFILL + 2 * WARMUP + steps
    setups = {"batched": make_agents(method, [tuple(range(n_seeds))], hidden, device, total, total)}
    if loop:
        setups["loop"] = make_agents(method, [(k,) for k in range(n_seeds)], hidden, device, total, total)
    for agents in setups.values():
        prefill(agents, n_seeds, PREFILL)
    task = make_task("HalfCheetah", 1000)
    players = {name: make_players(agents, task) for name, agents in setups.items()}
    if workers:
        batched = setups["batched"][0]
        players["batched+workers"] = make_players([batched], _with_workers(task, workers))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_alternating({name: partial(env_step_all, group, ActionAdapter(task)) for name, group in players.items()}, steps, device)
    for group in players.values():
        for p in group:
            p.pool.close()
    rates = {name: n_seeds * steps / s for name, s in seconds.items()}
    if device.type == "cuda":
        rates["gpu_peak_GB"] = torch.cuda.max_memory_allocated(device) / 1e9
    return rates


def _with_workers(task, workers: int):
    from dataclasses import replace

    return replace(task, make_pool=lambda seeds: ProcessPool(task.make_pool, seeds, workers))


def buffer_memory(method: str, n_seeds: int, hidden: list[int], device: torch.device, buffer: int) -> float:
    """GB held by the batched method's tensors (networks, optimizer state, replay) with `buffer` transitions per seed."""
    agent = make_agents(method, [tuple(range(n_seeds))], hidden, device, buffer, buffer)[0]
    sync(device)
    tensors = [t for m in agent.modules().values() for t in m.state_dict().values()]
    tensors += [t for opt in agent.optimizers() for t in (*opt.exp_avg, *opt.exp_avg_sq)]
    tensors += list(agent.learner.replay.data.values())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = cuda if available")
    parser.add_argument("--method", default="td3", help="a registered learner or intervention (td3, sac, ne, ...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 30, 100], help="values of S to measure")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="actor and critic hidden sizes")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="environment worker processes")
    parser.add_argument("--loop-max", type=int, default=30, help="largest S for which the single-seed loop is timed")
    parser.add_argument("--buffer-seeds", type=int, default=0, help="report replay+network memory for this many seeds (0 = skip)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    load_all()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    print(f"device: {device_name(device)} | torch {torch.__version__} | method {args.method} | hidden {args.hidden} | steps {args.steps}")
    print(f"command: `python {shlex.join(sys.argv)}`\n")
    print("| S | env-only in-process | env-only workers | env-only AsyncVectorEnv | batched | batched+workers | loop | batched/loop |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n_seeds in args.seeds:
        env = env_only(n_seeds, args.steps, args.workers)
        e2e = end_to_end(args.method, n_seeds, args.hidden, args.steps, device, args.workers, loop=n_seeds <= args.loop_max)
        loop = e2e.get("loop")
        cells = [*env.values(), e2e["batched"], e2e.get("batched+workers", float("nan")), loop or float("nan")]
        ratio = f"{e2e['batched'] / loop:.2f}x" if loop else "n/a"
        gpu = f" (GPU peak {e2e['gpu_peak_GB']:.2f} GB)" if "gpu_peak_GB" in e2e else ""
        print(f"| {n_seeds} | " + " | ".join(f"{c:,.0f}" for c in cells) + f" | {ratio}{gpu} |", flush=True)
    print(f"\npeak host RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    if args.buffer_seeds:
        gb = buffer_memory(args.method, args.buffer_seeds, args.hidden, device, 1_000_000)
        print(f"{args.method} with {args.buffer_seeds} seeds and 1M-transition buffers: {gb:.2f} GB of tensors on {device.type}")


if __name__ == "__main__":
    main()
