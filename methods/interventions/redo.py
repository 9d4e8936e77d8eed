"""ReDo: Recycling Dormant neurons (Sokar, Agarwal, Castro & Evci, ICML 2023, "The Dormant Neuron Phenomenon in Deep RL").

Every `redo_every` gradient updates, each hidden unit of every network of the learner is scored on the update's batch,
s_i = E_x|h_i(x)| / (mean over the layer's units of E_x|h_k(x)|), and the units with s_i <= `redo_tau` are recycled:
incoming weights and bias drawn again from the initial distribution (each seed's own init stream), outgoing
weights zeroed, and the Adam moments of all those weights reset. Output layers are never recycled. Everything is
per seed (and per twin critic); failed seeds are left alone. With CReLU (two features per unit) a unit is never
dormant, so `method.activation=crelu` is refused.

Where public code differs: the PyTorch port (and our default period) checks every 1000 updates, the Dopamine code
every 200k steps; the port also zeroes the whole optimizer's step count at each recycle, while the paper resets only
the recycled weights' moments, which is what this does (step counts stay, per seed). The target networks are not
recycled: they follow the online networks through the usual soft updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch
from cyclic_bench.nn import BatchedMLP, SeedAdam, seed_view
from cyclic_bench.plasticity import dormant_units
from cyclic_bench.registry import register_intervention
from cyclic_bench.rng import SeedRNG
from cyclic_bench.units import reinit_units


@dataclass
class ReDoConfig:
    name: str = "redo"  # registered method name
    redo_every: int = 1000  # gradient updates between dormant-unit checks (the PyTorch port's period)
    redo_tau: float = 0.1  # a unit is dormant when its ReDo score is <= tau (paper: 0.1; 0.025 in some settings)

    def __post_init__(self):
        require(self.redo_every > 0, f"method.redo_every={self.redo_every} is not allowed: it must be > 0")
        require(self.redo_tau >= 0, f"method.redo_tau={self.redo_tau} is not allowed: it must be >= 0")
        require_single_features(self, "redo")


def require_single_features(config, method: str) -> None:
    """Unit surgery (ReDo, continual backprop) needs one feature per unit: refuse CReLU in one line."""
    activation = getattr(config, "activation", "relu")
    require(
        activation == "relu",
        f"method.activation={activation} is not allowed with {method}: its units have two features and are never dormant; use relu",
    )


@register_intervention("redo")
class ReDo(Intervention):
    Config = ReDoConfig

    def __init__(self, config: ReDoConfig, learner):
        super().__init__(config, learner)
        self.recycled = {name: torch.zeros(learner.spec.n_seeds, device=learner.spec.device) for name in learner.networks}  # units, so far

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        if self.learner.updates % self.config.redo_every == 0:
            self.recycle(batch)

    @torch.no_grad()
    def recycle(self, batch: Batch) -> None:
        """Recycle the dormant hidden units of every network, scored on `batch`."""
        for name, net in self.learner.networks.items():
            self.recycled[name] += recycle_dormant(
                net.module, net.optimizer, net.inputs(batch), self.config.redo_tau, self.learner.active, net.init_rng
            )

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {f"{name}_recycled_units": count.clone() for name, count in self.recycled.items()}

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
