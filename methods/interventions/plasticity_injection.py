"""Plasticity injection (Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney & Barreto, NeurIPS 2023, "Deep
Reinforcement Learning with Plasticity Injection").

At an injection each network's head h_theta is frozen and two copies of a freshly initialised head are added,
theta1 (trained) and theta2 (frozen):  output = h_theta(phi(x)) + [h_theta1(phi(x)) - h_theta2(phi(x))].
The bracket is exactly zero at the injection, so the output does not change; afterwards theta1 and the body phi
train (the paper's encoder keeps learning), with a rebuilt optimizer (fresh Adam state). The body's gradient is
that of the summed output, through all three heads. A later injection freezes the head trained so far and adds a
new pair, so the output sums every head with its sign.

- Head: the paper splits its Atari network into a convolutional encoder and a fully connected head; for these
  MLPs the head is the last `head_layers` linear layers (default 1: the output layer). The actor's tanh applies
  to the sum (SAC's mean and log-std come from the summed output). Every network of the learner (actor and both twin
  critics) is injected at the same time.
- When: the paper injects once, at a fixed step (`inject_at`, environment steps per seed). In a task stream the
  natural moments are task switches, so by default every new task after the first gets an injection
  (`at_task_switch`; needs visible boundaries).
- Per seed: each seed draws its new head from its own init stream. A failed seed also gets the pair, which
  cancels exactly and never trains, so its function does not change.
- Targets: the target networks get the same pair (copies of theta1), so their outputs do not change either; the
  soft updates then track the trained head as usual.
- The new optimizer keeps each seed's learning rate. A captured update (CUDA graph) must be captured again after an
  injection: the structure changed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.method import Transition
from cyclic_bench.nn import BatchedMLP, SeedAdam
from cyclic_bench.plasticity import clone_parameters
from cyclic_bench.registry import register_intervention
from cyclic_bench.rng import SeedRNG


@dataclass
class PlasticityInjectionConfig:
    name: str = "plasticity_injection"  # registered method name
    head_layers: int = 1  # the head: this many last linear layers of each network
    at_task_switch: bool = True  # inject whenever a new task starts, after the first (needs visible task boundaries)
    inject_at: list[int] = field(default_factory=list)  # environment steps per seed at which to inject (the paper: once)

    def __post_init__(self):
        most = min(len(getattr(self, "actor_hidden", [0])), len(getattr(self, "critic_hidden", [0]))) + 1
        require(1 <= self.head_layers <= most, f"method.head_layers={self.head_layers} is not allowed: it must be in [1, {most}]")
        require(all(step > 0 for step in self.inject_at), f"method.inject_at={self.inject_at} is not allowed: steps must be > 0")


class InjectedMLP(nn.Module):
    """A BatchedMLP (`base`) whose head, its last `head_layers` layers, plasticity injection can extend."""

    def __init__(self, base: BatchedMLP, head_layers: int):
        super().__init__()
        self.base, self.head_layers = base, head_layers
        self.injected = nn.ModuleList()  # pairs: a fresh head (trained until the next injection), its frozen copy

    @property
    def split(self) -> int:
        """Index of the first head layer."""
        return len(self.base.layers) - self.head_layers

    def forward(self, x: torch.Tensor, hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Like BatchedMLP.forward; the head's hidden units reported are those of the head in training."""
        base = self.base
        features = run_layers(base, x, range(self.split), hidden)
        trained = len(self.injected) - 2  # index of the head in training (-2: the original one)
        out = run_layers(base, features, range(self.split, len(base.layers)), hidden if trained < 0 else None)
        for k in range(0, len(self.injected), 2):
            fresh, frozen = self.injected[k], self.injected[k + 1]
            every = range(len(fresh.layers))
            out = out + (run_layers(fresh, features, every, hidden if k == trained else None) - run_layers(frozen, features, every, None))
        return out if base.output_activation is None else base.output_activation(out)

    def inject(self, rng: SeedRNG) -> None:
        """Freeze every head so far; add a freshly initialised head (trained from now on) and its frozen copy."""
        base, split = self.base, self.split
        first = base.layers[split]
        sizes = [first.in_features, *(layer.out_features for layer in base.layers[split:])]
        norms = [int(i) - split for i in base.norms if int(i) >= split]
        fresh = BatchedMLP(first.weight.shape[0], sizes, rng, first.members, activation=base.activation, layer_norm=norms)
        heads = [*base.layers[split:], *(norm for i, norm in base.norms.items() if int(i) >= split), *self.injected]
        for head in heads:
            head.requires_grad_(False)
        self.injected.extend([fresh, copy.deepcopy(fresh).requires_grad_(False)])

    def inject_copy(self, online: InjectedMLP) -> None:
        """Mirror `online`'s latest injection (a target network's heads start as copies of the online one's)."""
        self.injected.extend([copy.deepcopy(online.injected[-2]), copy.deepcopy(online.injected[-2])])


def run_layers(mlp: BatchedMLP, x: torch.Tensor, indices: Iterable[int], hidden: list[torch.Tensor] | None) -> torch.Tensor:
    """The layers `indices` of `mlp`, each hidden one followed by its LayerNorm (if any) and activation."""
    for i in indices:
        x = mlp.layers[i](x)
        if i < len(mlp.layers) - 1:
            if str(i) in mlp.norms:
                x = mlp.norms[str(i)](x)
            x = mlp.activation.fn(x)
            if hidden is not None:
                hidden.append(x)
    return x


@register_intervention("plasticity_injection")
class PlasticityInjection(Intervention):
    Config = PlasticityInjectionConfig

    def __init__(self, config: PlasticityInjectionConfig, learner):
        super().__init__(config, learner)
        for net in learner.networks.values():
            net.module = InjectedMLP(net.module, config.head_layers)
            if net.target is not None:
                net.target = InjectedMLP(net.target, config.head_layers)
        self.steps_seen = 0
        self.injections = 0

    def after_step(self, t: Transition) -> None:
        previous, self.steps_seen = self.steps_seen, self.steps_seen + t.obs.shape[1]
        if any(previous < step <= self.steps_seen for step in self.config.inject_at):
            self.inject()

    def on_task_start(self, task_index: int) -> None:
        if self.config.at_task_switch and self.steps_seen > 0:
            self.inject()

    def inject(self) -> None:
        for net in self.learner.networks.values():
            net.module.inject(net.init_rng)
            if net.target is not None:
                net.target.inject_copy(net.module)
            net.initial += clone_parameters(net.module.injected[-2]) + clone_parameters(net.module.injected[-1])
            net.optimizer = rebuilt(net.optimizer, net.module)
        self.injections += 1

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"injections": torch.full_like(self.learner.active, float(self.injections), dtype=torch.float32)}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "steps_seen": self.steps_seen, "injections": self.injections}

    def restore_structure(self, state: dict) -> None:
        while self.injections < state["injections"]:
            self.inject()  # the saved structure first; its values come from the state

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.steps_seen, self.injections = state["steps_seen"], state["injections"]


def rebuilt(old: SeedAdam, net: nn.Module) -> SeedAdam:
    """A fresh Adam over `net`'s trainable parameters, keeping each seed's learning rate."""
    opt = SeedAdam(net.parameters(), old.lr.shape[0], 1.0)
    opt.lr.copy_(old.lr)
    return opt
