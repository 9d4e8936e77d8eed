"""Continual backprop (Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton, Nature 2024, "Loss of plasticity in
deep continual learning").

The learner's networks keep replacing their least useful hidden units. After every gradient step of a network, each
hidden unit i of each hidden layer updates its contribution utility on the step's batch,
u_i <- eta * u_i + (1 - eta) * E_x|h_i(x)| * sum_k |w_ik|   (w_ik: its outgoing weights),
and ages by one. Units older than `maturity_threshold` are mature; a layer owes `replacement_rate` x (its number
of mature units) replacements per step, accumulated as a fraction until a whole unit is due; the due units are the
mature ones with the lowest bias-corrected utility u_i / (1 - eta^age_i). A replaced unit gets incoming weights and
bias drawn from the initial distribution, zero outgoing weights (the output does not jump), zero Adam moments for
all of them, and utility and age 0. All of it per seed and per twin critic; failed seeds are left alone. The
utility is that of a ReLU unit's one feature, so `method.activation=crelu` is refused.

Where the public code (lop/algos/gnt.py) differs, we follow the paper: it measures outgoing weights by their mean
instead of their sum (the same ranking within a layer), zeroes the new unit's bias instead of drawing it, moves the
replaced unit's mean contribution into the next layer's bias, and scores on the features of the forward pass
before the step (here: a forward pass on the same batch right after it). Its Adam also keeps per-element step
counts and resets them; ours keeps them per seed. Target networks are not touched: they follow by soft updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.interventions.redo import require_single_features

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch
from cyclic_bench.nn import BatchedMLP, SeedAdam, seed_view
from cyclic_bench.registry import register_intervention
from cyclic_bench.rng import SeedRNG
from cyclic_bench.units import reinit_units

REPLACE_STREAM = 21  # random stream of the new units' weights
DRAWS_PER_LAYER = 8  # counter room for one layer's fresh draw (a BatchedLinear draws twice)


@dataclass
class CBPConfig:
    name: str = "cbp"  # registered method name
    replacement_rate: float = 1e-4  # rho: fraction of a layer's mature units replaced per gradient step
    maturity_threshold: int = 100  # steps a unit must live before it may be replaced (1e4 in the paper's PPO runs)
    utility_decay: float = 0.99  # eta: decay rate of the running contribution utility

    def __post_init__(self):
        rate = self.replacement_rate
        require(0 <= rate <= 1, f"method.replacement_rate={rate} is not allowed: it must be in [0, 1]")
        require(self.maturity_threshold >= 0, f"method.maturity_threshold={self.maturity_threshold} is not allowed: it must be >= 0")
        require(0 <= self.utility_decay < 1, f"method.utility_decay={self.utility_decay} is not allowed: it must be in [0, 1)")
        require_single_features(self, "cbp")


@register_intervention("cbp")
class ContinualBackprop(Intervention):
    Config = CBPConfig

    def __init__(self, config: CBPConfig, learner):
        super().__init__(config, learner)
        spec = learner.spec
        self.replace_rng = SeedRNG(spec.seed_ids, stream=REPLACE_STREAM, device=spec.device)
        self.stats = {name: unit_stats(net.module) for name, net in learner.networks.items()}  # per hidden layer
        self.replaced = {name: torch.zeros(spec.n_seeds, device=spec.device) for name in self.stats}  # units, so far
        self.first_slot, slot = {}, 0  # hidden layers numbered across all networks
        for name, layers in self.stats.items():
            self.first_slot[name], slot = slot, slot + len(layers)
        self.slots = slot

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        for name in stepped:
            net = self.learner.networks[name]
            self.generate_and_test(name, net.module, net.optimizer, net.inputs(batch))

    @torch.no_grad()
    def generate_and_test(self, name: str, net: BatchedMLP, opt: SeedAdam, inputs: torch.Tensor) -> None:
        """Update the utilities and ages of `net`'s hidden units on `inputs`, and replace the units now due."""
        cfg, hidden, active = self.config, [], self.learner.active
        net(inputs, hidden=hidden)
        norms = dict(net.norms.items())  # hidden layer index (str) -> its LayerNorm, where there is one
        for i, h in enumerate(hidden):
            stats = self.stats[name][i]
            contribution = h.abs().mean(dim=-2) * net.layers[i + 1].effective_weight().abs().sum(dim=-1)  # [S, *members, units]
            on = seed_view(active, contribution)
            running = cfg.utility_decay * stats["utility"] + (1 - cfg.utility_decay) * contribution
            stats["utility"] = torch.where(on, running, stats["utility"])
            stats["age"] = torch.where(on, stats["age"] + 1, stats["age"])
            mature = on & (stats["age"] > cfg.maturity_threshold)
            stats["pending"] = stats["pending"] + cfg.replacement_rate * mature.sum(dim=-1)
            due = stats["pending"].floor()
            stats["pending"] = stats["pending"] - due
            corrected = stats["utility"] / (1 - cfg.utility_decay ** stats["age"].clamp_min(1))
            rank = torch.where(mature, corrected, torch.inf).argsort(dim=-1, stable=True).argsort(dim=-1)  # 0 = least useful
            replace = mature & (rank < due.unsqueeze(-1))
            if not replace.any():
                continue
            stats["utility"] = stats["utility"].masked_fill(replace, 0.0)
            stats["age"] = stats["age"].masked_fill(replace, 0)
            # counter-based draws at a position fixed by (step, network, layer): the same alone or in any batch
            self.replace_rng.counter.fill_(DRAWS_PER_LAYER * (self.learner.updates * self.slots + self.first_slot[name] + i))
            reinit_units(net.layers[i], net.layers[i + 1], replace, self.replace_rng, opt, norms.get(str(i)))
            self.replaced[name] += replace.reshape(replace.shape[0], -1).sum(dim=1)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {f"{name}_replaced_units": count.clone() for name, count in self.replaced.items()}

    def random_streams(self) -> dict[str, SeedRNG]:
        return {"replace": self.replace_rng}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "unit_stats": self.stats, "replaced": self.replaced}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.stats, self.replaced = state["unit_stats"], state["replaced"]


def unit_stats(net: BatchedMLP) -> list[dict[str, torch.Tensor]]:
    """Zero utility and age for every unit of every hidden layer, and the fraction of a replacement owed per layer."""
    stats = []
    for layer in net.layers[:-1]:
        lead = layer.weight.shape[:-2]  # [S, *members]
        units = torch.zeros(*lead, layer.out_features, device=layer.weight.device)
        stats.append({"utility": units.clone(), "age": units.clone(), "pending": torch.zeros(lead, device=layer.weight.device)})
    return stats
