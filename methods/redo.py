"""ReDo: Recycling Dormant neurons (Sokar, Agarwal, Castro & Evci, ICML 2023, "The Dormant Neuron Phenomenon in Deep RL").

TD3 that, every `redo_every` gradient updates, scores each hidden unit of actor and critic on the update's batch,
s_i = E_x|h_i(x)| / (mean over the layer's units of E_x|h_k(x)|), and recycles the units with s_i <= `redo_tau`:
incoming weights and bias drawn again from the initial distribution (each seed's own init stream), outgoing
weights zeroed, and the Adam moments of all those weights reset. Output layers are never recycled. Everything is
per seed (and per twin critic); failed seeds are left alone.

Where public code differs: the PyTorch port (and our default period) checks every 1000 updates, the Dopamine code
every 200k steps; the port also zeroes the whole optimizer's step count at each recycle, while the paper resets only
the recycled weights' moments, which is what this does (step counts stay, per seed). The target networks are not
recycled: they follow the online networks through the usual soft updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.td3 import TD3, TD3Config

from cyclic_bench.errors import require
from cyclic_bench.method import MethodSpec
from cyclic_bench.nn import BatchedMLP, SeedAdam, seed_view
from cyclic_bench.plasticity import dormant_units
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG
from cyclic_bench.units import reinit_units


@dataclass
class ReDoConfig(TD3Config):
    name: str = "redo"  # registered method name
    redo_every: int = 1000  # gradient updates between dormant-unit checks (the PyTorch port's period)
    redo_tau: float = 0.1  # a unit is dormant when its ReDo score is <= tau (paper: 0.1; 0.025 in some settings)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.redo_every > 0, f"method.redo_every={self.redo_every} is not allowed: it must be > 0")
        require(self.redo_tau >= 0, f"method.redo_tau={self.redo_tau} is not allowed: it must be >= 0")


@register_method("redo")
class ReDo(TD3):
    Config = ReDoConfig

    def __init__(self, config: ReDoConfig, spec: MethodSpec):
        super().__init__(config, spec)
        self.recycled = {name: torch.zeros(spec.n_seeds, device=spec.device) for name in ("actor", "critic")}  # units, so far

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        super().update(batch)
        if self.updates % self.config.redo_every == 0:
            self.recycle(batch)

    @torch.no_grad()
    def recycle(self, batch: dict[str, torch.Tensor]) -> None:
        """Recycle the dormant hidden units of actor and critic, scored on `batch`."""
        critic_input = torch.cat([batch["obs"], batch["action"]], dim=-1).unsqueeze(1).expand(-1, 2, -1, -1)
        for name, net, opt, inputs in (
            ("actor", self.actor, self.actor_opt, batch["obs"]),
            ("critic", self.critic, self.critic_opt, critic_input),
        ):
            self.recycled[name] += recycle_dormant(net, opt, inputs, self.config.redo_tau, self.active, self.init_rng)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {**super().diagnostics(), **{f"{name}_recycled_units": count.clone() for name, count in self.recycled.items()}}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "recycled": self.recycled}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        for name, count in self.recycled.items():
            count.copy_(state["recycled"][name])


@torch.no_grad()
def recycle_dormant(net: BatchedMLP, opt: SeedAdam, inputs: torch.Tensor, tau: float, active: torch.Tensor, rng: SeedRNG) -> torch.Tensor:
    """Recycle every hidden layer's dormant units (scores from one forward pass on `inputs`); returns the count [S]."""
    hidden: list[torch.Tensor] = []
    net(inputs, hidden=hidden)  # all scores first: recycling a layer changes what the next one sees
    count = torch.zeros_like(active, dtype=torch.float32)
    norms = dict(net.norms.items())  # hidden layer index (str) -> its LayerNorm, where there is one
    for i, h in enumerate(hidden):
        units = dormant_units(h, tau)
        units &= seed_view(active, units)
        reinit_units(net.layers[i], net.layers[i + 1], units, rng, opt, norms.get(str(i)))
        count += units.reshape(units.shape[0], -1).sum(dim=1)
    return count
