"""The learner contract: what a gradient learner (TD3, SAC, ...) shows the plasticity interventions.

A learner owns acting, its losses and its update. `update(batch)` is one function of the networks, their optimizers
and the batch; a capturable learner splits it into `plan_update` (host) and `learn` (tensor work only), which a CUDA
graph replays on a GPU (`cyclic_bench.capture`). Everything an intervention does happens outside it, through
the hooks that `cyclic_bench.agent.Agent` calls around it, on the tensors listed here, in place. An intervention
(`cyclic_bench.intervention`) reads and changes a learner only through this contract, so it is written once and
runs on every learner; it never imports one.

Per network the contract gives: the module and its optimizer, the random stream its initial weights came from (for
fresh draws), its target copy if the learner keeps one, its initial parameters, the inputs to score its hidden units
on, its own loss, and a list of extra loss terms (pure tensor functions of the parameters, added inside the update).
Before the networks exist, `network_options` lets an intervention change how they are built (hidden sizes,
LayerNorm, activation); sparse masks are `BatchedLinear.mask` buffers, set after building.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.nn import SeedAdam
from cyclic_bench.rng import SeedRNG

Batch = dict[str, torch.Tensor]  # a replay batch: every field [S, B, ...]


@dataclass
class NetworkOptions:
    """How a learner builds one network; interventions may change these before it does."""

    hidden: list[int]  # units of each hidden layer
    layer_norm: list[int]  # hidden layers with a LayerNorm before their activation
    activation: str  # a key of cyclic_bench.nn.ACTIVATIONS


@dataclass
class Network:
    """One trained network of a learner, as interventions see it. Fields may be replaced (a new head, a new optimizer)."""

    module: nn.Module  # the online network; forward(x, hidden=[]) collects post-activation hidden features
    optimizer: SeedAdam
    init_rng: SeedRNG  # the stream its initial weights came from: fresh draws for resets and recycled units
    target: nn.Module | None  # its soft-updated copy, if the learner keeps one
    initial: list[torch.Tensor]  # its parameters at the start (distance from init, L2 Init)
    inputs: Callable[[Batch], torch.Tensor]  # batch -> the inputs its hidden units are scored on, [S, *members, B, in]
    loss: Callable[[Batch, SeedRNG], torch.Tensor]  # batch, noise stream -> its own loss [S] (no extra terms)
    loss_terms: list[Callable[[], torch.Tensor]] = field(default_factory=list)  # extra loss terms [S], added in the update


def with_terms(loss: torch.Tensor, network: Network) -> torch.Tensor:
    """The network's loss [S] plus its extra loss terms."""
    for term in network.loss_terms:
        loss = loss + term()
    return loss


class Learner(ABC):
    """Base class of gradient learners; `cyclic_bench.agent.Agent` turns one (with an intervention) into a Method."""

    Config: ClassVar[type]
    action_kinds: ClassVar[frozenset[str]] = frozenset({"continuous"})
    supports: ClassVar[frozenset[str] | None] = None  # the interventions it runs with; None: every one
    observations: ClassVar[str] = "vector"  # what it learns from: "vector" or "pixels"

    networks: dict[str, Network]  # its trained networks, by name
    updates: int  # gradient updates so far (incremented inside `update`)
    exploration_scale: torch.Tensor | None = None  # [S] multiplier of each seed's exploration; None = 1 (the learner says what it scales)

    def __init__(self, config, spec: MethodSpec, options: dict[str, NetworkOptions], active: torch.Tensor):
        self.config, self.spec, self.active = config, spec, active  # `active` is the Method's own tensor: failures reach it in place

    @classmethod
    @abstractmethod
    def network_options(cls, config) -> dict[str, NetworkOptions]:
        """How each network is built, from the config (before interventions change it)."""

    @classmethod
    def check_resources(cls, config, spec: MethodSpec) -> None:
        """Refuse, in one line and before anything is allocated, a run whose memory cannot fit (default: no check)."""

    @abstractmethod
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """obs [S,E,O] -> actions [S,E,A] in [-1, 1]."""

    @abstractmethod
    def store(self, transition: Transition) -> None:
        """Keep one environment step of every seed."""

    @abstractmethod
    def updates_due(self, transition: Transition) -> int:
        """Gradient updates this environment step calls for (after storing it)."""

    @abstractmethod
    def sample(self, positions: Callable[[torch.Tensor, int], torch.Tensor]) -> Batch:
        """A batch; `positions(logical [S, B], size)` may move the drawn buffer positions (0 = oldest) first."""

    @abstractmethod
    def stored(self) -> int:
        """Transitions each seed's buffer holds."""

    @abstractmethod
    def batch_at(self, logical: torch.Tensor) -> Batch:
        """The stored transitions at buffer positions `logical` [S, B] (0 = oldest), e.g. for a probe of its own."""

    capturable: ClassVar[bool] = False  # True where `update` is `plan_update` (host) then `learn` (tensor ops only)

    @abstractmethod
    def update(self, batch: Batch) -> tuple[str, ...]:
        """One gradient update on `batch`; returns the names of the networks whose optimizer stepped."""

    def plan_update(self) -> tuple[str, ...]:
        """Capturable learners: count the next update and name the networks it steps (host-side, no tensor is read)."""
        raise NotImplementedError(f"{type(self).__name__} is not capturable")

    def learn(self, batch: Batch, stepping: tuple[str, ...]) -> None:
        """Capturable learners: the update's tensor work for `stepping` (from `plan_update`). Nothing in it reads a
        tensor's value on the host, allocates outside the update or replaces a tensor other code holds, so one CUDA
        graph per `stepping` replays it (`cyclic_bench.capture`)."""
        raise NotImplementedError(f"{type(self).__name__} is not capturable")

    @abstractmethod
    def squared_td_error(self) -> torch.Tensor:
        """[S]: the last update's squared TD error (mean over the batch, and over twin critics)."""

    @abstractmethod
    def exploration_level(self) -> dict[str, torch.Tensor]:
        """What the exploration is now, per seed (the quantities `exploration_scale` moves)."""

    def on_episode_start(self, mask: torch.Tensor, explore: bool) -> None:
        """Episodes start where mask [S,E] is True."""

    @abstractmethod
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Losses and the plasticity diagnostics of every network, each [S]."""

    @abstractmethod
    def policy_weights(self) -> list[torch.Tensor]:
        """The tensors a `zero_weights` perturbation event damages."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every module to checkpoint and health-check (online networks and targets)."""

    @abstractmethod
    def optimizers(self) -> list[SeedAdam]:
        """Every optimizer, in a fixed order."""

    @abstractmethod
    def extra_state(self) -> dict:
        """Replay, counters, random streams and anything else to checkpoint."""

    @abstractmethod
    def load_extra_state(self, state: dict) -> None:
        """Inverse of `extra_state`."""
