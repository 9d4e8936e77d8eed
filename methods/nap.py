"""NaP: Normalize-and-Project (Lyle, Zheng, Khetarpal, Martens, van Hasselt, Pascanu & Dabney 2024,
"Normalization and effective learning rates in reinforcement learning", arXiv 2407.01800).

LayerNorm before every hidden non-linearity (methods/layer_norm.py), and after every gradient step each weight
matrix of the network just updated is projected back to its initial norm, W <- W * ||W_0|| / ||W||, per seed,
per layer and per twin critic. Behind a LayerNorm a layer's output does not depend on its weights' scale, so
letting the norm grow only shrinks the effective learning rate; fixing the norm keeps that rate constant.

Only weight matrices are projected (output layers included); biases and LayerNorm gains and offsets train freely.
Target networks are not projected: they track the projected online weights through the usual soft updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.layer_norm import LayerNormConfig, LayerNormTD3

from cyclic_bench.method import MethodSpec
from cyclic_bench.nn import BatchedMLP, seed_view
from cyclic_bench.registry import register_method


@dataclass
class NaPConfig(LayerNormConfig):
    name: str = "nap"  # registered method name


@register_method("nap")
class NaP(LayerNormTD3):
    Config = NaPConfig

    def __init__(self, config: NaPConfig, spec: MethodSpec):
        super().__init__(config, spec)
        self.weight_norms = {"actor": weight_norms(self.actor), "critic": weight_norms(self.critic)}  # the radii to keep

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        super().update(batch)
        self.project(self.critic, self.weight_norms["critic"])
        if self.updates % self.config.policy_delay == 0:  # the actor stepped too
            self.project(self.actor, self.weight_norms["actor"])

    @torch.no_grad()
    def project(self, net: BatchedMLP, norms: list[torch.Tensor]) -> None:
        """Rescale each weight matrix of the active seeds to its initial norm."""
        for layer, norm in zip(net.layers, norms, strict=True):
            scale = norm / layer.weight.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            layer.weight.mul_(torch.where(seed_view(self.active, scale), scale, 1.0))

    def extra_state(self) -> dict:
        return {**super().extra_state(), "weight_norms": self.weight_norms}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.weight_norms = state["weight_norms"]


def weight_norms(net: BatchedMLP) -> list[torch.Tensor]:
    """Frobenius norm of each layer's weight matrix, [S, *members, 1, 1] per layer."""
    return [layer.weight.detach().norm(dim=(-2, -1), keepdim=True) for layer in net.layers]
