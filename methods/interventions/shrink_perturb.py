"""Shrink & Perturb (Ash & Adams, NeurIPS 2020, "On Warm-Starting Neural Network Training").

Every network's parameters are set to theta <- shrink * theta + perturb * noise, where the noise is
either standard Gaussian (the paper's theta <- lambda * theta + p, p ~ N(0, sigma^2)) or a fresh draw of the
network's own initialisation ("init": with perturb = 1 - shrink this interpolates toward a freshly initialised
network, the form D'Oro et al. 2023 use in deep RL). It is applied every `every` gradient updates (1 = after every
update, the continual form) and, with `at_task_switch`, whenever a new task starts (the paper applies it each time
new data arrives). Defaults: interpolate 20% toward a fresh initialisation every 200k updates, the period of Reset.

Each seed draws its own noise; failed seeds are left alone. The optimizer state is kept (the paper leaves it). The
target networks get the same shrink and the same noise as their online networks, so the gap between them, which
the soft updates close slowly, does not jump.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch
from cyclic_bench.nn import seed_view
from cyclic_bench.registry import register_intervention
from cyclic_bench.rng import SeedRNG

NOISE_CHOICES = ("init", "gaussian")
PERTURB_STREAM = 22  # random stream of the noise draws


@dataclass
class ShrinkPerturbConfig:
    name: str = "shrink_perturb"  # registered method name
    shrink: float = 0.8  # lambda: every parameter is multiplied by this
    perturb: float = 0.2  # scale of the added noise
    noise: str = "init"  # "init": a fresh draw of the network's initialisation; "gaussian": N(0, 1)
    every: int = 200_000  # gradient updates between applications; 1 = after every update; 0 = never
    at_task_switch: bool = False  # also apply when a new task starts (needs visible task boundaries)

    def __post_init__(self):
        require(self.noise in NOISE_CHOICES, f"method.noise={self.noise!r} is not allowed; allowed: {', '.join(NOISE_CHOICES)}")
        require(self.every >= 0, f"method.every={self.every} is not allowed: it must be >= 0")
        require(0 <= self.shrink <= 1, f"method.shrink={self.shrink} is not allowed: it must be in [0, 1]")
        require(self.perturb >= 0, f"method.perturb={self.perturb} is not allowed: it must be >= 0")


@register_intervention("shrink_perturb")
class ShrinkPerturb(Intervention):
    Config = ShrinkPerturbConfig

    def __init__(self, config: ShrinkPerturbConfig, learner):
        super().__init__(config, learner)
        spec = learner.spec
        self.perturb_rng = SeedRNG(spec.seed_ids, stream=PERTURB_STREAM, device=spec.device)
        self.applied = torch.zeros(spec.n_seeds, device=spec.device)  # applications so far, per seed

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        if self.config.every and self.learner.updates % self.config.every == 0:
            self.shrink_and_perturb()

    def on_task_start(self, task_index: int) -> None:
        if self.config.at_task_switch and self.learner.updates > 0:
            self.shrink_and_perturb()

    @torch.no_grad()
    def shrink_and_perturb(self) -> None:
        cfg, active = self.config, self.learner.active
        for net in self.learner.networks.values():
            copies = [net.module] if net.target is None else [net.module, net.target]
            for params in zip(*(m.parameters() for m in copies), self.noise_like(net.module), strict=True):
                *tensors, noise = params
                on = seed_view(active, noise)
                for p in tensors:
                    p.copy_(torch.where(on, cfg.shrink * p + cfg.perturb * noise, p))
        self.applied += active.float()

    def noise_like(self, net: torch.nn.Module) -> list[torch.Tensor]:
        """One noise tensor per parameter of `net`, each seed's from its own stream."""
        if self.config.noise == "init":
            fresh = copy.deepcopy(net)
            fresh.reset_parameters(self.perturb_rng)
            return [p.detach() for p in fresh.parameters()]
        return [self.perturb_rng.normal(*p.shape[1:]) for p in net.parameters()]

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"shrink_perturb_applied": self.applied.clone()}

    def random_streams(self) -> dict[str, SeedRNG]:
        return {"perturb": self.perturb_rng}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "applied": self.applied}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.applied.copy_(state["applied"])
