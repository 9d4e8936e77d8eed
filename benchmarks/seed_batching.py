"""Seed batching: TD3 with S seeds as one batched computation vs a Python loop of S single-seed TD3 agents.

Measures, for each S, in the same run:
  update      seed-updates/s of TD3's gradient update alone (replay pre-filled with random transitions);
  end-to-end  seed-steps/s of act -> HalfCheetah-v5 step -> observe (one update per step), as the engine trains.
"batched" is one TD3 object with seed_ids=range(S); "loop" is S TD3 objects with seed_ids=(k,), stepped in turn.

Run from the repository root:
    python benchmarks/seed_batching.py                      # S = 1 8 30, device auto (CUDA if available)
    python benchmarks/seed_batching.py --device cpu --seeds 1 8 --steps 20 --json seed_batching.json

The figure that matters is the ratio batched/loop: both sides run on the same machine within seconds of each
other, so the ratio survives the load and clock changes of a shared, noisy machine better than raw rates do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
from cyclic_bench.protocols.cyclic_mujoco import make_task

from cyclic_bench.agent import Agent
from cyclic_bench.envs import EnvPool
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import get_method
from cyclic_bench.stream import ActionAdapter, Task

OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah-v5
PREFILL = 1000  # random transitions in each replay before timing (past TD3's batch size of 256)
WARMUP = 5  # untimed iterations before each timed block


@dataclass
class Row:
    seeds: int
    mode: str  # "update" (rates are seed-updates/s) or "end-to-end" (seed-steps/s)
    batched: float
    loop: float

    @property
    def ratio(self) -> float:
        return self.batched / self.loop


@dataclass
class Player:
    """One agent with its own environments (one per seed) and their current observations."""

    agent: Agent
    pool: EnvPool
    obs: np.ndarray


def make_agents(seed_groups: Sequence[tuple[int, ...]], hidden: list[int], device: torch.device, total_steps: int) -> list[Agent]:
    """One TD3 (`method=td3`) per group of seed ids: [range(S)] is the batched run, [(0,), (1,), ...] the loop."""
    TD3, TD3Config = get_method("td3")
    config = TD3Config(actor_hidden=list(hidden), critic_hidden=list(hidden))
    return [
        TD3(config, MethodSpec(OBS_DIM, ACTION_DIM, "continuous", seeds, n_tasks=1, total_steps=total_steps, device=device))
        for seeds in seed_groups
    ]


def prefill(agents: Sequence[Agent], n_seeds: int, n: int) -> None:
    """Store the same n random transitions per seed in every agent's replay (seed k gets row k)."""
    g = torch.Generator().manual_seed(0)
    obs, next_obs = torch.randn(n_seeds, n, OBS_DIM, generator=g), torch.randn(n_seeds, n, OBS_DIM, generator=g)
    action = torch.rand(n_seeds, n, ACTION_DIM, generator=g) * 2 - 1
    reward = torch.randn(n_seeds, n, generator=g)
    done = torch.zeros(n_seeds, n, dtype=torch.bool)
    for agent in agents:
        rows, device = list(agent.spec.seed_ids), agent.spec.device
        fields = [x[rows].to(device) for x in (obs, action, reward, next_obs, done)]
        agent.observe(Transition(*fields, truncated=fields[-1], learn=False))


def time_alternating(fns: dict[str, Callable[[], None]], steps: int, device: torch.device) -> dict[str, float]:
    """Seconds for `steps` calls of each fn, after WARMUP untimed calls; the calls alternate between the fns,
    so a change of load on the machine during the measurement slows all of them alike."""
    for _ in range(WARMUP):
        for fn in fns.values():
            fn()
    seconds = dict.fromkeys(fns, 0.0)
    for _ in range(steps):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            seconds[name] += time.perf_counter() - start
    return seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def update_all(agents: Sequence[Agent]) -> None:
    """One TD3 update of every agent, as `observe` runs it."""
    for agent in agents:
        agent.update()


