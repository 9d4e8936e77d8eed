"""The one interface every method implements, seed-batched: S seeds, E environments per seed.

The engine calls, per environment step:  `act(obs [S,E,O], explore) -> actions`, then `observe(transition)`.
At a task switch it calls `on_task_start(task_index)` only where the protocol makes boundaries visible, and at
every episode start `on_episode_start(mask, explore)` (for methods whose policy has per-episode state).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from cyclic_bench.nn import SeedAdam


@dataclass(frozen=True)
class MethodSpec:
    """What a method is told about the run it plays."""

    obs_dim: int  # adapted observation size (padded, plus a task one-hot in task-aware streams)
    action_dim: int  # continuous: the stream's largest action size; discrete: the number of actions
    action_kind: str  # "continuous" (actions in [-1, 1]) or "discrete" (actions are integer indices)
    seed_ids: tuple[int, ...]  # the global seed number of each batch row
    n_tasks: int
    total_steps: int  # environment steps per seed over the whole stream
    device: torch.device
    generation_steps: int | None = None  # the stream's ES fitness window, where it has one (Stream.generation_steps)
    capture: bool = True  # on CUDA, replay capturable learners' updates from CUDA graphs (cyclic_bench.capture)
    obs_shape: tuple[int, ...] | None = None  # image observations: (channels, height, width) of the flat obs_dim; None: a vector

    @property
    def n_seeds(self) -> int:
        return len(self.seed_ids)


@dataclass
class Transition:
    """One environment step of every seed: tensors [S, E, ...] on the method's device."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor  # the true last observation where an episode ended (not the reset one)
    terminated: torch.Tensor  # episode ended by the task itself: do not bootstrap
    truncated: torch.Tensor  # time limit or task switch: bootstrap from next_obs
    learn: bool  # False during the stream's random warm-up: store, do not update


class Method(ABC):
    """Base class: subclasses set `Config` (a dataclass) and implement `act` and `observe`."""

    Config: ClassVar[type]
    action_kinds: ClassVar[frozenset[str]] = frozenset({"continuous"})
    uses_random_warmup: ClassVar[bool] = True  # off-policy learners fill their buffer with random actions first
    observations: ClassVar[str] = "vector"  # what it learns from: "vector" or "pixels" (a stream's obs_shape says which it has)
    envs_per_seed: int = 1  # environments each seed steps at once (an ES population is > 1)

    def __init__(self, config, spec: MethodSpec):
        self.config, self.spec = config, spec
        self.active = torch.ones(spec.n_seeds, dtype=torch.bool, device=spec.device)  # False once a seed failed

    @abstractmethod
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """obs [S,E,O] -> actions [S,E,A] in [-1, 1] (continuous) or [S,E] int64 (discrete)."""

    @abstractmethod
    def observe(self, transition: Transition) -> None:
        """Store the step and learn as the method's own schedule says."""

    @classmethod
    def check_resources(cls, config, spec: MethodSpec) -> None:
        """Refuse, in one line and before anything is allocated, a run whose memory cannot fit (default: no check)."""

    def on_task_start(self, task_index: int) -> None:
        """A new task begins (called only where the protocol makes task boundaries visible)."""

    def on_episode_start(self, mask: torch.Tensor, explore: bool) -> None:
        """Episodes start where mask [S,E] is True (training if explore, else evaluation envs)."""

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Plasticity and learning diagnostics, each a tensor [S]."""
        return {}

    def policy_weights(self) -> list[torch.Tensor]:
        """The tensors ([S, ...]) a `zero_weights` perturbation event damages; empty if the method cannot take one."""
        return []

    def optimizers(self) -> list[SeedAdam]:
        """The method's optimizers; their per-seed state is stored and failed seeds are switched off in them."""
        return []

    @abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """Every module whose parameters (leading seed axis) define the method; used for state and health checks."""

    def extra_state(self) -> dict:
        """Anything else to checkpoint (replay buffer, random streams, counters)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Inverse of `extra_state`."""

    def nonfinite_seeds(self) -> torch.Tensor:
        """bool [S]: seeds with a NaN or infinite parameter."""
        bad = torch.zeros_like(self.active)
        for module in self.modules().values():
            for p in module.parameters():
                bad |= ~torch.isfinite(p.detach().reshape(p.shape[0], -1)).all(dim=1)
        return bad

    def deactivate(self, seeds: torch.Tensor) -> None:
        """Stop updating `seeds` (bool [S]); the others go on."""
        self.active &= ~seeds

    def state_dict(self) -> dict:
        return {
            "active": self.active,
            "modules": {name: m.state_dict() for name, m in self.modules().items()},
            "optimizers": [opt.state_dict() for opt in self.optimizers()],
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.active.copy_(state["active"])
        for name, module in self.modules().items():
            module.load_state_dict(state["modules"][name])
        for opt, saved in zip(self.optimizers(), state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.load_extra_state(state["extra"])
