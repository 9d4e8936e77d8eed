"""The base class of plasticity interventions: hooks around a learner's updates, written once for every learner.

An intervention sees a learner only through the contract of `cyclic_bench.learner` (its networks, optimizers, init
streams, targets, scoring inputs, loss terms and counters) and never imports a learner. `cyclic_bench.agent.Agent`
calls the hooks, in this order per environment step: `sample_positions` and `before_update` before each update,
`after_update` after it, `after_step` once the step's updates are done; `on_task_start` and `on_episode_start` when
the engine says so. Acting and updating run inside `computing()`. Every hook runs outside the learner's update
(between replays of a captured step) and changes tensors in place, so a captured update stays valid; only a change of
structure (a new head, a new optimizer) needs it captured again. Every hook is a no-op here, so an intervention
implements only what it changes; this class with no hooks is a learner alone.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from cyclic_bench.learner import Batch, Learner, NetworkOptions
from cyclic_bench.method import Transition
from cyclic_bench.rng import SeedRNG


@dataclass
class NoSettings:
    """The config of an intervention that has no settings of its own."""


class Intervention:
    """A plasticity intervention on a learner; subclasses set `Config` and override the hooks they need."""

    Config: ClassVar[type] = NoSettings

    def __init__(self, config, learner: Learner):
        self.config, self.learner = config, learner

    @classmethod
    def shape_networks(cls, config, options: dict[str, NetworkOptions]) -> None:
        """Change how the learner builds its networks (called before it does)."""

    def computing(self) -> AbstractContextManager:
        """A context that acting and updating run in (NE: forwards without the mask multiply)."""
        return nullcontext()

    def sample_positions(self, logical: torch.Tensor, size: int) -> torch.Tensor:
        """Buffer positions [S, B] (0 = oldest of `size`) to draw the next batch from; default: as drawn."""
        return logical

    def before_update(self, batch: Batch) -> None:
        """Before each gradient update, on its batch."""

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        """After each gradient update; `stepped` names the networks whose optimizer stepped."""

    def after_step(self, transition: Transition) -> None:
        """After each environment step and the updates it called for."""

    def on_task_start(self, task_index: int) -> None:
        """A new task begins (only where the protocol shows task boundaries)."""

    def on_episode_start(self, mask: torch.Tensor, explore: bool) -> None:
        """Episodes start where mask [S,E] is True."""

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Its own diagnostics, each [S]."""
        return {}

    def modules(self) -> dict[str, nn.Module]:
        """Modules of its own to checkpoint (e.g. slow copies of the networks)."""
        return {}

    def random_streams(self) -> dict[str, SeedRNG]:
        """Random streams of its own (checkpointed with its state)."""
        return {}

    def extra_state(self) -> dict:
        return {"rngs": {key: rng.state_dict() for key, rng in self.random_streams().items()}}

    def load_extra_state(self, state: dict) -> None:
        for key, rng in self.random_streams().items():
            rng.load_state_dict(state["rngs"][key])

    def restore_structure(self, state: dict) -> None:
        """Rebuild the saved structure (e.g. injected heads) from `extra_state()`'s output before modules are loaded."""
