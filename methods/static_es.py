"""Static-weight evolution strategies: the comparison baseline of Najarro & Risi 2020 (arXiv 2007.02686).

The same network (obs -> 128 -> 64 -> act, tanh, no biases), the same OpenAI-ES and the same way of playing a
population in a step-budgeted stream as `hebbian` (see methods/hebbian.py), but evolution searches the weights
themselves and they never change within an episode. The paper does not state the static network's initial
weights; the ES centre starts here U(-init_weight, init_weight), the distribution the Hebbian network's weights
start every episode from. A `zero_weights` event damages the members' weights until their seed's generation
closes and evolution hands them new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.hebbian import HebbianConfig, HebbianES

from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG


@dataclass
class StaticESConfig(HebbianConfig):
    name: str = "static_es"  # registered method name (rule and normalise_weights have no effect here)


@register_method("static_es")
class StaticES(HebbianES):
    Config = StaticESConfig

    def genome_terms(self) -> tuple[str, ...]:
        return ("w",)  # one number per synapse: its weight

    def initial_centre(self, rng: SeedRNG, size: int) -> torch.Tensor:
        return rng.uniform(size, low=-self.config.init_weight, high=self.config.init_weight)

    def live_weights(self) -> list[torch.Tensor]:
        """Views of the members' genomes [S, P, out, in]: damage to them lasts until the generation closes."""
        return [w.squeeze(2) for w in self.per_layer(self.genomes)]

    def learn_within_episode(self, weights: list[torch.Tensor], genomes: torch.Tensor, activations: list[torch.Tensor]) -> None:
        """Static weights: nothing changes within an episode."""

    def start_training_episodes(self, mask: torch.Tensor) -> None:
        """Members keep their weights from one episode to the next."""

    def start_evaluation_episodes(self, mask: torch.Tensor) -> None:
        """Evaluation plays the ES centre."""
        self.eval_weights = [w.squeeze(2).expand(-1, mask.shape[1], -1, -1) for w in self.per_layer(self.es.centre[:, None])]
