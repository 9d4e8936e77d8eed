"""L2 Init (Kumar, Marklund & Van Roy 2023, "Maintaining Plasticity in Continual Learning via Regenerative
Regularization", arXiv 2308.11958; a baseline of Lyle et al. 2024, "Disentangling the Causes of Plasticity Loss in
Neural Networks"): every network's loss adds strength * ||theta - theta_0||^2, a pull of all its parameters
(weights, biases, LayerNorm gains) toward their initial values theta_0, per seed.

The paper sweeps strength over {1e-2, 1e-3, 1e-4, 1e-5} per problem; 1e-3 is the default here. Its experiments
are supervised; in RL the term joins the learner's actor and critic losses (targets are not regularised).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclic_bench.errors import number, require_settings
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Network
from cyclic_bench.registry import register_intervention


@dataclass
class L2InitConfig:
    name: str = "l2_init"  # registered method name
    strength: float = 1e-3  # lambda: weight of the squared distance from the initial parameters in each loss

    def __post_init__(self) -> None:
        require_settings("method", self, {"strength": number(0)})


@register_intervention("l2_init")
class L2Init(Intervention):
    Config = L2InitConfig

    def __init__(self, config: L2InitConfig, learner):
        super().__init__(config, learner)
        for net in learner.networks.values():
            net.loss_terms.append(lambda net=net: config.strength * squared_distance(net))


def squared_distance(net: Network) -> torch.Tensor:
    """[S]: each seed's squared L2 distance of the network's parameters from their initial values."""
    pairs = zip(net.module.parameters(), net.initial, strict=True)
    return sum((p - p0).square().flatten(1).sum(dim=1) for p, p0 in pairs)
