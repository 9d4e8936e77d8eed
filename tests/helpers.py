"""Shared test helpers: a tiny in-memory task whose environments are cheap, exact and snapshot-able, and small settings."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.envs import EnvPool, PoolStep
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.run import train
from cyclic_bench.stream import Stream, Task
from cyclic_bench.trainer import Engine


class ToyPool(EnvPool):
    """Each env's state is a position; obs = [position, seed-dependent offset, 0, ...]; reward = action[0] - |position|.

    Episodes end by time limit after `episode_length` steps, and terminate when |position| > 5.
    """

    def __init__(self, seeds: Sequence[int], obs_dim: int, action_dim: int, episode_length: int):
        self.n, self.seeds = len(seeds), list(seeds)
        self.obs_dim, self.action_dim, self.episode_length = obs_dim, action_dim, episode_length
        self.position = np.zeros(self.n)
        self.offset = np.zeros(self.n)
        self.t = np.zeros(self.n, int)
        self.rng = np.random.default_rng(0)

    def _obs(self) -> np.ndarray:
        obs = np.zeros((self.n, self.obs_dim), np.float32)
        obs[:, 0], obs[:, 1 % self.obs_dim] = self.position, self.offset
        return obs

    def reset(self, seeds=None) -> np.ndarray:
        seeds = self.seeds if seeds is None else seeds
        self.offset = np.array([np.random.default_rng(s).uniform(-1, 1) for s in seeds])
        self.position = self.offset.copy()
        self.t[:] = 0
        return self._obs()

    def step(self, actions, which=None, autoreset=True) -> PoolStep:
        assert actions.shape == (self.n, self.action_dim), actions.shape
        on = np.ones(self.n, bool) if which is None else which
        self.position = np.where(on, self.position + 0.1 * actions[:, 0], self.position)
        self.t += on
        reward = np.where(on, actions[:, 0] - np.abs(self.position), 0.0).astype(np.float32)
        terminated = on & (np.abs(self.position) > 5)
        truncated = on & ~terminated & (self.t >= self.episode_length)
        final = self._obs()
        done = terminated | truncated
        if autoreset and done.any():
            self.position = np.where(done, self.offset, self.position)
            self.t = np.where(done, 0, self.t)
        return PoolStep(self._obs(), reward, terminated, truncated, final)

    def get_state(self):
        return [{"position": p, "offset": o, "t": t} for p, o, t in zip(self.position, self.offset, self.t, strict=True)]

    def set_state(self, state) -> None:
        self.position, self.offset, self.t = (np.array([entry[key] for entry in state]) for key in ("position", "offset", "t"))


def toy_task(name: str = "toy", obs_dim: int = 3, action_dim: int = 2, episode_length: int = 7) -> Task:
    return Task(
        name=name,
        obs_dim=obs_dim,
        action_dim=action_dim,
        make_pool=lambda seeds: ToyPool(seeds, obs_dim, action_dim, episode_length),
        random_return=0.0,
        reference_return=10.0,
        reference_source="test",
    )


def toy_stream(**overrides) -> Stream:
    settings = dict(
        name="toy",
        tasks=(toy_task("a", 3, 2), toy_task("b", 5, 1)),
        steps_per_task=20,
        cycles=2,
        eval_every=10,
        eval_episodes=2,
        warmup_steps=5,
    )
    settings.update(overrides)
    return Stream(**settings)


def spec_for(stream: Stream, seed_ids: Sequence[int] = (0, 1, 2)) -> MethodSpec:
    return MethodSpec(
        stream.obs_dim,
        stream.action_dim,
        stream.action_kind,
        tuple(seed_ids),
        len(stream.tasks),
        stream.total_steps,
        torch.device("cpu"),
        stream.generation_steps,
        obs_shape=stream.obs_shape,
    )


SMALL = dict(actor_hidden=[32, 32], critic_hidden=[32, 32], batch_size=16)  # TD3-family settings for fast tests


def transitions(n_seeds: int, count: int, seed: int = 0):
    """Random transitions [S, 1, ...] with obs size 4 and action size 2."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield Transition(
            obs=torch.randn(n_seeds, 1, 4, generator=g),
            action=torch.rand(n_seeds, 1, 2, generator=g) * 2 - 1,
            reward=torch.randn(n_seeds, 1, generator=g),
            next_obs=torch.randn(n_seeds, 1, 4, generator=g),
            terminated=torch.rand(n_seeds, 1, generator=g) < 0.05,
            truncated=torch.zeros(n_seeds, 1, dtype=torch.bool),
            learn=True,
        )


class Recorder(Method):
    """Acts with zeros and records every call the engine makes."""

    def __init__(self, config, spec: MethodSpec, envs_per_seed: int = 1):
        super().__init__(config, spec)
        self.envs_per_seed = envs_per_seed
        self.transitions: list[Transition] = []
        self.task_starts: list[tuple[int, int]] = []  # (transitions seen, task index)
        self.act_calls: list[tuple[tuple[int, ...], bool]] = []

    def act(self, obs, explore):
        self.act_calls.append((tuple(obs.shape), explore))
        return torch.zeros(*obs.shape[:2], self.spec.action_dim)

    def observe(self, transition):
        self.transitions.append(transition)

    def on_task_start(self, task_index):
        self.task_starts.append((len(self.transitions), task_index))

    def modules(self):
        return {}


def same_state(a, b) -> bool:
    """Equal in type and value, NaN equal to NaN, recursively (tensors, numpy arrays, containers, numbers)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(0.5), b.nan_to_num(0.5))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def inverted_pendulum_returns(method: str, folder: Path) -> tuple[float, float]:
    """Mean return of 2 seeds of `method` (64-unit networks, for CPU speed) on InvertedPendulum at step 0 and after
    8k training steps (5 evaluation episodes each); a random policy returns about 9.1."""
    settings = ["method.actor_hidden=[64,64]", "method.critic_hidden=[64,64]", "protocol.tasks=[InvertedPendulum]"]
    settings += ["protocol.steps_per_task=8000", "protocol.cycles=1", "protocol.eval_every=4000", "protocol.eval_episodes=5"]
    settings += ["protocol.warmup_steps=1000", "protocol.max_episode_steps=1000", "seeds=2", "progress=false"]
    train(compose_config([f"method={method}", *settings]), folder)
    with open(folder / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    first, final = ([float(r["return"]) for r in rows if r["step"] == step] for step in ("0", "8000"))
    return float(np.mean(first)), float(np.mean(final))


class Killed(Exception):
    """What `run_killed_at` raises inside the engine: a kill at a chosen step."""


def run_killed_at(step: int, run: Callable[[], object], monkeypatch) -> None:
    """Call `run`, which trains through the engine, and kill it on reaching training step `step` (nothing after that
    step runs, as when the process is killed there); the engine is whole again afterwards."""
    original = Engine.train_step

    def dies(self, task_index):
        if self.step == step:
            raise Killed
        original(self, task_index)

    monkeypatch.setattr(Engine, "train_step", dies)
    with pytest.raises(Killed):
        run()
    monkeypatch.setattr(Engine, "train_step", original)


def assert_same_rows(resumed: Path, whole: Path, tables: Sequence[str] = ("evaluations.csv", "diagnostics.csv")) -> None:
    for table in tables:
        with open(resumed / table) as a, open(whole / table) as b:
            assert list(csv.DictReader(a)) == list(csv.DictReader(b)), table
