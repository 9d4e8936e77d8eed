"""CReLU (Abbas, Zhao, Modayil, White & Machado, CoLLAs 2023, "Loss of Plasticity in Continual Deep Reinforcement
Learning", arXiv 2303.07507): the learner's hidden ReLUs become concatenated ReLUs, CReLU(x) = [ReLU(x), ReLU(-x)]
(Shang et al. 2016), in every hidden layer of actor and critics.

The paper traces loss of plasticity to an activation footprint that grows sparse (units that stop firing stop
learning) and shows that CReLU, whose every unit passes a gradient through one of its two halves, keeps Rainbow
learning across cycles of Atari games. As in the paper each hidden layer keeps its number of units and hands the
next layer twice as many features, so the next layer has twice the inputs (and parameters); halve `actor_hidden` /
`critic_hidden` to keep the feature width instead (what the Parseval authors' code does). It only changes how
the learner builds its networks: `method=crelu` is the learner with `method.activation=crelu`, and any other
intervention takes CReLU the same way where it is meaningful (e.g. `method=ne method.activation=crelu`; unit
surgery that scores single ReLU units refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.registry import register_intervention


@dataclass
class CReLUConfig:
    name: str = "crelu"  # registered method name

    def __post_init__(self):
        activation = getattr(self, "activation", "crelu")
        require(activation == "crelu", f"method.activation={activation} is not allowed for crelu: it is CReLU; use method={self.base}")


@register_intervention("crelu", activation="crelu")
class CReLU(Intervention):
    Config = CReLUConfig
