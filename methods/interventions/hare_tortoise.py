"""Hare & Tortoise (Lee, Cho, Kim, Kim, Min, Choo & Lyle, ICML 2024, "Slow and Steady Wins the Race: Maintaining
Plasticity with Hare and Tortoise Networks", arXiv 2406.02596).

Each network of the learner is the Hare: it trains as usual and acts. Beside it a Tortoise copy follows it slowly,
tortoise <- ema * tortoise + (1 - ema) * hare after every optimizer step of that network, and every `reset_every`
gradient updates the Hare is set back to the Tortoise's weights: it keeps what the slow average consolidated and
regains its plasticity. Per seed; failed seeds are left alone. The optimizer state is kept and target networks
are not touched at a reset (they follow the Hare by their soft updates), as in the authors' public code.

Defaults: ema 0.999, the public code's (github dojeon-ai/Hare-Tortoise, per optimizer step). That code holds the
paper's supervised experiments (Hare reset every 10 epochs); the RL settings are not in it, so the reset period here,
20,000 gradient updates (twenty of the Tortoise's ~1,000-update averaging horizons), is this suite's choice;
`at_task_switch` adds a reset at every visible task switch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch
from cyclic_bench.nn import seed_view
from cyclic_bench.plasticity import distance_from
from cyclic_bench.registry import register_intervention


@dataclass
class HareTortoiseConfig:
    name: str = "hare_tortoise"  # registered method name
    ema: float = 0.999  # the Tortoise keeps this much of itself at each optimizer step of its Hare
    reset_every: int = 20_000  # gradient updates between resets of the Hare to the Tortoise; 0 = never
    at_task_switch: bool = False  # also reset the Hare when a new task starts (needs visible task boundaries)

    def __post_init__(self):
        require(0 <= self.ema < 1, f"method.ema={self.ema} is not allowed: it must be in [0, 1)")
        require(self.reset_every >= 0, f"method.reset_every={self.reset_every} is not allowed: it must be >= 0")


@register_intervention("hare_tortoise")
class HareTortoise(Intervention):
    Config = HareTortoiseConfig

    def __init__(self, config: HareTortoiseConfig, learner):
        super().__init__(config, learner)
        self.tortoises = {name: copy.deepcopy(net.module).requires_grad_(False) for name, net in learner.networks.items()}
        self.resets = torch.zeros(learner.spec.n_seeds, device=learner.spec.device)  # Hare resets so far, per seed

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        for name in stepped:
            self.follow(name)
        every = self.config.reset_every
        if every and self.learner.updates % every == 0:
            self.reset_hares()

    def on_task_start(self, task_index: int) -> None:
        if self.config.at_task_switch and self.learner.updates > 0:
            self.reset_hares()

    @torch.no_grad()
    def follow(self, name: str) -> None:
        """The Tortoise moves 1 - ema toward its Hare (failed seeds' Tortoises stay)."""
        hare, tortoise = list(self.learner.networks[name].module.parameters()), list(self.tortoises[name].parameters())
        toward = [torch.where(seed_view(self.learner.active, h), h, t) for h, t in zip(hare, tortoise, strict=True)]
        torch._foreach_lerp_(tortoise, toward, 1 - self.config.ema)

    @torch.no_grad()
    def reset_hares(self) -> None:
        """Every Hare takes its Tortoise's weights (active seeds only)."""
        active = self.learner.active
        for name, net in self.learner.networks.items():
            for hare, tortoise in zip(net.module.parameters(), self.tortoises[name].parameters(), strict=True):
                hare.copy_(torch.where(seed_view(active, hare), tortoise, hare))
        self.resets += active.float()

    def diagnostics(self) -> dict[str, torch.Tensor]:
        distances = {
            f"{name}_hare_tortoise_distance": distance_from(net.module, list(self.tortoises[name].parameters()))
            for name, net in self.learner.networks.items()
        }
        return {"hare_resets": self.resets.clone(), **distances}

    def modules(self) -> dict[str, torch.nn.Module]:
        return {f"{name}_tortoise": tortoise for name, tortoise in self.tortoises.items()}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "resets": self.resets}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.resets.copy_(state["resets"])
