"""TD3 with LayerNorm (Ba, Kiros & Hinton 2016) before every hidden non-linearity of actor and critic.

A plasticity baseline in its own right (Lyle et al. 2023, "Understanding plasticity in neural networks"; Nauman et
al. 2024 on normalisation in continuous control) and the first half of NaP (methods/nap.py). The linear layers
start exactly as TD3's (the same draws from the same init stream); the LayerNorms start at gain 1 and offset 0 and
carry a per-seed (and per twin critic) affine transform.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from cyclic_bench.methods.td3 import TD3, TD3Config

from cyclic_bench.method import MethodSpec
from cyclic_bench.nn import BatchedLayerNorm, BatchedMLP, SeedAdam
from cyclic_bench.plasticity import clone_parameters
from cyclic_bench.registry import register_method


@dataclass
class LayerNormConfig(TD3Config):
    name: str = "layer_norm"  # registered method name
    actor_norm: bool = True  # LayerNorm before every hidden activation of the actor
    critic_norm: bool = True  # LayerNorm before every hidden activation of both critics


@register_method("layer_norm")
class LayerNormTD3(TD3):
    Config = LayerNormConfig

    def __init__(self, config: LayerNormConfig, spec: MethodSpec):
        super().__init__(config, spec)
        if config.actor_norm:
            add_layer_norms(self.actor)
        if config.critic_norm:
            add_layer_norms(self.critic)
        # TD3 built these from the networks without norms: build them again
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.initial = {"actor": clone_parameters(self.actor), "critic": clone_parameters(self.critic)}
        self.actor_opt = SeedAdam(self.actor.parameters(), spec.n_seeds, config.lr)
        self.critic_opt = SeedAdam(self.critic.parameters(), spec.n_seeds, config.lr)


def add_layer_norms(net: BatchedMLP) -> None:
    """Give every hidden layer of `net` that has none a LayerNorm before its activation (no random draws)."""
    for i, layer in enumerate(net.layers[:-1]):
        if str(i) not in net.norms:
            net.norms[str(i)] = BatchedLayerNorm(layer.weight.shape[0], layer.out_features, layer.members, layer.weight.device)
