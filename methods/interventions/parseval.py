"""Parseval regularisation (Chung, Cherif, Meger & Precup, NeurIPS 2024, "Parseval Regularization for Continual
Reinforcement Learning", arXiv 2412.07224).

Every hidden layer's weight matrix W (not the output layer) is kept near an orthogonal one: each network's loss adds
strength * (reference_width / units)^2 * ||W^T W - s I||_F^2 per hidden layer, per seed (and per twin critic). With
x @ W layers (W: [in, units]) W^T W is the Gram matrix of each unit's incoming weights, the paper's W W^T for its
W x layout. Orthogonal rows keep the layer's singular values equal, which the paper links to well-conditioned
gradients across task changes.

Defaults are the authors' public code (github wechu/parseval_reg): s = 2 (the squared gain sqrt(2) of their
orthogonal initialisation), strength 1e-3 (their gridworld and MetaWorld setting; 1e-4 for LunarLander and the DMC
quadruped), scaled by (64 / width)^2 because it "was tuned for width 64". Differences: the learners here start from
PyTorch's default initialisation, not an orthogonal one, so the term also pulls the weights' scale from their start
toward s; the MetaWorld variant with learnable diagonal layers (the paper's "additional parameters" relaxation) is
not implemented. The term is a pure tensor function of the weights, added inside the learner's update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Network
from cyclic_bench.registry import register_intervention


@dataclass
class ParsevalConfig:
    name: str = "parseval"  # registered method name
    strength: float = 1e-3  # lambda: weight of the Parseval term (at reference_width units)
    scale: float = 2.0  # s: the squared norm each unit's incoming weights are pulled toward, and 0 between units
    reference_width: int = 64  # the strength applies as is at this many units and scales by (reference_width / units)^2

    def __post_init__(self):
        require(self.strength >= 0, f"method.strength={self.strength} is not allowed: it must be >= 0")
        require(self.scale > 0, f"method.scale={self.scale} is not allowed: it must be > 0")
        require(self.reference_width > 0, f"method.reference_width={self.reference_width} is not allowed: it must be > 0")


@register_intervention("parseval")
class Parseval(Intervention):
    Config = ParsevalConfig

    def __init__(self, config: ParsevalConfig, learner):
        super().__init__(config, learner)
        for net in learner.networks.values():
            net.loss_terms.append(lambda net=net: config.strength * self.penalty(net))

    def penalty(self, net: Network) -> torch.Tensor:
        """[S]: sum over hidden layers (and twin critics) of (reference_width / units)^2 ||W^T W - s I||_F^2."""
        total = 0.0
        for layer in net.module.layers[:-1]:
            units = layer.out_features
            gram = layer.weight.transpose(-2, -1) @ layer.weight  # [S, *members, units, units]
            eye = torch.eye(units, device=gram.device)
            off = (gram - self.config.scale * eye).square().sum(dim=(-2, -1))
            total = total + (self.config.reference_width / units) ** 2 * off.reshape(off.shape[0], -1).sum(dim=1)
        return total

    def diagnostics(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {f"{name}_parseval_penalty": self.penalty(net) for name, net in self.learner.networks.items()}
