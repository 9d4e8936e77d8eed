"""Reset (Nikishin, Schwarzer, D'Oro, Bacon & Courville, ICML 2022, "The Primacy Bias in Deep RL").

TD3 whose networks and optimizers are re-initialised periodically (every `reset_every` environment steps per
seed; the public SAC code resets every 2e5 steps) or at every task switch, while the replay buffer is kept.
`layers="last"` resets only each network's output layer (the paper's variant for some domains).
Registered twice: `reset` (periodic) and `reset_switch` (at task switches, where the protocol shows them).
"""

from __future__ import annotations

from dataclasses import dataclass

from cyclic_bench.methods.td3 import TD3, TD3Config

from cyclic_bench.errors import require
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import register_method

LAYER_CHOICES = ("all", "last")


@dataclass
class ResetConfig(TD3Config):
    name: str = "reset"  # registered method name
    reset_every: int = 200_000  # environment steps per seed between resets; 0 = never
    at_task_switch: bool = False  # also reset when a new task starts (needs visible task boundaries)
    layers: str = "all"  # "all" layers or only the "last" (output) layer of each network

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.layers in LAYER_CHOICES, f"method.layers={self.layers!r} is not allowed; allowed: {', '.join(LAYER_CHOICES)}")
        require(self.reset_every >= 0, f"method.reset_every={self.reset_every} is not allowed: it must be >= 0")


@register_method("reset_switch", ResetConfig, reset_every=0, at_task_switch=True)
@register_method("reset")
class Reset(TD3):
    Config = ResetConfig

    def __init__(self, config: ResetConfig, spec: MethodSpec):
        super().__init__(config, spec)
        self.steps_seen = 0
        self.resets = 0

    def observe(self, t: Transition) -> None:
        super().observe(t)
        previous, self.steps_seen = self.steps_seen, self.steps_seen + t.obs.shape[1]
        every = self.config.reset_every
        if every and self.steps_seen // every > previous // every:
            self.reset_networks()

    def on_task_start(self, task_index: int) -> None:
        if self.config.at_task_switch and self.steps_seen > 0:
            self.reset_networks()

    def reset_networks(self) -> None:
        """Fresh weights (from each seed's own init stream) and fresh optimizer state; targets copy the new weights."""
        for net, target, opt in ((self.actor, self.actor_target, self.actor_opt), (self.critic, self.critic_target, self.critic_opt)):
            if self.config.layers == "all":
                net.reset_parameters(self.init_rng, self.active)
                target.load_state_dict(net.state_dict())
            else:
                net.layers[-1].reset_parameters(self.init_rng, self.active)
                target.layers[-1].load_state_dict(net.layers[-1].state_dict())
            opt.reset(self.active)
        self.resets += 1

    def extra_state(self) -> dict:
        return {**super().extra_state(), "steps_seen": self.steps_seen, "resets": self.resets}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.steps_seen, self.resets = state["steps_seen"], state["resets"]
