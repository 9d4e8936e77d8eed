"""Seed-batched OpenAI-ES (Salimans et al. 2017, arXiv 1703.03864), as the Hebbian meta-learning paper runs it
(Najarro & Risi 2020, arXiv 2007.02686, and its public code).

Per seed, with centre theta [D], an even population P and noise eps_k ~ N(0, I) for k < P/2:
- members are antithetic pairs: member 2k = theta + sigma * eps_k, member 2k+1 = theta - sigma * eps_k;
- fitness_i = return_i - l2 * mean(member_i ** 2) (the public code penalises the perturbed parameters);
- shaping: centered ranks rank_i / (P - 1) - 0.5, then standardised to zero mean and unit standard deviation;
- update: theta += lr / (P * sigma) * sum_i F_i * (+-eps_i); then lr *= lr_decay while lr > lr_limit and
  sigma *= sigma_decay while sigma > sigma_limit (paper: lr 0.2, decay 0.995 to 0.001; sigma 0.1, decay 0.999 to 0.01).

Every quantity is per seed ([S, ...]) and a seed's generation closes on its own (`tell(returns, seeds)`).
The noise of seed s at generation g is a pure function of (seed, stream, g) (`keyed_normal`), so a seed draws the
same numbers alone or in a batch whenever the other seeds close their generations, and a checkpoint need not store
it. Why not a library: evotorch's functional API (the one that batches populations) offers PGPE and CEM, not this
ES with its shaping and decays, draws from torch's global generator (a seed would differ alone and in a batch),
and brings ray, cma and matplotlib with it; evosax is JAX. So this is a small implementation, tested in
tests/test_es.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cyclic_bench.rng import SeedRNG, hash32

_GOLDEN = 0x9E3779B9  # spreads consecutive indices over the hash's input space (as SeedRNG does)


def row_keys(seed_ids: Sequence[int], stream: int, rows: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Keys [S, rows] of independent random streams, one per (seed, row); row r of seed s never depends on S."""
    seed_keys = SeedRNG(seed_ids, stream, device).keys
    row_hash = hash32(torch.arange(rows, dtype=torch.int64, device=seed_keys.device) * _GOLDEN + 1)
    return hash32(seed_keys[:, None] ^ row_hash)


def keyed_bits(keys: torch.Tensor, counters: torch.Tensor, n: int) -> torch.Tensor:
    """Uniform 32-bit integers [R, n]: draw number `counters[r]` of stream `keys[r]` (both [R])."""
    index = torch.arange(n, dtype=torch.int64, device=keys.device)
    draw_key = hash32(hash32(keys ^ hash32(counters)))
    return hash32(draw_key[:, None] + index * _GOLDEN)


def keyed_uniform(keys: torch.Tensor, counters: torch.Tensor, n: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Float32 uniform on [low, high), [R, n]."""
    unit = (keyed_bits(keys, counters, n) >> 8).to(torch.float32) * (1.0 / (1 << 24))
    return low + (high - low) * unit


def keyed_normal(keys: torch.Tensor, counters: torch.Tensor, n: int) -> torch.Tensor:
    """Standard normal, [R, n]: Box-Muller, both of its outputs (a generation's noise is the ES's largest draw)."""
    half = (n + 1) // 2
    u1, u2 = keyed_uniform(keys, counters, 2 * half).view(-1, 2, half).unbind(1)
    radius, angle = torch.sqrt(-2.0 * torch.log1p(-u1)), 2.0 * math.pi * u2
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :n]


def centered_ranks(fitness: torch.Tensor) -> torch.Tensor:
    """[S, P] -> each seed's ranks mapped to [-0.5, 0.5] (ties broken by member index)."""
    order = torch.argsort(fitness, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(fitness.shape[1], device=fitness.device).expand_as(order))
    return ranks.to(fitness.dtype) / (fitness.shape[1] - 1) - 0.5


def shaped_fitness(fitness: torch.Tensor) -> torch.Tensor:
    """Centered ranks, standardised per seed (zero mean, unit population standard deviation)."""
    ranks = centered_ranks(fitness)
    return (ranks - ranks.mean(dim=1, keepdim=True)) / ranks.std(dim=1, unbiased=False, keepdim=True)


class OpenAIES(nn.Module):
    """The ES state of S seeds: centre [S, D] (a parameter, so health checks see it), lr, sigma, generation [S].

    The noise [S, P/2, D] is a non-persistent buffer, re-drawn from the generation counters when loaded.
    """

    def __init__(
        self,
        centre: torch.Tensor,
        seed_ids: Sequence[int],
        stream: int,
        population: int,
        lr: float,
        lr_decay: float,
        lr_limit: float,
        sigma: float,
        sigma_decay: float,
        sigma_limit: float,
        l2: float,
    ):
        super().__init__()
        S, device = centre.shape[0], centre.device
        self.population, self.lr_decay, self.lr_limit = population, lr_decay, lr_limit
        self.sigma_decay, self.sigma_limit, self.l2 = sigma_decay, sigma_limit, l2
        self.centre = nn.Parameter(centre.clone(), requires_grad=False)
        self.register_buffer("lr", torch.full((S,), float(lr), device=device))
        self.register_buffer("sigma", torch.full((S,), float(sigma), device=device))
        self.register_buffer("generation", torch.zeros(S, dtype=torch.int64, device=device))
        self.register_buffer("keys", row_keys(seed_ids, stream, 1, device)[:, 0], persistent=False)
        self.register_buffer("noise", self.draw_noise(torch.ones(S, dtype=torch.bool, device=device)), persistent=False)

    def draw_noise(self, seeds: torch.Tensor) -> torch.Tensor:
        """eps [n, P/2, D] of the seeds where `seeds` is True, for their current generation."""
        n, (half, size) = int(seeds.sum()), (self.population // 2, self.centre.shape[1])
        return keyed_normal(self.keys[seeds], self.generation[seeds], half * size).view(n, half, size)

    def members(self, seeds: torch.Tensor | None = None) -> torch.Tensor:
        """The population [S, P, D] (or [n, P, D] for the seeds where `seeds` is True): +eps, -eps pairs."""
        rows = slice(None) if seeds is None else seeds
        noise = self.noise[rows]
        pairs = torch.stack([noise, -noise], dim=2).flatten(1, 2)
        return self.centre[rows][:, None] + self.sigma[rows][:, None, None] * pairs

    @torch.no_grad()
    def tell(self, returns: torch.Tensor, seeds: torch.Tensor) -> None:
        """Close the generation of the seeds where `seeds` [S] is True, from their members' returns [S, P]."""
        if not seeds.any():
            return
        members = self.members(seeds)
        fitness = returns[seeds] - self.l2 * members.square().mean(dim=2)
        shaped = shaped_fitness(fitness)
        noise, P, sigma, lr = self.noise[seeds], self.population, self.sigma[seeds], self.lr[seeds]
        step = torch.einsum("nk,nkd->nd", shaped[:, 0::2] - shaped[:, 1::2], noise)
        self.centre[seeds] = self.centre[seeds] + (lr / (P * sigma))[:, None] * step
        self.lr[seeds] = torch.where(lr > self.lr_limit, lr * self.lr_decay, lr)
        self.sigma[seeds] = torch.where(sigma > self.sigma_limit, sigma * self.sigma_decay, sigma)
        self.generation[seeds] += 1
        self.noise[seeds] = self.draw_noise(seeds)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.noise = self.draw_noise(torch.ones_like(self.generation, dtype=torch.bool))
        return result
