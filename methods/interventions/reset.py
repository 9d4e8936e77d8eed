"""Reset (Nikishin, Schwarzer, D'Oro, Bacon & Courville, ICML 2022, "The Primacy Bias in Deep RL").

Every network of the learner and its optimizer are re-initialised periodically (every `reset_every` environment
steps per seed; the public SAC code resets every 2e5 steps) or at every task switch, while the replay buffer is kept.
Fresh weights come from each network's own init stream, per seed; targets copy the fresh weights. `layers="last"`
resets only each network's output layer (the paper's variant for some domains). SAC's temperature is not a network
and keeps its value. Registered twice: `reset` (periodic) and `reset_switch` (at task switches, where the protocol
shows them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.method import Transition
from cyclic_bench.registry import register_intervention

LAYER_CHOICES = ("all", "last")


@dataclass
class ResetConfig:
    name: str = "reset"  # registered method name
    reset_every: int = 200_000  # environment steps per seed between resets; 0 = never
    at_task_switch: bool = False  # also reset when a new task starts (needs visible task boundaries)
    layers: str = "all"  # "all" layers or only the "last" (output) layer of each network

    def __post_init__(self):
        require(self.layers in LAYER_CHOICES, f"method.layers={self.layers!r} is not allowed; allowed: {', '.join(LAYER_CHOICES)}")
        require(self.reset_every >= 0, f"method.reset_every={self.reset_every} is not allowed: it must be >= 0")


@register_intervention("reset_switch", ResetConfig, reset_every=0, at_task_switch=True)
@register_intervention("reset")
class Reset(Intervention):
    Config = ResetConfig

    def __init__(self, config: ResetConfig, learner):
        super().__init__(config, learner)
        self.steps_seen = 0
        self.resets = 0

    def after_step(self, t: Transition) -> None:
        previous, self.steps_seen = self.steps_seen, self.steps_seen + t.obs.shape[1]
        every = self.config.reset_every
        if every and self.steps_seen // every > previous // every:
            self.reset_networks()

    def on_task_start(self, task_index: int) -> None:
        if self.config.at_task_switch and self.steps_seen > 0:
            self.reset_networks()

    @torch.no_grad()
    def reset_networks(self) -> None:
        """Fresh weights (from each seed's own init stream) and fresh optimizer state; targets copy the new weights."""
        active = self.learner.active
        for net in self.learner.networks.values():
            if self.config.layers == "all":
                net.module.reset_parameters(net.init_rng, active)
                if net.target is not None:
                    net.target.load_state_dict(net.module.state_dict())
            else:
                net.module.layers[-1].reset_parameters(net.init_rng, active)
                if net.target is not None:
                    net.target.layers[-1].load_state_dict(net.module.layers[-1].state_dict())
            net.optimizer.reset(active)
        self.resets += 1

    def extra_state(self) -> dict:
        return {**super().extra_state(), "steps_seen": self.steps_seen, "resets": self.resets}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.steps_seen, self.resets = state["steps_seen"], state["resets"]
