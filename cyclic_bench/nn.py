"""Seed-batched building blocks: every parameter has a leading seed axis, so S seeds train as one computation.

Layers draw their initial weights from a `SeedRNG`, so seed k starts bit-identical alone or in any batch.
`SeedAdam` is element-wise with a per-seed learning rate and a per-seed on/off switch, so seeds never interact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cyclic_bench.rng import SeedRNG


def seed_view(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-seed vector [S] so it broadcasts against a tensor with a leading seed axis."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


class BatchedLinear(nn.Module):
    """y = x @ W + b with W of shape [S, *members, in, out]; an optional 0/1 `mask` of W's shape makes it sparse."""

    def __init__(self, n_seeds: int, in_features: int, out_features: int, rng: SeedRNG, members: Sequence[int] = ()):
        super().__init__()
        self.in_features, self.out_features, self.members = in_features, out_features, tuple(members)
        self.weight = nn.Parameter(torch.empty(n_seeds, *self.members, in_features, out_features, device=rng.keys.device))
        self.bias = nn.Parameter(torch.empty(n_seeds, *self.members, 1, out_features, device=rng.keys.device))
        self.register_buffer("mask", None)  # set by sparse methods; saved with the module once set
        self.reset_parameters(rng)

    def reset_parameters(self, rng: SeedRNG, seeds: torch.Tensor | None = None) -> None:
        """PyTorch's default Linear init, U(-1/sqrt(in), 1/sqrt(in)); only `seeds` (bool [S]) if given."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for param in (self.weight, self.bias):
                fresh = rng.uniform(*param.shape[1:], low=-bound, high=bound)
                param.copy_(fresh if seeds is None else torch.where(seed_view(seeds, param), fresh, param))

    def effective_weight(self) -> torch.Tensor:
        return self.weight if self.mask is None else self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [S, *members, B, in] -> [S, *members, B, out]."""
        lead = x.shape[:-2]
        w = self.effective_weight().reshape(-1, self.in_features, self.out_features)
        b = self.bias.reshape(-1, 1, self.out_features)
        y = torch.baddbmm(b, x.reshape(-1, x.shape[-2], self.in_features), w)
        return y.view(*lead, x.shape[-2], self.out_features)


class BatchedLayerNorm(nn.Module):
    """LayerNorm over features with a per-seed (and per-member) affine transform."""

    def __init__(self, n_seeds: int, features: int, members: Sequence[int] = (), device: torch.device | str = "cpu"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_seeds, *members, 1, features, device=device))
        self.bias = nn.Parameter(torch.zeros(n_seeds, *members, 1, features, device=device))

    def reset_parameters(self, rng: SeedRNG | None = None, seeds: torch.Tensor | None = None) -> None:
        with torch.no_grad():
            for param, value in ((self.weight, 1.0), (self.bias, 0.0)):
                param.copy_(torch.where(seed_view(seeds, param), value, param) if seeds is not None else value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


@dataclass(frozen=True)
class Activation:
    """A hidden non-linearity; `width` features come out of each unit (CReLU: 2, so the next layer's input doubles)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    width: int = 1


def crelu(x: torch.Tensor) -> torch.Tensor:
    """Concatenated ReLU (Shang et al. 2016): [relu(x), relu(-x)] over the feature axis; unit i gives features i and units + i."""
    return torch.cat([torch.relu(x), torch.relu(-x)], dim=-1)


ACTIVATIONS = {"relu": Activation(torch.relu), "crelu": Activation(crelu, width=2)}


class BatchedMLP(nn.Module):
    """Linear layers with an activation between them; LayerNorm before chosen hidden activations.

    `sizes` are [inputs, units of each hidden layer, outputs]; a hidden layer hands the next one `activation.width`
    features per unit. `layer_norm` lists the hidden layers (0-based) that get a LayerNorm before their activation.
    """

    def __init__(
        self,
        n_seeds: int,
        sizes: Sequence[int],
        rng: SeedRNG,
        members: Sequence[int] = (),
        activation: Activation = ACTIVATIONS["relu"],
        output_activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        layer_norm: Iterable[int] = (),
    ):
        super().__init__()
        inputs = [sizes[0], *(activation.width * units for units in sizes[1:-1])]
        self.layers = nn.ModuleList(BatchedLinear(n_seeds, i, o, rng, members) for i, o in zip(inputs, sizes[1:], strict=True))
        norm_at = set(layer_norm)
        self.norms = nn.ModuleDict({str(i): BatchedLayerNorm(n_seeds, sizes[i + 1], members, rng.keys.device) for i in sorted(norm_at)})
        self.activation, self.output_activation = activation, output_activation

    def reset_parameters(self, rng: SeedRNG, seeds: torch.Tensor | None = None) -> None:
        for module in [*self.layers, *self.norms.values()]:
            module.reset_parameters(rng, seeds)

    def forward(self, x: torch.Tensor, hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Appends each hidden layer's post-activation output to `hidden` when a list is given (diagnostics)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1:
                break
            if str(i) in self.norms:
                x = self.norms[str(i)](x)
            x = self.activation.fn(x)
            if hidden is not None:
                hidden.append(x)
        return x if self.output_activation is None else self.output_activation(x)


class SeedAdam:
    """Adam (Kingma & Ba 2015) with a per-seed learning rate `lr` [S] and per-seed step counts.

    `step(active)` updates only the seeds where `active` is True; the others keep parameters and moments.
    """

    def __init__(self, params: Iterable[nn.Parameter], n_seeds: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        device = self.params[0].device
        self.lr = torch.full((n_seeds,), lr, device=device)
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.steps = torch.zeros(n_seeds, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        self.steps.add_(active.to(self.steps.dtype))
        step_size = self.lr / (1 - self.beta1**self.steps)
        bias2_sqrt = torch.sqrt(1 - self.beta2**self.steps)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            on = seed_view(active, p)
            m.copy_(torch.where(on, m * self.beta1 + p.grad * (1 - self.beta1), m))
            v.copy_(torch.where(on, v * self.beta2 + p.grad.square() * (1 - self.beta2), v))
            update = seed_view(step_size, p) * m / (v.sqrt() / seed_view(bias2_sqrt, p) + self.eps)
            p.sub_(torch.where(on, update, 0.0))

    def moments(self, param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Adam's first and second moments of `param`."""
        k = next(k for k, p in enumerate(self.params) if p is param)
        return self.exp_avg[k], self.exp_avg_sq[k]

    def reset(self, seeds: torch.Tensor | None = None) -> None:
        """Forget moments and step counts (all seeds, or those where `seeds` is True)."""
        for state in [*self.exp_avg, *self.exp_avg_sq, self.steps]:
            state.copy_(torch.zeros_like(state) if seeds is None else torch.where(seed_view(seeds, state), 0.0, state))

    def state_dict(self) -> dict:
        return {"lr": self.lr, "steps": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict) -> None:
        self.lr.copy_(state["lr"])
        self.steps.copy_(state["steps"])
        for mine, saved in zip([*self.exp_avg, *self.exp_avg_sq], [*state["exp_avg"], *state["exp_avg_sq"]], strict=True):
            mine.copy_(saved)
