"""DeepMind Control Suite tasks (Tassa et al. 2018, "DeepMind Control Suite", arXiv 1801.00690) as an EnvPool.

State-based: each observation dict is flattened in a fixed key order, the order the task declares its
observation spec (the order of dm_control's own `flat_observation`, and of dmc2gym), each value raveled, as
float32. The key order is read once per pool and every step is read by those keys, so it cannot drift.

Episodes are `episode_length` control steps of the simulator (1000 in the suite's benchmark). With an action
repeat of k, one pool step plays the action for k control steps and returns the summed reward, so an episode
is episode_length / k pool steps and returns stay on the suite's 0-1000 scale. dm_control's own time limit is
switched off and the pool counts steps itself: suite tasks never end an episode early, so episodes end by
truncation (a task that ends one with discount 0 reports a termination; lqr is the only such suite task).

Snapshots are exact: the MuJoCo integration state (positions, velocities, activations, controls, warm-start
accelerations, time), the model fields suite tasks randomise per episode (target and terrain placement), the
task's random state and the step counter.
"""

from __future__ import annotations

import ctypes.util
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import mujoco
import numpy as np

from cyclic_bench import envs
from cyclic_bench.envs import EnvPool, PoolStep
from cyclic_bench.errors import require

SUITE_EPISODE_LENGTH = 1000  # control steps per episode in the suite's benchmark (its time limits / control timesteps)
MODEL_FIELDS = ("body_pos", "geom_pos", "geom_size", "site_pos", "site_size", "dof_damping", "hfield_data")  # what suite tasks re-draw
SKYBOX_ASSET = "./common/skybox.xml"  # included by every suite domain
PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION  # everything the next mj_step reads, warm start included


def suite():
    """dm_control.suite, imported on first use (it loads a renderer and replaces MuJoCo's warning handler).

    Its renderer is chosen at that import: headless EGL (Mesa's on a CPU, the driver's on a GPU) where libEGL is
    installed and MUJOCO_GL does not name another, so pixel tasks render without a display.
    """
    if "MUJOCO_GL" not in os.environ and ctypes.util.find_library("EGL"):
        os.environ["MUJOCO_GL"] = "egl"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="glfw")  # no display: rendering is not used by state-based tasks
        from dm_control import suite as dm_suite
    mujoco.set_mju_user_warning(envs.mujoco_warning)  # keep the engine's filter (dm_control installs its own on import)
    return dm_suite


def split_task_name(name: str) -> tuple[str, str]:
    """'walker-walk' -> ('walker', 'walk'); refuses a domain or task dm_control does not have."""
    by_domain = suite().TASKS_BY_DOMAIN
    domain, dash, task = name.partition("-")
    require(dash == "-", f"task {name!r} is not of the form domain-task (e.g. walker-walk); domains: {', '.join(sorted(by_domain))}")
    require(domain in by_domain, f"task {name!r}: domain {domain!r} is not a dm_control domain; allowed: {', '.join(sorted(by_domain))}")
    require(
        task in by_domain[domain], f"task {name!r}: {task!r} is not a dm_control {domain} task; allowed: {', '.join(by_domain[domain])}"
    )
    return domain, task


def load(domain: str, task: str, seed: int, rendered: bool = False):
    """A dm_control environment without a time limit of its own (the pool counts steps), with a tiny skybox
    unless it is `rendered`.

    The suite's skybox is an 800x800 texture generated at compile time: 95% of the load time and 11.5 MB of
    each environment's memory. Only rendered images show it, so state-based tasks compile an 8x8 one.
    """
    dm_suite = suite()
    from dm_control.suite import common

    original = common.ASSETS[SKYBOX_ASSET]
    if not rendered:
        common.ASSETS[SKYBOX_ASSET] = original.replace(b'width="800" height="800"', b'width="8" height="8"')
    try:
        return dm_suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})
    finally:
        common.ASSETS[SKYBOX_ASSET] = original


def check_timing(action_repeat: int, episode_length: int) -> None:
    """Refuse an action repeat that is not a whole number of control steps per episode."""
    require(action_repeat >= 1, f"action_repeat={action_repeat} is not allowed: it must be an integer >= 1")
    require(episode_length > 0, f"episode_length={episode_length} is not allowed: it must be an integer > 0")
    require(
        episode_length % action_repeat == 0, f"action_repeat={action_repeat} is not allowed: it must divide episode_length={episode_length}"
    )


@dataclass(frozen=True)
class DMCSpec:
    observation_keys: tuple[str, ...]  # flattening order
    observation_sizes: tuple[int, ...]  # flat size of each key's value
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]

    @property
    def obs_dim(self) -> int:
        return sum(self.observation_sizes)

    @property
    def action_dim(self) -> int:
        return len(self.action_low)