def env_step_all(players: Sequence[Player], adapter: ActionAdapter) -> None:
    """One training step of every player: act, step its environments, observe (what Engine.train_step does)."""
    for p in players:
        S, device = p.agent.spec.n_seeds, p.agent.spec.device
        obs = seed_tensor(p.obs, S, device)
        action = p.agent.act(obs, explore=True)
        result = p.pool.step(adapter(action.reshape(S, ACTION_DIM).cpu().numpy()))
        p.agent.observe(
            Transition(
                obs=obs,
                action=action,
                reward=seed_tensor(result.reward, S, device),
                next_obs=seed_tensor(result.final_obs, S, device),
                terminated=seed_tensor(result.terminated, S, device, torch.bool),
                truncated=seed_tensor(result.truncated, S, device, torch.bool),
                learn=True,
            )
        )
        p.obs = result.obs


def seed_tensor(array: np.ndarray, n_seeds: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[S, ...] numpy (one environment per seed) -> [S, 1, ...] tensor on the device, as Engine.to_tensor."""
    return torch.as_tensor(array, device=device).to(dtype).view(n_seeds, 1, *array.shape[1:])


def make_players(agents: Sequence[Agent], task: Task) -> list[Player]:
    players = []
    for agent in agents:
        pool = task.make_pool(list(agent.spec.seed_ids))
        players.append(Player(agent, pool, pool.reset()))
    return players


def measure(n_seeds: int, hidden: list[int], steps: int, device: torch.device) -> list[Row]:
    """Both modes for S = n_seeds, batched against loop, each timed over `steps` iterations."""
    total_steps = PREFILL + WARMUP + steps  # replay capacity: room for everything end-to-end stores
    setups = {
        "batched": make_agents([tuple(range(n_seeds))], hidden, device, total_steps),
        "loop": make_agents([(k,) for k in range(n_seeds)], hidden, device, total_steps),
    }
    for agents in setups.values():
        prefill(agents, n_seeds, PREFILL)
    seconds = time_alternating({name: partial(update_all, agents) for name, agents in setups.items()}, steps, device)
    rows = [Row(n_seeds, "update", n_seeds * steps / seconds["batched"], n_seeds * steps / seconds["loop"])]

    task = make_task("HalfCheetah", 1000)
    players = {name: make_players(agents, task) for name, agents in setups.items()}
    adapter = ActionAdapter(task)
    seconds = time_alternating({name: partial(env_step_all, group, adapter) for name, group in players.items()}, steps, device)
    rows.append(Row(n_seeds, "end-to-end", n_seeds * steps / seconds["batched"], n_seeds * steps / seconds["loop"]))
    for p in [*players["batched"], *players["loop"]]:
        p.pool.close()
    return rows


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    return f"CPU {model or 'unknown'}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| S | mode | batched seed-steps/s | loop seed-steps/s | ratio |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {r.seeds} | {r.mode} | {r.batched:,.0f} | {r.loop:,.0f} | {r.ratio:.2f}x |" for r in rows]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = cuda if available")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 30], help="values of S to measure")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="actor and critic hidden sizes")
    parser.add_argument("--steps", type=int, default=100, help="timed updates / environment steps per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    command = "python " + shlex.join(sys.argv)
    header = f"device: {device_name(device)} | torch {torch.__version__} | hidden {args.hidden} | steps {args.steps} | command: `{command}`"
    print(header, flush=True)
    rows = []
    for n_seeds in args.seeds:
        rows += measure(n_seeds, args.hidden, args.steps, device)
        print(f"S={n_seeds} done", file=sys.stderr, flush=True)
    print("update rows: a seed-step is one seed's gradient update; end-to-end rows: one seed's act + env step + observe (+ update)")
    print(markdown(rows))
    if args.json:
        rows_json = [asdict(r) | {"ratio": r.ratio} for r in rows]
        report = {"command": command, "device": device_name(device), "torch": torch.__version__, "hidden": args.hidden, "steps": args.steps}
        with open(args.json, "w") as f:
            json.dump(report | {"rows": rows_json}, f, indent=2)


if __name__ == "__main__":
    main()
