"""NaP: Normalize-and-Project (Lyle, Zheng, Khetarpal, Martens, van Hasselt, Pascanu & Dabney 2024,
"Normalization and effective learning rates in reinforcement learning", arXiv 2407.01800).

LayerNorm before every hidden non-linearity (layer_norm.py), and after every gradient step each weight matrix of the
network just updated is projected back to its initial norm, W <- W * ||W_0|| / ||W||, per seed, per layer and per
twin critic. Behind a LayerNorm a layer's output does not depend on its weights' scale, so letting the norm grow
only shrinks the effective learning rate; fixing the norm keeps that rate constant.

Only weight matrices are projected (output layers included); biases and LayerNorm gains and offsets train freely.
Target networks are not projected: they track the projected online weights through the usual soft updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.interventions.layer_norm import LayerNormConfig, normalise_every_hidden_layer

from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch, NetworkOptions
from cyclic_bench.nn import BatchedMLP, seed_view
from cyclic_bench.registry import register_intervention


@dataclass
class NaPConfig(LayerNormConfig):
    name: str = "nap"  # registered method name


@register_intervention("nap")
class NaP(Intervention):
    Config = NaPConfig

    @classmethod
    def shape_networks(cls, config: NaPConfig, options: dict[str, NetworkOptions]) -> None:
        normalise_every_hidden_layer(config, options)

    def __init__(self, config: NaPConfig, learner):
        super().__init__(config, learner)
        self.weight_norms = {name: weight_norms(net.module) for name, net in learner.networks.items()}  # the radii to keep

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        for name in stepped:
            self.project(self.learner.networks[name].module, self.weight_norms[name])

    @torch.no_grad()
    def project(self, net: BatchedMLP, norms: list[torch.Tensor]) -> None:
        """Rescale each weight matrix of the active seeds to its initial norm."""
        for layer, norm in zip(net.layers, norms, strict=True):
            scale = norm / layer.weight.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            layer.weight.mul_(torch.where(seed_view(self.learner.active, scale), scale, 1.0))

    def extra_state(self) -> dict:
        return {**super().extra_state(), "weight_norms": self.weight_norms}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.weight_norms = state["weight_norms"]


def weight_norms(net: BatchedMLP) -> list[torch.Tensor]:
    """Frobenius norm of each layer's weight matrix, [S, *members, 1, 1] per layer."""
    return [layer.weight.detach().norm(dim=(-2, -1), keepdim=True) for layer in net.layers]
