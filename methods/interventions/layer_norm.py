"""LayerNorm (Ba, Kiros & Hinton 2016) before every hidden non-linearity of the learner's actor and critics.

A plasticity baseline in its own right (Lyle et al. 2023, "Understanding plasticity in neural networks"; Nauman et
al. 2024 on normalisation in continuous control) and the first half of NaP (nap.py). It only changes how the learner
builds its networks: the linear layers start exactly as without it (the same draws from the same init stream); the
LayerNorms start at gain 1 and offset 0 and carry a per-seed (and per twin critic) affine transform. Any other method
combines with LayerNorm through the learner's own settings, e.g. `method=ne method.critic_layer_norm=[0,1]`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import NetworkOptions
from cyclic_bench.registry import register_intervention


@dataclass
class LayerNormConfig:
    name: str = "layer_norm"  # registered method name
    actor_norm: bool = True  # LayerNorm before every hidden activation of the actor
    critic_norm: bool = True  # LayerNorm before every hidden activation of both critics


def normalise_every_hidden_layer(config: LayerNormConfig, options: dict[str, NetworkOptions]) -> None:
    """LayerNorm before every hidden activation of the actor and the critic, as the config asks."""
    for net, wanted in (("actor", config.actor_norm), ("critic", config.critic_norm)):
        if wanted:
            options[net].layer_norm = list(range(len(options[net].hidden)))


@register_intervention("layer_norm")
class LayerNorm(Intervention):
    Config = LayerNormConfig

    @classmethod
    def shape_networks(cls, config: LayerNormConfig, options: dict[str, NetworkOptions]) -> None:
        normalise_every_hidden_layer(config, options)
