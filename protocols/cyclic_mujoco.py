"""Cyclic MuJoCo: Gymnasium v5 locomotion tasks visited in turn, each for a fixed budget of steps, for several cycles.

The bodies differ (observation sizes 11 to 27, action sizes 3 to 8), so one agent plays them all through the
stream's adapters. Ant drops its contact forces from the observation (27 dims), as most TD3 work does.

Normalised score = (return - random) / (reference - random), both at the episode length played
(`max_episode_steps`; see cyclic_bench/normalization.py):
- `random`: mean return of uniformly random actions, measured by the suite at each length a size plays
  (RANDOM_RETURNS; 100 episodes each) with
  `cyclic-bench random-returns protocol.size=SIZE 'protocol.tasks=[HalfCheetah,Hopper,Walker2d,Ant,InvertedPendulum]' episodes=100`
  for SIZE = smoke (50 steps), demo (200) and full (1000); other lengths are interpolated between these.
- `reference`: TD3's average return after 1M steps, Fujimoto et al. 2018, Table 1 (MuJoCo -v1 tasks, 1000-step
  episodes), scaled to the length played at the same per-step rate; InvertedPendulum's maximum return is 1 per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from cyclic_bench.envs import GymPool
from cyclic_bench.errors import require
from cyclic_bench.normalization import random_return_at, scaled_reference
from cyclic_bench.registry import register_protocol, resolve_size
from cyclic_bench.stream import Stream, Task

TD3_PAPER = "Fujimoto et al. 2018 (TD3), Table 1, 1M steps"


@dataclass(frozen=True)
class MujocoTask:
    env_id: str
    obs_dim: int
    action_dim: int
    reference_return: float  # over a 1000-step episode
    reference_source: str
    kwargs: tuple = ()


TASKS = {
    "HalfCheetah": MujocoTask("HalfCheetah-v5", 17, 6, 9636.95, TD3_PAPER),
    "Hopper": MujocoTask("Hopper-v5", 11, 3, 3564.07, TD3_PAPER),
    "Walker2d": MujocoTask("Walker2d-v5", 17, 6, 4682.82, TD3_PAPER),
    "Ant": MujocoTask("Ant-v5", 27, 8, 4372.44, TD3_PAPER, (("include_cfrc_ext_in_observation", False),)),
    "InvertedPendulum": MujocoTask("InvertedPendulum-v5", 4, 1, 1000.0, "maximum return (1 per step alive)"),
}

# Random-policy return per episode length: (mean, standard error, episodes), measured as the module docstring says
# (50 and 200 steps on 2026-12-01, 1000 steps on 2026-11-23).
RANDOM_RETURNS = {
    "HalfCheetah": {50: (-13.0, 1.4, 100), 200: (-56.9, 3.4, 100), 1000: (-284.2, 8.5, 100)},
    "Hopper": {50: (16.7, 1.4, 100), 200: (16.9, 1.6, 100), 1000: (17.1, 2.0, 100)},
    "Walker2d": {50: (2.4, 0.6, 100), 200: (1.8, 0.6, 100), 1000: (1.7, 0.6, 100)},
    "Ant": {50: (-12.3, 1.6, 100), 200: (-30.8, 3.4, 100), 1000: (-45.1, 8.7, 100)},
    "InvertedPendulum": {50: (10.2, 0.5, 100), 200: (9.8, 0.6, 100), 1000: (9.1, 0.5, 100)},
}

SIZES = {
    # seconds on a CPU: for tests; two bodies of different sizes so the adapters are exercised
    "smoke": dict(
        tasks=["Hopper", "HalfCheetah"],
        steps_per_task=200,
        cycles=2,
        eval_every=100,
        eval_episodes=1,
        warmup_steps=100,
        max_episode_steps=50,
    ),
    # the README's quick start: about 5 minutes on 2 CPU cores with 64-unit networks and 3 seeds per method; two tasks
    # TD3 learns within a few thousand steps (Hopper to stay up, InvertedPendulum to balance), so scores rise above 0
    "demo": dict(
        tasks=["Hopper", "InvertedPendulum"],
        steps_per_task=6000,
        cycles=1,
        eval_every=1500,
        eval_episodes=2,
        warmup_steps=1000,
        max_episode_steps=200,
    ),
    # quick leaderboards: 200k steps per seed; 30 seeds in about 10 minutes on one H100 at the speed targets
    "lite": dict(
        tasks=["HalfCheetah", "Hopper", "Walker2d", "Ant"],
        steps_per_task=25_000,
        cycles=2,
        eval_every=12_500,
        eval_episodes=3,
        warmup_steps=5_000,
        max_episode_steps=1000,
    ),
    # near the published budgets: 1M steps per task visit
    "full": dict(
        tasks=["HalfCheetah", "Hopper", "Walker2d", "Ant"],
        steps_per_task=1_000_000,
        cycles=2,
        eval_every=50_000,
        eval_episodes=10,
        warmup_steps=25_000,
        max_episode_steps=1000,
    ),
}


@dataclass
class CyclicMujocoConfig:
    name: str = "cyclic_mujoco"  # protocol family
    size: str = "demo"  # smoke | demo | lite | full: the presets below; any field set here overrides its preset
    tasks: list[str] | None = None  # task names in stream order (keys of TASKS)
    steps_per_task: int | None = None  # environment steps per seed on each task visit
    cycles: int | None = None  # passes over the task list
    eval_every: int | None = None  # environment steps per seed between evaluations
    eval_episodes: int | None = None  # deterministic episodes per seed and task at each evaluation
    warmup_steps: int | None = None  # random-action steps at the start of the stream
    max_episode_steps: int | None = None  # episode length limit
    task_aware: bool = False  # append a one-hot task id to observations
    boundaries_visible: bool = True  # tell methods when the task switches


def make_task(name: str, max_episode_steps: int) -> Task:
    require(name in TASKS, f"task {name!r} is not a cyclic_mujoco task; allowed: {', '.join(TASKS)}")
    spec = TASKS[name]
    make_env = partial(_make_env, spec.env_id, max_episode_steps, dict(spec.kwargs))
    random_return, random_source = random_return_at(RANDOM_RETURNS[name], max_episode_steps)
    return Task(
        name=name,
        obs_dim=spec.obs_dim,
        action_dim=spec.action_dim,
        make_pool=lambda seeds: GymPool(make_env, seeds),
        random_return=random_return,
        reference_return=scaled_reference(spec.reference_return, max_episode_steps),
        reference_source=f"{spec.reference_source}, at its per-step rate over {max_episode_steps} steps",
        random_source=random_source,
    )


def _make_env(env_id: str, max_episode_steps: int, kwargs: dict):
    import gymnasium as gym

    return gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)


@register_protocol("cyclic_mujoco", CyclicMujocoConfig)
def build(config: CyclicMujocoConfig) -> Stream:
    s = resolve_size(config, SIZES)
    require(s["max_episode_steps"] > 0, f"max_episode_steps={s['max_episode_steps']} is not allowed: it must be > 0")
    return Stream(
        name=f"cyclic_mujoco-{config.size}",
        tasks=tuple(make_task(name, s["max_episode_steps"]) for name in s["tasks"]),
        steps_per_task=s["steps_per_task"],
        cycles=s["cycles"],
        eval_every=s["eval_every"],
        eval_episodes=s["eval_episodes"],
        warmup_steps=s["warmup_steps"],
        task_aware=config.task_aware,
        boundaries_visible=config.boundaries_visible,
    )