@cache
def describe(domain: str, task: str) -> DMCSpec:
    """Observation layout and action bounds of a task, read from dm_control once per process."""
    env = load(domain, task, seed=0)
    observation, action = env.observation_spec(), env.action_spec()
    env.close()
    return DMCSpec(
        observation_keys=tuple(observation),
        observation_sizes=tuple(int(np.prod(spec.shape)) for spec in observation.values()),
        action_low=tuple(float(x) for x in action.minimum),
        action_high=tuple(float(x) for x in action.maximum),
    )


def flatten(observation: dict, keys: Sequence[str]) -> np.ndarray:
    """One flat float32 vector: each key's value raveled, in the order `keys`."""
    return np.concatenate([np.asarray(observation[key], dtype=np.float64).ravel() for key in keys]).astype(np.float32)


class DMCPool(EnvPool):
    """dm_control environments of one task stepped in this process, with action repeat and exact snapshots."""

    rendered: bool = False  # whether observations are rendered images (the full skybox is compiled then)

    def __init__(self, domain: str, task: str, seeds: Sequence[int], action_repeat: int = 1, episode_length: int = SUITE_EPISODE_LENGTH):
        check_timing(action_repeat, episode_length)
        self.spec = describe(domain, task)
        self.envs = [load(domain, task, int(seed), rendered=self.rendered) for seed in seeds]
        self.seeds = list(seeds)
        self.n = len(self.envs)
        self.action_repeat, self.episode_length = action_repeat, episode_length
        self.elapsed = np.zeros(self.n, dtype=np.int64)  # control steps into each env's episode

    def _reset_one(self, i: int, seed: int | None) -> np.ndarray:
        env = self.envs[i]
        if seed is not None:
            env.task.random.seed(int(seed))
        self.elapsed[i] = 0
        return self.observe(i, env.reset().observation, start=True)

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    def observe(self, i: int, observation: dict, start: bool) -> np.ndarray:
        """Environment i's observation after a reset (`start`) or a step: here its state vector."""
        return flatten(observation, self.spec.observation_keys)

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        seeds = self.seeds if seeds is None else seeds
        return np.stack([self._reset_one(i, seed) for i, seed in enumerate(seeds)])

    def step(self, actions: np.ndarray, which: np.ndarray | None = None, autoreset: bool = True) -> PoolStep:
        indices = range(self.n) if which is None else np.flatnonzero(which)
        obs_dim = self.obs_dim
        out = PoolStep(
            obs=np.zeros((self.n, obs_dim), np.float32),
            reward=np.zeros(self.n, np.float32),
            terminated=np.zeros(self.n, bool),
            truncated=np.zeros(self.n, bool),
            final_obs=np.zeros((self.n, obs_dim), np.float32),
        )
        for i in indices:
            reward = 0.0
            for _ in range(self.action_repeat):
                time_step = self.envs[i].step(actions[i])
                reward += time_step.reward
                self.elapsed[i] += 1
                if time_step.last():  # the task ended the episode (dm_control's time limit is off)
                    break
            terminated = time_step.last() and time_step.discount == 0.0
            truncated = not terminated and (time_step.last() or self.elapsed[i] >= self.episode_length)
            obs = self.observe(i, time_step.observation, start=False)
            out.final_obs[i], out.reward[i], out.terminated[i], out.truncated[i] = obs, reward, terminated, truncated
            out.obs[i] = self._reset_one(i, None) if autoreset and (terminated or truncated) else obs
        return out

    def get_state(self) -> list[dict]:
        states = []
        for env, elapsed in zip(self.envs, self.elapsed, strict=True):
            physics = env.physics
            states.append(
                {
                    "physics": physics.get_state(PHYSICS_STATE),
                    "model": {field: getattr(physics.model, field).copy() for field in MODEL_FIELDS},
                    "rng": env.task.random.get_state(),
                    "elapsed": int(elapsed),
                }
            )
        return states

    def set_state(self, states: list[dict]) -> None:
        """Restore snapshots from `get_state` into environments that have been reset."""
        for i, (env, state) in enumerate(zip(self.envs, states, strict=True)):
            physics = env.physics
            for field in MODEL_FIELDS:
                getattr(physics.model, field)[...] = state["model"][field]
            physics.set_state(state["physics"], PHYSICS_STATE)
            physics.forward()  # derived quantities (positions, contacts, sensors) of the restored state
            env.task.random.set_state(state["rng"])
            self.elapsed[i] = state["elapsed"]

    def close(self) -> None:
        for env in self.envs:
            env.close()
