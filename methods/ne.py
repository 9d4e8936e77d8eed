"""Neuroplastic Expansion (NE) on TD3 (Liu, Obando-Ceron, Courville & Pan, ICLR 2025, arXiv 2410.07994).

The networks start sparse and grow; read top to bottom: config, the sparse-topology helpers, the method.

1. **Sparse start.** Each network keeps `initial_density` (0.2, i.e. global sparsity 0.8) of its weights, spread over
   its layers by the Erdos-Renyi rule 1 - s_l proportional to (in_l + out_l) / (in_l * out_l) (layers the rule would
   make denser than 1 stay dense, as in RigL, Evci et al. 2020). The initial mask of every seed and every member of
   a layer keeps that layer's largest |w|; the other weights are set to 0.
2. **Elastic growth.** Every `topology_every` (the paper's delta, 100) updates, each layer grows the inactive
   connections with the largest dense-gradient magnitude |dL/dW| (RigL's criterion). The count is
   ceil(zeta_t * room_l) with zeta_t = zeta/2 * (1 + cos(pi * t / T_end)), t the update count and T_end the run's
   total updates, and room_l the connections the layer adds between its initial and its target density (public
   code: a fraction of the layer's "initial growth space"). New connections start at 0 with zero Adam moments.
   A layer stops at its target count (Erdos-Renyi at `target_density`, 0.75 as the public code); once all its
   layers are there, a seed's network switches to constant-density prune-and-regrow: it prunes
   floor(regrow_t * active) connections (dormant units' first, then the smallest |w|) and regrows as many by
   gradient, with regrow_t cosine-annealed from `regrow_fraction` (0.2) from the switch on, as the public code.
3. **Dormant-unit pruning.** At each growth step a layer prunes connections into or out of dormant hidden units
   (ReDo score s_i = E|h_i| / mean_k E|h_k| <= tau on the update's batch, Sokar et al. 2023), smallest |w| first,
   at most floor(0.4 * scheduled growth): fewer are pruned than grown, so the network still expands. A layer never
   prunes more than it could regrow beside its target (N_l - target_l), so it can reach its target.
   Pruned weights and their Adam moments are zeroed. (The public code's dormant-score lookup never matches and
   falls back to |w|; this implements the paper's dormant-unit criterion.)
4. **Experience review.** At every growth step the critic's dormant ratio d_k (tau as above) is measured. Its
   change rate is smoothed, v_k = (1 - beta) v_{k-1} + beta |d_k - d_{k-1}| (from 0, bias-corrected as Adam's
   moments), and compared with a dynamic threshold, `review_threshold` times the running mean of all
   |d_j - d_{j-1}| so far. While v_k is at or below it (the dormant ratio has stopped moving relative to its own
   history), each update's batch comes, with probability `review_probability` (0.5, about what the public code's
   logistic gate gives), from the oldest `review_fraction` (30%) of the seed's buffer. The paper states the trigger
   as the dormant ratio's change rate falling under a dynamic threshold; the equations above are this suite's
   reading of it (the public code gates instead on the critic's fraction of active units being below 0.4).

With the defaults a network reaches its target density within a few topology changes (a few hundred updates, as
the public code's defaults do); a smaller `grow_fraction` spreads the expansion over more of the run.

All of it is per seed: counts, top-k choices, thresholds, schedules after the switch and random draws.
Masks are the `mask` buffers of the online networks' `BatchedLinear` layers (saved with the modules). Masked
weights are kept exactly 0 with zero Adam moments (the optimizer zeroes their gradients before each step), so
acting and training forwards use the raw weights and skip the mask multiply, and the dense gradient for growth is
the gradient of that same forward (one extra TD3 loss and backward pass on the batch, at topology changes only).
Target networks use the same masks: their weights are zeroed where a mask is 0 at every topology change, and the
soft update keeps them 0 there because the online weights are 0 there.
Differences from the public code, besides the two noted above: both networks change topology at the same
updates (public: the actor counts its own, delayed, updates); a pruned connection is not regrown in the same
step; the optimizer steps at topology updates too; the critic is TD3's (the public code adds a third hidden layer
with LayerNorm: `method.critic_hidden=[256,256,256] method.critic_layer_norm=[2]`).
Ablations: `grow=false` (no growth), `prune=false` (growth without pruning), `review=false`; registered as
`ne_no_growth`, `ne_no_prune`, `ne_no_review`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from cyclic_bench.methods.td3 import TD3, TD3Config

from cyclic_bench.errors import require
from cyclic_bench.method import MethodSpec
from cyclic_bench.nn import BatchedMLP, SeedAdam
from cyclic_bench.plasticity import clone_parameters, dormant_ratio, dormant_units
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG

REVIEW_STREAM, TOPOLOGY_STREAM = 11, 12  # random-stream ids of NE's own draws (TD3 uses 1-4)
REVIEW_STATE = ("dormant", "change_average", "change_rate", "change_sum", "reviewing")  # per-seed tensors of the review trigger


@dataclass
class NEConfig(TD3Config):
    name: str = "ne"  # registered method name
    initial_density: float = 0.2  # fraction of each network's weights in use at the start (global sparsity 0.8)
    target_density: float = 0.75  # growth stops at this density (public code: 75% dense)
    topology_every: int = 100  # updates between topology changes (the paper's delta)
    grow_fraction: float = 0.5  # zeta: fraction of each layer's room grown at the first step, cosine-annealed
    prune_ratio: float = 0.4  # dormant connections pruned per scheduled grown one (< 1: the network expands)
    regrow_fraction: float = 0.2  # at target density: fraction of active connections pruned and regrown, cosine-annealed
    schedule_updates: int = 0  # T_end of the cosine schedules, in updates; 0 = the run's total updates
    dormant_tau: float = 0.1  # ReDo threshold: a hidden unit with score <= tau is dormant
    review_fraction: float = 0.3  # experience review samples from this oldest fraction of the buffer
    review_probability: float = 0.5  # chance that an update's batch is a review batch while review is on
    review_threshold: float = 1.0  # review is on while the smoothed dormant-ratio change <= this x its running mean
    review_smoothing: float = 0.1  # weight of the newest change in the smoothed change rate
    grow: bool = True  # elastic growth (ablation: false)
    prune: bool = True  # dormant-unit pruning, and prune-and-regrow at target density (ablation: false)
    review: bool = True  # experience review (ablation: false)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            0 < self.initial_density <= self.target_density <= 1,
            f"method.initial_density={self.initial_density} and method.target_density={self.target_density} are not allowed: "
            "they must satisfy 0 < initial_density <= target_density <= 1",
        )
        require(self.topology_every >= 1, f"method.topology_every={self.topology_every} is not allowed: it must be >= 1")
        for name in ("prune_ratio", "regrow_fraction", "review_fraction", "review_probability", "review_smoothing", "grow_fraction"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"method.{name}={value} is not allowed: it must be in [0, 1]")
        require(self.review_fraction > 0, f"method.review_fraction={self.review_fraction} is not allowed: it must be > 0")
        require(self.review_smoothing > 0, f"method.review_smoothing={self.review_smoothing} is not allowed: it must be > 0")
        for name in ("dormant_tau", "review_threshold", "schedule_updates"):
            value = getattr(self, name)
            require(value >= 0, f"method.{name}={value} is not allowed: it must be >= 0")


# ---- sparse topology ----------------------------------------------------------------------------------------
def erdos_renyi_densities(shapes: list[tuple[int, int]], density: float) -> list[float]:
    """Layer densities eps * (in + out) / (in * out) holding `density` of all weights; layers over 1 are made dense."""
    sizes = [i * o for i, o in shapes]
    dense: set[int] = set()
    while True:
        raw = {layer: (i + o) / (i * o) for layer, (i, o) in enumerate(shapes) if layer not in dense}
        if not raw:
            return [1.0] * len(shapes)
        budget = density * sum(sizes) - sum(sizes[layer] for layer in dense)
        eps = budget / sum(raw[layer] * sizes[layer] for layer in raw)
        densest = max(raw, key=raw.get)
        if eps * raw[densest] <= 1.0:
            return [1.0 if layer in dense else eps * raw[layer] for layer in range(len(shapes))]
        dense.add(densest)


def pick(keys: list[torch.Tensor], eligible: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """bool like `eligible` [..., N]: in each row the `counts` [...] eligible entries ranked first by `keys`.

    Keys are ordered most significant first, larger first; ties go to the lower index (stable sorts), so a row's
    choice never depends on the other rows: seed k picks the same alone or inside a batch.
    """
    keys = [torch.where(eligible, keys[0], float("-inf")), *keys[1:]]  # ineligible entries rank last
    order = None
    for key in reversed(keys):  # least significant first, then stable re-sorts by the more significant keys
        key = key if order is None else key.gather(-1, order)
        step = torch.sort(key, dim=-1, descending=True, stable=True).indices
        order = step if order is None else order.gather(-1, step)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return eligible & (rank < counts.unsqueeze(-1))


class MaskedSeedAdam(SeedAdam):
    """SeedAdam that zeroes the gradient of masked weights before each step, so they stay 0 with zero moments.

    Training forwards can then use the raw weights (`unmasked`): the same outputs without the mask multiply.
    """

    def __init__(self, net: BatchedMLP, n_seeds: int, lr: float):
        super().__init__(net.parameters(), n_seeds, lr)
        self.masked = [(layer.weight, layer.mask) for layer in net.layers]  # the mask buffers themselves, changed in place

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        for weight, mask in self.masked:
            if weight.grad is not None:
                weight.grad.mul_(mask)
        super().step(active)


class SparseTopology:
    """The masks of one network (online and target) and their per-seed schedule state.

    A layer's weight [S, *members, in, out] is handled as rows [S, M, N]: one mask, count and choice per seed and
    member (M = product of the member axes, N = in * out).
    """

    def __init__(self, net: BatchedMLP, target: BatchedMLP, config: NEConfig):
        self.net, self.target, self.layers = net, target, list(net.layers)
        shapes = [(layer.in_features, layer.out_features) for layer in self.layers]
        start, goal = erdos_renyi_densities(shapes, config.initial_density), erdos_renyi_densities(shapes, config.target_density)
        self.initial_counts = [max(1, round(d * i * o)) for d, (i, o) in zip(start, shapes, strict=True)]
        self.target_counts = [max(c, round(d * i * o)) for c, d, (i, o) in zip(self.initial_counts, goal, shapes, strict=True)]
        S, device = self.layers[0].weight.shape[0], self.layers[0].weight.device
        self.growing = torch.ones(S, dtype=torch.bool, device=device)  # still expanding (else: constant density)
        self.switched_at = torch.zeros(S, device=device)  # update count at which a seed reached its target density
        self.grown = torch.zeros(S, device=device)  # connections grown so far (all layers and members)
        self.pruned = torch.zeros(S, device=device)  # connections pruned so far
        with torch.no_grad():
            for layer, count in zip(self.layers, self.initial_counts, strict=True):
                magnitude = self.rows(layer.weight).abs()
                everywhere = torch.ones_like(magnitude, dtype=torch.bool)
                keep = pick([magnitude], everywhere, torch.full(magnitude.shape[:-1], count, dtype=torch.long, device=device))
                layer.mask = keep.view_as(layer.weight).to(layer.weight.dtype)
                layer.weight.mul_(layer.mask)
            for tracked, online in zip(target.parameters(), net.parameters(), strict=True):
                tracked.copy_(online)

    @staticmethod
    def rows(x: torch.Tensor) -> torch.Tensor:
        """[S, *members, in, out] -> [S, M, in * out]."""
        return x.reshape(x.shape[0], -1, x.shape[-2] * x.shape[-1])

    def sparse_layers(self) -> list[int]:
        """Layers that started below full density (dense ones never change, as in the public code)."""
        return [k for k, layer in enumerate(self.layers) if self.initial_counts[k] < layer.in_features * layer.out_features]

    @torch.no_grad()
    def rewire(
        self,
        grads: list[torch.Tensor],
        hidden: list[torch.Tensor],
        optimizer: MaskedSeedAdam,
        update: int,
        horizon: int,
        active: torch.Tensor,
        config: NEConfig,
    ) -> None:
        """One topology change of every sparse layer (growth phase or constant density, per seed).

        grads: dense dL/dW per layer; hidden: the network's post-activation hidden outputs on the same batch;
        optimizer: the network's, whose moments of pruned and grown connections are zeroed.
        """
        grow_t = config.grow_fraction / 2 * (1 + math.cos(math.pi * min(update, horizon) / horizon))
        since = (update - self.switched_at).clamp(max=horizon)
        regrow_t = config.regrow_fraction / 2 * (1 + torch.cos(math.pi * since / horizon))  # [S]
        growing = self.growing.unsqueeze(1)  # [S, 1], broadcast over members
        dormant = [dormant_units(h, config.dormant_tau) for h in hidden]  # [S, *members, units] per hidden layer
        for k in self.sparse_layers():
            layer, N = self.layers[k], self.layers[k].in_features * self.layers[k].out_features
            mask = self.rows(layer.mask).bool()
            n_active = mask.sum(dim=-1)  # [S, M]
            touches = torch.zeros_like(layer.mask, dtype=torch.bool)  # connections into or out of a dormant unit
            if k > 0:
                touches |= dormant[k - 1].unsqueeze(-1)
            if k < len(self.layers) - 1:
                touches |= dormant[k].unsqueeze(-2)
            touches = self.rows(touches)

            scheduled = math.ceil(grow_t * (self.target_counts[k] - self.initial_counts[k]))  # ceil: a small room still fills
            prune_room = (mask & touches).sum(dim=-1).clamp(max=N - self.target_counts[k])  # what can be regrown beside the target
            none = torch.zeros_like(n_active)
            n_prune = prune_room.clamp(max=math.floor(config.prune_ratio * scheduled)) if config.prune else none
            n_grow = (self.target_counts[k] - n_active + n_prune).clamp(min=0, max=scheduled) if config.grow else none
            swaps = (regrow_t.unsqueeze(1) * n_active).floor().long().clamp(max=N - n_active) if config.prune else none
            n_prune = torch.where(growing, n_prune, swaps)
            n_grow = torch.where(growing, n_grow, swaps).clamp(max=N - n_active)
            live = active.unsqueeze(1)
            n_prune, n_grow = torch.where(live, n_prune, 0), torch.where(live, n_grow, 0)

            prunable = torch.where(growing.unsqueeze(-1), mask & touches, mask)
            weight = self.rows(layer.weight)
            pruned = pick([touches.float(), -weight.abs()], prunable, n_prune)  # dormant units' connections first, then small |w|
            grown = pick([self.rows(grads[k]).abs()], ~mask, n_grow)  # inactive before pruning: a pruned one is not regrown

            keep = (mask & ~pruned).view_as(layer.weight)  # survivors keep weights and moments; new ones start at 0
            for tensor in (layer.weight, *optimizer.moments(layer.weight), self.target.layers[k].weight):
                tensor.mul_(keep.to(tensor.dtype))
            layer.mask.copy_(keep | grown.view_as(layer.weight))
            self.grown += grown.sum(dim=(1, 2))
            self.pruned += pruned.sum(dim=(1, 2))

        reached = torch.ones_like(self.growing)
        for k in self.sparse_layers():
            reached &= (self.rows(self.layers[k].mask).sum(dim=-1) >= self.target_counts[k]).all(dim=1)
        switching = self.growing & reached & active
        self.switched_at = torch.where(switching, float(update), self.switched_at)
        self.growing &= ~switching

    def state_dict(self) -> dict:
        return {"growing": self.growing, "switched_at": self.switched_at, "grown": self.grown, "pruned": self.pruned}

    def load_state_dict(self, state: dict) -> None:
        for name, value in self.state_dict().items():
            value.copy_(state[name])


@contextmanager
def unmasked(*nets: BatchedMLP) -> Iterator[None]:
    """Forward with the raw weights: identical outputs (masked weights are 0), and dL/dW is the dense gradient."""
    layers = [layer for net in nets for layer in net.layers]
    masks = [layer.mask for layer in layers]
    for layer in layers:
        layer.mask = None
    try:
        yield
    finally:
        for layer, mask in zip(layers, masks, strict=True):
            layer.mask = mask


# ---- the method ---------------------------------------------------------------------------------------------
@register_method("ne_no_review", NEConfig, review=False)
@register_method("ne_no_prune", NEConfig, prune=False)
@register_method("ne_no_growth", NEConfig, grow=False)
@register_method("ne")
class NE(TD3):
    Config = NEConfig

    def __init__(self, config: NEConfig, spec: MethodSpec):
        super().__init__(config, spec)
        S, device = spec.n_seeds, spec.device
        self.topologies = {
            "actor": SparseTopology(self.actor, self.actor_target, config),
            "critic": SparseTopology(self.critic, self.critic_target, config),
        }
        self.actor_opt = MaskedSeedAdam(self.actor, S, config.lr)  # replaces TD3's (no step taken yet)
        self.critic_opt = MaskedSeedAdam(self.critic, S, config.lr)
        self.initial = {"actor": clone_parameters(self.actor), "critic": clone_parameters(self.critic)}  # the sparse start
        self.horizon = config.schedule_updates or max(1, spec.total_steps * config.updates_per_step * self.envs_per_seed)
        self.review_rng = SeedRNG(spec.seed_ids, stream=REVIEW_STREAM, device=device)
        self.topology_rng = SeedRNG(spec.seed_ids, stream=TOPOLOGY_STREAM, device=device)
        self.dormant = torch.zeros(S, device=device)  # the critic's dormant ratio at the last topology change
        self.change_average = torch.zeros(S, device=device)  # exponential average of its |change|, from 0 (biased)
        self.change_rate = torch.zeros(S, device=device)  # the same, bias-corrected: the recent change rate
        self.change_sum = torch.zeros(S, device=device)  # sum of all changes (for their running mean)
        self.measurements = 0  # topology changes seen (all seeds measure in lockstep)
        self.reviewing = torch.zeros(S, dtype=torch.bool, device=device)  # the dormant ratio has stalled: review is on
        self.review_plan = torch.zeros(S, config.topology_every, dtype=torch.bool, device=device)  # review batches to come

    # ---- sampling with experience review ------------------------------------------------------------------
    def sample(self) -> dict[str, torch.Tensor]:
        """TD3's uniform batch, except for seeds whose plan says review: they read the oldest slice of their buffer."""
        size = self.replay.size
        logical = self.sample_rng.randint(size, self.config.batch_size)
        if self.config.review:
            oldest = max(1, int(self.config.review_fraction * size))
            review = self.review_plan[:, self.updates % self.config.topology_every].unsqueeze(1)
            logical = torch.where(review, logical * oldest // size, logical)  # the same uniform draw, mapped to the slice
        return self.replay.get(self.replay.chronological(logical))

    # ---- learning and topology ----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        with unmasked(self.actor):  # masked weights are 0: the same actions without the mask multiply
            return super().act(obs, explore)

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        with unmasked(self.actor, self.critic):  # masked weights are 0 and their gradients are zeroed by MaskedSeedAdam
            super().update(batch)
        if self.updates % self.config.topology_every == 0:
            self.topology_step(batch)

    def topology_step(self, batch: dict[str, torch.Tensor]) -> None:
        """Grow and prune both networks on this batch, then decide the review batches until the next step."""
        grads, hidden = self.dense_gradients(batch), self.hidden_activations(batch)
        self.track_dormant(dormant_ratio(hidden["critic"], self.config.dormant_tau))
        for name, topology in self.topologies.items():
            optimizer = {"actor": self.actor_opt, "critic": self.critic_opt}[name]
            topology.rewire(grads[name], hidden[name], optimizer, self.updates, self.horizon, self.active, self.config)
        if self.config.review:  # drawn whether or not a seed reviews, so every seed's stream is the same alone or batched
            coins = self.review_rng.uniform(self.config.topology_every)
            self.review_plan = self.reviewing.unsqueeze(1) & (coins < self.config.review_probability)

    def dense_gradients(self, batch: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """dL/dW of every layer, masked or not: the critic's TD loss and the actor's loss on the batch."""
        with unmasked(self.actor, self.critic), torch.enable_grad():
            critic_loss = self.critic_loss(batch, self.topology_rng)[0].sum()
            critic = torch.autograd.grad(critic_loss, [layer.weight for layer in self.critic.layers])
            actor = torch.autograd.grad(self.actor_loss(batch).sum(), [layer.weight for layer in self.actor.layers])
        return {"actor": list(actor), "critic": list(critic)}

    @torch.no_grad()
    def hidden_activations(self, batch: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """Post-activation hidden outputs of both networks on the batch, [S, *members, B, units] per hidden layer."""
        hidden: dict[str, list[torch.Tensor]] = {"actor": [], "critic": []}
        self.actor(batch["obs"], hidden=hidden["actor"])
        self.critic(torch.cat([batch["obs"], batch["action"]], dim=-1).unsqueeze(1).expand(-1, 2, -1, -1), hidden=hidden["critic"])
        return hidden

    def track_dormant(self, ratio: torch.Tensor) -> None:
        """Review turns on where the recent change of the dormant ratio is at or below its dynamic threshold.

        The recent change is a bias-corrected exponential average of |d_k - d_{k-1}| (weight `review_smoothing` on
        the newest); the threshold is `review_threshold` times the mean of all changes so far. Two changes make a trend.
        """
        if self.measurements > 0:
            changes, beta = self.measurements, self.config.review_smoothing
            change = (ratio - self.dormant).abs()
            self.change_average = (1 - beta) * self.change_average + beta * change  # starts at 0: corrected below
            self.change_rate = self.change_average / (1 - (1 - beta) ** changes)
            self.change_sum = self.change_sum + change
            threshold = self.config.review_threshold * self.change_sum / changes
            self.reviewing = (self.change_rate <= threshold) & (changes >= 2)
        self.dormant = ratio
        self.measurements += 1

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """TD3's (densities included), plus connections grown and pruned so far, the growth phase and the review state."""
        out = super().diagnostics()
        for name, topology in self.topologies.items():
            out[f"{name}_grown"], out[f"{name}_pruned"] = topology.grown.clone(), topology.pruned.clone()
            out[f"{name}_growing"] = topology.growing.float()
        out["review"] = self.reviewing.float()
        out["review_batches"] = self.review_plan.float().mean(dim=1)  # share of review batches planned until the next step
        out["critic_dormant_change"] = self.change_rate.clone()
        return out

    def random_streams(self) -> dict[str, SeedRNG]:
        return {**super().random_streams(), "review": self.review_rng, "topology": self.topology_rng}

    def extra_state(self) -> dict:
        review = {name: getattr(self, name) for name in REVIEW_STATE}
        return {
            **super().extra_state(),
            "topologies": {name: topology.state_dict() for name, topology in self.topologies.items()},
            "review": review | {"measurements": self.measurements, "plan": self.review_plan},
        }

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        for name, topology in self.topologies.items():
            topology.load_state_dict(state["topologies"][name])
        review = state["review"]
        for name in REVIEW_STATE:
            setattr(self, name, review[name].clone())
        self.review_plan, self.measurements = review["plan"].clone(), review["measurements"]
