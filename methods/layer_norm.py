"""TD3 with LayerNorm (Ba, Kiros & Hinton 2016) before every hidden non-linearity of actor and critic.

A plasticity baseline in its own right (Lyle et al. 2023, "Understanding plasticity in neural networks"; Nauman et
al. 2024 on normalisation in continuous control) and the first half of NaP (methods/nap.py). The linear layers
start exactly as TD3's (the same draws from the same init stream); the LayerNorms start at gain 1 and offset 0 and
carry a per-seed (and per twin critic) affine transform.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cyclic_bench.methods.td3 import TD3, TD3Config

from cyclic_bench.method import MethodSpec
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
        every_actor_layer = list(range(len(config.actor_hidden))) if config.actor_norm else config.actor_layer_norm
        every_critic_layer = list(range(len(config.critic_hidden))) if config.critic_norm else config.critic_layer_norm
        super().__init__(replace(config, actor_layer_norm=every_actor_layer, critic_layer_norm=every_critic_layer), spec)
