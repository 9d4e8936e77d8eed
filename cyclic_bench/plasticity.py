"""Plasticity diagnostics, per seed: dormant units, active units, feature rank, weight statistics.

Hidden activations come as tensors [S, *members, B, units] (what `BatchedMLP.forward(x, hidden=[])` collects).
Every function returns one value per seed, averaging over members (e.g. twin critics) and layers.
Definitions follow REFERENCES.md: ReDo (Sokar et al. 2023) for dormant units, srank (Kumar et al. 2021) and
effective rank (Roy & Vetterli 2007) for features.
"""

from __future__ import annotations

import torch

from cyclic_bench.nn import BatchedLinear, BatchedMLP

EPS = 1e-9


def unit_scores(h: torch.Tensor) -> torch.Tensor:
    """ReDo score of each unit, [S, *members, units]: E_x|h_i(x)| over the mean of that quantity in its layer."""
    activity = h.abs().mean(dim=-2)
    return activity / (activity.mean(dim=-1, keepdim=True) + EPS)


def dormant_units(h: torch.Tensor, tau: float) -> torch.Tensor:
    """bool [S, *members, units]: units whose ReDo score is <= tau (tau = 0: units that never fire on the batch)."""
    if tau == 0:
        return h.abs().amax(dim=-2) <= 0  # exact: a float score of "0" must mean no activity at all
    return unit_scores(h) <= tau


def _per_seed(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).float().mean(dim=1)


def dormant_ratio(hidden: list[torch.Tensor], tau: float) -> torch.Tensor:
    """[S]: fraction of dormant hidden units, averaged over layers."""
    return torch.stack([_per_seed(dormant_units(h, tau)) for h in hidden]).mean(dim=0)


def active_fraction(hidden: list[torch.Tensor]) -> torch.Tensor:
    """[S]: mean of 1[h > 0] over batch and units, averaged over layers."""
    return torch.stack([_per_seed(h > 0) for h in hidden]).mean(dim=0)


def _singular_values(features: torch.Tensor) -> torch.Tensor:
    """[S, *members, k] singular values of each seed's [B, units] feature matrix; NaN for a matrix that is not finite.

    A failed seed's features may be NaN or infinite, on which the SVD raises: its matrices are decomposed as zeros
    instead (each matrix of the batch on its own, so the other seeds' values do not change) and reported as NaN.
    """
    features = features.float()
    finite = torch.isfinite(features).flatten(-2).all(dim=-1)  # [S, *members]
    sigma = torch.linalg.svdvals(torch.where(finite[..., None, None], features, 0.0))
    return torch.where(finite[..., None], sigma, float("nan"))


def srank(features: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """[S]: smallest k whose top-k singular values hold 1 - delta of their sum (mean over members); NaN if not finite."""
    sigma = _singular_values(features)
    cumulative = sigma.cumsum(dim=-1) / (sigma.sum(dim=-1, keepdim=True) + EPS)
    rank = ((cumulative < 1.0 - delta).sum(dim=-1) + 1).float()
    return _per_seed(torch.where(sigma.isnan().any(dim=-1), float("nan"), rank))


def effective_rank(features: torch.Tensor) -> torch.Tensor:
    """[S]: exp of the entropy of the normalised singular values (mean over members)."""
    sigma = _singular_values(features)
    p = sigma / (sigma.sum(dim=-1, keepdim=True) + EPS)
    return _per_seed(torch.exp(-(p * torch.log(p + EPS)).sum(dim=-1)))


def linear_layers(net: torch.nn.Module) -> list[BatchedLinear]:
    return [m for m in net.modules() if isinstance(m, BatchedLinear)]


def weight_magnitude(net: torch.nn.Module) -> torch.Tensor:
    """[S]: mean |w| over the network's (effective, i.e. masked) weights."""
    weights = [layer.effective_weight().detach().reshape(layer.weight.shape[0], -1) for layer in linear_layers(net)]
    return torch.cat(weights, dim=1).abs().mean(dim=1)


def density(net: torch.nn.Module) -> torch.Tensor:
    """[S]: fraction of weight entries in use (1 for dense networks)."""
    masks = [torch.ones_like(layer.weight) if layer.mask is None else layer.mask.to(layer.weight.dtype) for layer in linear_layers(net)]
    return torch.cat([m.reshape(m.shape[0], -1) for m in masks], dim=1).mean(dim=1)


def parameter_count(net: torch.nn.Module) -> torch.Tensor:
    """[S]: parameters in use per seed (masked weights count only where the mask is on)."""
    first = next(net.parameters())
    count = torch.full((first.shape[0],), float(sum(p[0].numel() for p in net.parameters())), device=first.device)
    for layer in linear_layers(net):
        if layer.mask is not None:
            count -= (layer.mask == 0).reshape(layer.mask.shape[0], -1).sum(dim=1)
    return count


def clone_parameters(net: torch.nn.Module) -> list[torch.Tensor]:
    """A detached copy of the network's parameters (to measure distance from them later)."""
    return [p.detach().clone() for p in net.parameters()]


def distance_from(net: torch.nn.Module, initial: list[torch.Tensor]) -> torch.Tensor:
    """[S]: L2 distance of all parameters from `initial` (same order as `net.parameters()`)."""
    squares = [(p.detach() - p0).square().reshape(p.shape[0], -1).sum(dim=1) for p, p0 in zip(net.parameters(), initial, strict=True)]
    return torch.stack(squares).sum(dim=0).sqrt()


def gradient_norm(net: torch.nn.Module) -> torch.Tensor:
    """[S]: L2 norm of the gradients currently held by the network's parameters (0 where none)."""
    squares = [p.grad.square().reshape(p.shape[0], -1).sum(dim=1) for p in net.parameters() if p.grad is not None]
    if not squares:
        return torch.zeros(next(net.parameters()).shape[0], device=next(net.parameters()).device)
    return torch.stack(squares).sum(dim=0).sqrt()


@torch.no_grad()
def network_diagnostics(prefix: str, net: BatchedMLP, inputs: torch.Tensor, initial: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every diagnostic of REFERENCES.md for one network on a probe batch `inputs` [S, *members, B, in]."""
    hidden: list[torch.Tensor] = []
    net(inputs, hidden=hidden)
    return {
        f"{prefix}_dormant_ratio_tau0": dormant_ratio(hidden, 0.0),
        f"{prefix}_dormant_ratio_tau0.1": dormant_ratio(hidden, 0.1),
        f"{prefix}_active_units": active_fraction(hidden),
        f"{prefix}_srank": srank(hidden[-1]),
        f"{prefix}_effective_rank": effective_rank(hidden[-1]),
        f"{prefix}_weight_magnitude": weight_magnitude(net),
        f"{prefix}_distance_from_init": distance_from(net, initial),
        f"{prefix}_density": density(net),
        f"{prefix}_parameters": parameter_count(net),
    }
