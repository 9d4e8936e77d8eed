"""Tasks, step-budgeted cyclic streams, and the adapters that let one agent play every task of a stream.

A stream is an ordered list of tasks, a budget of environment steps per seed for each task visit, and a number
of cycles. All seeds switch task at the same step, and an episode running at a switch is truncated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cyclic_bench.envs import EnvPool
from cyclic_bench.errors import require
from cyclic_bench.events import Event

ACTION_KINDS = ("continuous", "discrete")


@dataclass(frozen=True)
class Task:
    """One task of a stream, with how to build its environments and how to normalise its returns."""

    name: str
    obs_dim: int
    action_dim: int  # continuous: action size; discrete: number of actions
    make_pool: Callable[[Sequence[int]], EnvPool]  # one environment per given seed
    random_return: float  # mean episode return of uniformly random actions (measured by the suite)
    reference_return: float  # a strong published return, the score's 1.0
    reference_source: str  # where reference_return comes from
    action_kind: str = "continuous"
    action_low: tuple[float, ...] | None = None  # continuous bounds; None means [-1, 1] in every dimension
    action_high: tuple[float, ...] | None = None
    online_score: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None  # score from training-window means (bandits)
    random_source: str = "uniform random actions, measured by the suite"  # how random_return was obtained (the score's 0)
    obs_shape: tuple[int, ...] | None = None  # image observations: (channels, height, width), flattened into obs_dim; None: a vector

    def normalize(self, episode_return: np.ndarray | float) -> np.ndarray | float:
        """0 for the random policy, 1 for the reference return."""
        return (episode_return - self.random_return) / (self.reference_return - self.random_return)


@dataclass(frozen=True)
class Stream:
    """A cyclic, step-budgeted sequence of tasks and how it is evaluated."""

    name: str
    tasks: tuple[Task, ...]
    steps_per_task: int  # environment steps per seed on each task visit
    cycles: int
    eval_every: int  # environment steps per seed between evaluations (a multiple of envs per seed)
    eval_episodes: int  # deterministic episodes per seed on every task at each evaluation; 0 = score the training window
    warmup_steps: int = 0  # random-action steps at the very start of the stream (methods that use them)
    task_aware: bool = False  # append a one-hot task id to observations
    boundaries_visible: bool = True  # methods get on_task_start() at switches
    held_out: tuple[Task, ...] = ()  # evaluated at every evaluation but never trained (zero-shot generalisation)
    events: tuple[Event, ...] = ()  # perturbations at given steps (cyclic_bench.events)
    generation_steps: int | None = None  # steps per member that score it once on every training task (ES), if the protocol has them

    def __post_init__(self):
        require(len(self.tasks) > 0, f"stream {self.name!r} has no tasks; give at least one")
        for field in ("steps_per_task", "cycles", "eval_every"):
            value = getattr(self, field)
            require(isinstance(value, int) and value > 0, f"{field}={value} is not allowed: it must be an integer > 0")
        require(
            self.eval_episodes > 0 or all(t.online_score for t in self.tasks),
            f"eval_episodes={self.eval_episodes} is not allowed: it must be > 0 unless every task scores its training window",
        )
        require(
            self.generation_steps is None or self.generation_steps > 0,
            f"generation_steps={self.generation_steps} is not allowed: it must be > 0 (or None: no ES window)",
        )
        for event in self.events:
            require(0 < event.step < self.total_steps, f"event step={event.step} is outside the stream's 1..{self.total_steps - 1}")
        require(
            self.steps_per_task % self.eval_every == 0,
            f"eval_every={self.eval_every} is not allowed: it must divide steps_per_task={self.steps_per_task}, "
            "so that an evaluation closes every task visit",
        )
        require(self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps} is not allowed: it must be >= 0")
        names = [task.name for task in self.eval_tasks]
        require(len(set(names)) == len(names), f"stream {self.name!r} names a task twice: {names}")
        shapes = {task.obs_shape for task in self.eval_tasks}
        require(len(shapes) == 1, f"stream {self.name!r} mixes observation shapes {sorted(map(str, shapes))}; give its tasks one")
        require(
            self.obs_shape is None or not self.task_aware,
            f"stream {self.name!r}: task_aware is not allowed with image observations (a one-hot cannot join an image)",
        )
        kinds = {task.action_kind for task in self.eval_tasks}
        require(len(kinds) == 1 and kinds <= set(ACTION_KINDS), f"tasks mix action kinds {sorted(kinds)}; use one of {ACTION_KINDS}")

    @property
    def action_kind(self) -> str:
        return self.tasks[0].action_kind

    @property
    def eval_tasks(self) -> tuple[Task, ...]:
        """The tasks every evaluation plays: the stream's own, then the held-out ones."""
        return self.tasks + self.held_out

    @property
    def obs_shape(self) -> tuple[int, ...] | None:
        """The image shape of every task's observations, or None where they are vectors."""
        return self.tasks[0].obs_shape

    @property
    def total_steps(self) -> int:
        return self.steps_per_task * len(self.tasks) * self.cycles

    @property
    def obs_dim(self) -> int:
        """Adapted observation size: the largest task's (held-out ones included), plus one-hot ids of trained tasks if task-aware."""
        return max(t.obs_dim for t in self.eval_tasks) + (len(self.tasks) if self.task_aware else 0)

    @property
    def action_dim(self) -> int:
        return max(t.action_dim for t in self.eval_tasks)

    def position(self, step: int) -> tuple[int, int]:
        """(cycle, task index) that trains at global step `step` (0-based)."""
        visit = step // self.steps_per_task
        return visit // len(self.tasks), visit % len(self.tasks)


class ObservationAdapter:
    """Pads a task's observations with zeros to the stream's size, then appends a task one-hot if task-aware.

    `task_index` counts over `stream.eval_tasks`; held-out tasks (index >= number of trained tasks) get an all-zero
    one-hot, since the agent has never been told of them.
    """

    def __init__(self, stream: Stream):
        self.width = max(t.obs_dim for t in stream.eval_tasks)
        self.n_tasks = len(stream.tasks) if stream.task_aware else 0

    def __call__(self, obs: np.ndarray, task_index: int) -> np.ndarray:
        out = np.zeros((*obs.shape[:-1], self.width + self.n_tasks), dtype=np.float32)
        out[..., : obs.shape[-1]] = obs
        if task_index < self.n_tasks:
            out[..., self.width + task_index] = 1.0
        return out


class ActionAdapter:
    """Maps the agent's actions to a task's: the first `action_dim` of the stream-wide [-1, 1] action vector,
    rescaled to the task's bounds; discrete actions beyond the task's count are refused."""

    def __init__(self, task: Task):
        self.task = task
        if task.action_kind == "continuous":
            self.low = np.asarray(task.action_low or (-1.0,) * task.action_dim, dtype=np.float32)
            self.high = np.asarray(task.action_high or (1.0,) * task.action_dim, dtype=np.float32)

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        if self.task.action_kind == "discrete":
            require(
                bool((actions < self.task.action_dim).all()),
                f"an action is >= {self.task.action_dim}, the number of actions of {self.task.name}",
            )
            return actions
        unit = np.clip(actions[..., : self.task.action_dim], -1.0, 1.0)
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)
