"""Non-stationary bandit: Gaussian arms whose context switches on a schedule (Lee, Liebana Garcia, Clopath & Dabney
2024, "Lifelong Reinforcement Learning via Neuromodulation", arXiv 2408.08446; the first author's public bandit code).

One task, `bandit`, trained once (cycles = 1) and never terminated. Each environment (one per seed) draws its own
instance from its environment seed: `n_contexts` contexts, each giving every one of `n_arms` arms a mean
U(mean_range) and a standard deviation U(std_range); a pull of arm a in context c pays N(mean[c, a], std[c, a]^2).
The stream is `blocks` blocks of `switch_every` steps. At the start of every block after the first the context
changes with probability `switch_probability`; a change moves to the next context of the instance (c -> c + 1,
wrapping after the last). With blocks <= n_contexts (every preset) each change therefore brings arms never seen
before, as in the public code, which draws fresh arms at each change; longer streams revisit earlier contexts.
Methods are not told of a change (it is a hidden context).

Observations are a constant zero vector of size 1: a bandit has no state, and methods learn from the rewards
they observe. Actions are arm indices (discrete). Per step the pool reports, per environment:
  regret               best mean of the context minus the chosen arm's mean
  regret_after_switch  the regret if the step lies within the first `after_switch_steps` steps after a context
                       change (the very first context is not a change), else 0
  context_change       1 on the first step of a new context, else 0 (so regret per switch = sum / count)
  oracle, chosen, uniform   best mean, the chosen arm's mean, the mean over arms
The engine averages them per seed over each evaluation window (online.csv). The stream has no evaluation
episodes: each window is scored as (chosen - uniform) / (oracle - uniform), 1 for always playing the best arm and
0 in expectation for uniformly random arms; `return` is the mean reward per step.

Random numbers are counter-based (a hash of environment seed, purpose and index, as cyclic_bench.rng does), so an
environment's arms, switch draws and reward noise depend only on its own seed and step count: snapshots are three
integers per environment and exact.

Public config (size `full`): 5 arms, means U(-5, 5), stds U(0.001, 2), 16 blocks of 500 steps, switch probability
0.4, 100 seeds (run with seeds=100). `after_switch_steps` defaults to 100 (a fifth of a block: the adaptation phase
where the paper's methods differ most); it is this suite's choice, not the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cyclic_bench.envs import EnvPool, PoolStep
from cyclic_bench.errors import require
from cyclic_bench.registry import register_protocol, resolve_size
from cyclic_bench.stream import Stream, Task

PAPER = "Lee, Liebana Garcia, Clopath & Dabney 2024 (arXiv 2408.08446), public bandit config"

SIZES = {
    # a second on a CPU: for tests
    "smoke": dict(
        n_arms=5,
        n_contexts=4,
        blocks=4,
        switch_every=25,
        switch_probability=0.4,
        eval_every=25,
        after_switch_steps=5,
        mean_range=[-5.0, 5.0],
        std_range=[0.001, 2.0],
    ),
    # a quarter of the public stream
    "lite": dict(
        n_arms=5,
        n_contexts=16,
        blocks=4,
        switch_every=500,
        switch_probability=0.4,
        eval_every=500,
        after_switch_steps=100,
        mean_range=[-5.0, 5.0],
        std_range=[0.001, 2.0],
    ),
    # the public config (run it with seeds=100)
    "full": dict(
        n_arms=5,
        n_contexts=16,
        blocks=16,
        switch_every=500,
        switch_probability=0.4,
        eval_every=500,
        after_switch_steps=100,
        mean_range=[-5.0, 5.0],
        std_range=[0.001, 2.0],
    ),
}


@dataclass
class BanditConfig:
    name: str = "bandit"  # protocol family
    size: str = "full"  # smoke | lite | full: the presets below; any field set here overrides its preset
    n_arms: int | None = None  # arms (discrete actions), >= 2
    n_contexts: int | None = None  # distinct arm sets drawn per environment; a change moves to the next one
    blocks: int | None = None  # blocks of switch_every steps: the stream is blocks * switch_every steps
    switch_every: int | None = None  # steps per block; a change can happen only at block starts
    switch_probability: float | None = None  # probability that a block after the first starts a new context
    eval_every: int | None = None  # steps per seed per scoring window (online.csv row, evaluation row)
    after_switch_steps: int | None = None  # steps after a context change that count for regret_after_switch
    mean_range: list[float] | None = None  # arm means are U(low, high)
    std_range: list[float] | None = None  # arm reward standard deviations are U(low, high), low > 0


# ---- counter-based random numbers (numpy, uint32 lowbias32 as in cyclic_bench.rng) ---------------------------
_GOLDEN = 0x9E3779B9
ARM_MEANS, ARM_STDS, SWITCH, NOISE_U1, NOISE_U2 = 1, 2, 3, 4, 5  # purposes of draws


def _hash32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint32).copy()
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def env_keys(seeds: Sequence[int]) -> np.ndarray:
    """One 32-bit key per environment seed."""
    return _hash32(np.asarray([int(s) & 0xFFFFFFFF for s in seeds], dtype=np.uint32))


def uniform(keys: np.ndarray, purpose: int, index: np.ndarray) -> np.ndarray:
    """U(0, 1) draws, never 0, one per (key, index); `index` broadcasts against keys [N] (e.g. [N] or [N, 1, M])."""
    key = _hash32(keys ^ _hash32(np.uint32((purpose * _GOLDEN) & 0xFFFFFFFF)))
    index = np.asarray(index, dtype=np.int64) & 0xFFFFFFFF
    key = key.reshape(key.shape + (1,) * (np.ndim(index) - 1))
    bits = _hash32(_hash32(key ^ _hash32(index.astype(np.uint32))))
    return ((bits >> np.uint32(8)).astype(np.float64) + 0.5) * (1.0 / (1 << 24))


def switch_schedule(seed: int, blocks: int, probability: float) -> list[int]:
    """The blocks (1..blocks-1) at whose start the context of the environment with `seed` changes."""
    draws = uniform(env_keys([seed]), SWITCH, np.arange(blocks)[None, :])[0]
    return [b for b in range(1, blocks) if draws[b] < probability]


# ---- the environments -----------------------------------------------------------------------------------------
class BanditPool(EnvPool):
    """N independent non-stationary Gaussian bandits, one per seed; never terminates."""

    def __init__(self, seeds: Sequence[int], settings: dict):
        self.n, self.seeds = len(seeds), list(seeds)
        self.n_arms, self.n_contexts = settings["n_arms"], settings["n_contexts"]
        self.switch_every, self.switch_probability = settings["switch_every"], settings["switch_probability"]
        self.after_switch_steps = settings["after_switch_steps"]
        self.mean_range, self.std_range = tuple(settings["mean_range"]), tuple(settings["std_range"])
        self.reset()

    def _draw_instances(self, seeds: Sequence[int]) -> None:
        self.keys = env_keys(seeds)
        cells = np.arange(self.n_contexts * self.n_arms).reshape(1, self.n_contexts, self.n_arms)
        (mean_low, mean_high), (std_low, std_high) = self.mean_range, self.std_range
        self.means = mean_low + (mean_high - mean_low) * uniform(self.keys, ARM_MEANS, cells)  # [N, contexts, arms]
        self.stds = std_low + (std_high - std_low) * uniform(self.keys, ARM_STDS, cells)

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        self._draw_instances(self.seeds if seeds is None else seeds)
        self.t = np.zeros(self.n, np.int64)  # steps taken
        self.context = np.zeros(self.n, np.int64)  # the context of each environment's next step
        self.last_change = np.full(self.n, -1, np.int64)  # step at which the current context began (-1: the first one)
        return np.zeros((self.n, 1), np.float32)

    def arm_means(self) -> np.ndarray:
        """[N, arms]: the means of the arms the next step pays from."""
        return self.means[np.arange(self.n), self.context]

    def step(self, actions: np.ndarray, which: np.ndarray | None = None, autoreset: bool = True) -> PoolStep:
        on = np.ones(self.n, bool) if which is None else np.asarray(which, bool)
        arms = np.asarray(actions, dtype=np.int64).reshape(self.n)
        require(bool(((arms >= 0) & (arms < self.n_arms))[on].all()), f"an arm index is outside 0..{self.n_arms - 1}")
        arms = np.where(on, arms, 0)
        rows = np.arange(self.n)
        means = self.arm_means()
        chosen = means[rows, arms]
        u1, u2 = uniform(self.keys, NOISE_U1, self.t), uniform(self.keys, NOISE_U2, self.t)
        noise = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)  # Box-Muller
        reward = chosen + self.stds[rows, self.context, arms] * noise
        regret = means.max(axis=1) - chosen
        changed = self.last_change >= 0
        after_switch = changed & (self.t - self.last_change < self.after_switch_steps)
        info = {
            "regret": regret,
            "regret_after_switch": np.where(after_switch, regret, 0.0),
            "context_change": (changed & (self.t == self.last_change)).astype(np.float64),
            "oracle": means.max(axis=1),
            "chosen": chosen,
            "uniform": means.mean(axis=1),
        }
        self.t = np.where(on, self.t + 1, self.t)
        self._maybe_switch(on)
        zeros = np.zeros(self.n, bool)
        obs = np.zeros((self.n, 1), np.float32)
        return PoolStep(
            obs=obs,
            reward=np.where(on, reward, 0.0).astype(np.float32),
            terminated=zeros,
            truncated=zeros.copy(),
            final_obs=obs.copy(),
            info={name: np.where(on, value, 0.0) for name, value in info.items()},
        )

    def _maybe_switch(self, stepped: np.ndarray) -> None:
        """Environments that just finished a block start the next one in a new context with the switch probability."""
        at_block_start = stepped & (self.t % self.switch_every == 0)
        if not at_block_start.any():
            return
        draws = uniform(self.keys, SWITCH, self.t // self.switch_every)
        change = at_block_start & (draws < self.switch_probability)
        self.context = np.where(change, (self.context + 1) % self.n_contexts, self.context)
        self.last_change = np.where(change, self.t, self.last_change)

    def get_state(self) -> dict:
        return {"t": self.t.copy(), "context": self.context.copy(), "last_change": self.last_change.copy(), "keys": self.keys.copy()}

    def set_state(self, state: dict) -> None:
        require(np.array_equal(state["keys"], self.keys), "the bandit snapshot belongs to other environment seeds")
        self.t, self.context, self.last_change = state["t"].copy(), state["context"].copy(), state["last_change"].copy()


def online_score(means: dict[str, np.ndarray]) -> np.ndarray:
    """Per seed: (chosen - uniform) / (oracle - uniform) over the window; 1 = always the best arm, 0 = random arms."""
    return (means["chosen"] - means["uniform"]) / (means["oracle"] - means["uniform"])


# ---- the protocol ---------------------------------------------------------------------------------------------
def resolve(config: BanditConfig) -> dict:
    """The preset of `config.size`, with every field the config sets overriding it, validated."""
    s = resolve_size(config, SIZES)
    require(s["n_arms"] >= 2, f"n_arms={s['n_arms']} is not allowed: a bandit needs at least 2 arms")
    for field in ("n_contexts", "blocks", "switch_every", "eval_every"):
        require(s[field] >= 1, f"{field}={s[field]} is not allowed: it must be an integer >= 1")
    p = s["switch_probability"]
    require(0.0 <= p <= 1.0, f"switch_probability={p} is not allowed: it must lie in [0, 1]")
    after = s["after_switch_steps"]
    require(
        1 <= after <= s["switch_every"], f"after_switch_steps={after} is not allowed: it must lie in 1..switch_every={s['switch_every']}"
    )
    for field in ("mean_range", "std_range"):
        bounds = list(s[field])
        require(len(bounds) == 2 and bounds[0] < bounds[1], f"{field}={bounds} is not allowed: give [low, high] with low < high")
    require(s["std_range"][0] > 0, f"std_range={list(s['std_range'])} is not allowed: standard deviations must be > 0")
    return s


def make_task(settings: dict) -> Task:
    (mean_low, mean_high), n = settings["mean_range"], settings["n_arms"]
    return Task(
        name="bandit",
        obs_dim=1,
        action_dim=n,
        make_pool=lambda seeds: BanditPool(seeds, settings),
        random_return=(mean_low + mean_high) / 2,  # expected reward of a uniformly random arm
        reference_return=mean_low + (mean_high - mean_low) * n / (n + 1),  # expected best of n uniform means
        reference_source="the oracle arm (every step on the best arm of the context)",  # what online_score's 1 is
        random_source="a uniformly random arm (the mean of the context's arm means)",  # what online_score's 0 is
        action_kind="discrete",
        online_score=online_score,
    )


@register_protocol("bandit", BanditConfig)
def build(config: BanditConfig) -> Stream:
    s = resolve(config)
    return Stream(
        name=f"bandit-{config.size}",
        tasks=(make_task(s),),
        steps_per_task=s["blocks"] * s["switch_every"],
        cycles=1,
        eval_every=s["eval_every"],
        eval_episodes=0,
        warmup_steps=0,
    )
