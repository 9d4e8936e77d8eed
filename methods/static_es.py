"""Static-weight evolution strategies: the comparison baseline of Najarro & Risi 2020 (arXiv 2007.02686; public code
github enajx/ES, the repository the paper's code names for its static networks).

The same network (obs -> 128 -> 64 -> act, tanh, no biases), the same OpenAI-ES with the same defaults and the same
way of playing a population in a step-budgeted stream as `hebbian` (generations are fixed windows of
`generation_steps` steps per member; see methods/hebbian.py), but evolution searches the weights themselves and
they never change within an episode. The paper does not state the static network's initial weights; the authors'
code starts the ES centre from PyTorch's default `nn.Linear` initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
per layer, and so does the default here (`init_bound` sets one bound for every layer instead). A `zero_weights`
event damages the members' weights until their generation closes and evolution hands them new ones.
Differences from the authors' code are those listed for `hebbian` (budget windows, tanh actions, noise streams).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from cyclic_bench.methods.hebbian import HebbianConfig, HebbianES, RuleTerms

from cyclic_bench.errors import require
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG


@dataclass
class StaticESConfig(HebbianConfig):
    name: str = "static_es"  # registered method name (rule, init_weight and normalise_weights have no effect here)
    init_bound: float | None = None  # the centre starts U(-init_bound, init_bound); None: U(+-1/sqrt(fan_in)) per layer

    def __post_init__(self):
        super().__post_init__()
        require(self.init_bound is None or self.init_bound >= 0, f"method.init_bound={self.init_bound} is not allowed: it must be >= 0")


@register_method("static_es")
class StaticES(HebbianES):
    Config = StaticESConfig

    def genome_terms(self) -> tuple[str, ...]:
        return ("w",)  # one number per synapse: its weight

    def initial_centre(self, rng: SeedRNG, size: int) -> torch.Tensor:
        unit = rng.uniform(size, low=-1.0, high=1.0)
        if self.config.init_bound is not None:
            return unit * self.config.init_bound
        bounds = torch.cat([torch.full((o * i,), 1 / math.sqrt(i)) for o, i in self.shapes]).to(unit.device)
        return unit * bounds

    def live_weights(self) -> list[torch.Tensor]:
        """Views of the members' genomes [S, P, out, in]: damage to them lasts until the generation closes."""
        return [w.squeeze(2) for w in self.per_layer(self.genomes)]

    def rule_terms(self, genomes: torch.Tensor) -> RuleTerms:
        return []  # no rule

    def learn_within_episode(self, weights: list[torch.Tensor], terms: RuleTerms, activations: list[torch.Tensor]) -> None:
        """Static weights: nothing changes within an episode."""

    def start_training_episodes(self, mask: torch.Tensor) -> None:
        """Members keep their weights from one episode to the next."""

    def start_evaluation_episodes(self, mask: torch.Tensor) -> None:
        """Evaluation plays the ES centre."""
        self.eval_weights = [w.squeeze(2).expand(-1, mask.shape[1], -1, -1) for w in self.per_layer(self.es.centre[:, None])]
