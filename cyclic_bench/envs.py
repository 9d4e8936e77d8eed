"""Environment pools: N environments of one task stepped together, with auto-reset and exact state snapshots.

The engine lays environments out seed-major (seed 0's E envs, then seed 1's, ...). A pool resets an
environment as soon as its episode ends and hands back the true final observation separately.
Snapshots (`get_state` / `set_state`) make a resumed run continue bit-for-bit where the killed one stopped.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from cyclic_bench.errors import ConfigError


def mujoco_warning(message: str) -> None:
    if "settotalmass" not in message:  # mujoco>=3.17 says this of every Gymnasium XML; nothing to act on
        warnings.warn(f"MuJoCo: {message}", stacklevel=2)


mujoco.set_mju_user_warning(mujoco_warning)


@dataclass
class PoolStep:
    obs: np.ndarray  # [N, obs]: after auto-reset where an episode ended
    reward: np.ndarray  # [N]
    terminated: np.ndarray  # [N] bool
    truncated: np.ndarray  # [N] bool
    final_obs: np.ndarray  # [N, obs]: the last observation of each env's step (before any reset)
    info: dict[str, np.ndarray] = field(default_factory=dict)  # per-env training-time quantities (e.g. a bandit's regret)


class EnvPool(ABC):
    """N environments of one task."""

    n: int

    @abstractmethod
    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start a new episode in every environment (seeded with `seeds`, else the pool's own); obs [N, obs]."""

    @abstractmethod
    def step(self, actions: np.ndarray, which: np.ndarray | None = None, autoreset: bool = True) -> PoolStep:
        """Step the environments `which` (default all; others report zeros and are not stepped).

        With `autoreset`, an environment whose episode ended starts the next one at once (`obs` is the new one).
        """

    def get_state(self) -> list:
        """A snapshot: a list with one picklable entry per environment, in pool order."""
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot its environments")

    def set_state(self, state: list) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot restore its environments")

    def scale_dynamics(self, quantity: str, scale: float) -> None:
        """Multiply a physical quantity (body_mass, friction, gravity) of every environment by `scale`."""
        raise ConfigError(f"{type(self).__name__} environments cannot change their dynamics ({quantity})")

    def close(self) -> None:
        """Release the environments."""


class GymPool(EnvPool):
    """Gymnasium environments stepped in this process; snapshots are exact for MuJoCo environments."""

    def __init__(self, make_env: Callable[[], object], seeds: Sequence[int]):
        self.envs = [make_env() for _ in seeds]
        self.seeds = list(seeds)
        self.n = len(self.envs)
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape))

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        seeds = self.seeds if seeds is None else seeds
        return np.stack([env.reset(seed=int(seed))[0] for env, seed in zip(self.envs, seeds, strict=True)]).astype(np.float32)

    def step(self, actions: np.ndarray, which: np.ndarray | None = None, autoreset: bool = True) -> PoolStep:
        indices = range(self.n) if which is None else np.flatnonzero(which)
        out = PoolStep(
            obs=np.zeros((self.n, self.obs_dim), np.float32),
            reward=np.zeros(self.n, np.float32),
            terminated=np.zeros(self.n, bool),
            truncated=np.zeros(self.n, bool),
            final_obs=np.zeros((self.n, self.obs_dim), np.float32),
        )
        for i in indices:
            obs, reward, terminated, truncated, _ = self.envs[i].step(actions[i])
            out.final_obs[i], out.reward[i], out.terminated[i], out.truncated[i] = obs, reward, terminated, truncated
            out.obs[i] = self.envs[i].reset()[0] if autoreset and (terminated or truncated) else obs
        return out

    def get_state(self) -> list[dict]:
        states = []
        for env in self.envs:
            sim = env.unwrapped
            physics = np.empty(mujoco.mj_stateSize(sim.model, mujoco.mjtState.mjSTATE_INTEGRATION))
            mujoco.mj_getState(sim.model, sim.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
            states.append({"physics": physics, "rng": sim.np_random.bit_generator.state, "elapsed": _time_limit(env)._elapsed_steps})
        return states

    def set_state(self, states: list[dict]) -> None:
        for env, state in zip(self.envs, states, strict=True):
            sim = env.unwrapped
            mujoco.mj_setState(sim.model, sim.data, state["physics"], mujoco.mjtState.mjSTATE_INTEGRATION)
            mujoco.mj_forward(sim.model, sim.data)
            sim.np_random.bit_generator.state = state["rng"]
            _time_limit(env)._elapsed_steps = state["elapsed"]

    def scale_dynamics(self, quantity: str, scale: float) -> None:
        for env in self.envs:
            scale_model(env.unwrapped.model, quantity, scale)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def scale_model(model: mujoco.MjModel, quantity: str, scale: float) -> None:
    """Multiply every body's mass, every geom's sliding friction, or gravity of a MuJoCo model, in place."""
    if quantity == "body_mass":
        model.body_mass[:] *= scale
        model.body_inertia[:] *= scale  # same shape, heavier material: inertia scales with mass
    elif quantity == "friction":
        model.geom_friction[:, 0] *= scale
    elif quantity == "gravity":
        model.opt.gravity[:] *= scale
    else:
        raise ConfigError(f"dynamics quantity={quantity!r} is not allowed; allowed: body_mass, friction, gravity")


def _time_limit(env):
    """The TimeLimit wrapper inside a gymnasium.make() stack."""
    from gymnasium.wrappers import TimeLimit

    while not isinstance(env, TimeLimit):
        env = env.env
    return env
