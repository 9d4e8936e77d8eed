"""Neuroplastic Expansion (NE) (Liu, Obando-Ceron, Courville & Pan, ICLR 2025, arXiv 2410.07994) on any learner, and
`ne_public`, the configuration of the authors' public code on TD3 (github.com/torressliu/neuroplastic-expansion at commit
de2c660: NE/STL_Scheduler.py, NE/utils.py, stl/TD3.py, stl/modules_TD3.py, stl/train.py, compared line by line).

Read top to bottom: the configs, the sparse topology, the growth schedules, experience review, the intervention.
Each mechanism acts on a network, its optimizer, its gradients and its hidden activations (through the learner
contract, never a learner's internals) and runs between two updates, in place; only the masking of gradients sits in
the optimizer step. The paper pairs NE with TD3 (MuJoCo) and DrQ (pixel DMC); on SAC (`method.base=sac`) both networks
step, and so count, every update. NE combines with LayerNorm and CReLU through the learner's settings, as its
reviewers asked (`method.critic_layer_norm=[0,1]`, `method.activation=crelu`; with CReLU a unit is dormant when both
its features are).

`ne`, the paper's method
1. Sparse start. Each network keeps `initial_density` (0.2: the paper's and the public code's global sparsity 0.8)
   of its weights, spread over its layers by the Erdos-Renyi rule 1 - s_l proportional to (in_l + out_l) / (in_l *
   out_l); a layer the rule would make denser than 1 is dense and never changes, as in RigL (Evci et al. 2020) and
   the public `sparse_set`. Each seed's (and twin critic's) initial mask keeps the layer's largest |w|.
2. Elastic growth over a span of the stream. Every `topology_every` (the paper's delta, 100) of a network's own
   updates (TD3's actor counts its delayed updates, as the public code does), each sparse layer grows the inactive
   connections with the largest dense-gradient magnitude |dL/dW| on the update's batch (RigL's criterion). The paper
   anneals the growth rate as zeta_t = zeta/2 (1 + cos(pi t / T_end)); here T_end is the growth span and zeta the
   value that fills each layer exactly by then: a layer's connection count follows the integral of that rate,
   path(t) = initial + floor(room (x + sin(pi x) / pi)), x = t / span (t in learner updates, so both networks end
   together), room = target - initial, the target being the Erdos-Renyi count at `target_density` (0.75, the public
   code's). The count first reaches the target at the end of the span, not before.
3. Dormant-unit pruning at the public count. A layer that grows g connections at a growth step prunes
   min(floor(`prune_ratio` g), prunable) of its active ones (prune_ratio 0.4: the public code's count), connections
   into or out of dormant hidden units first, then the smallest |w|. A unit is dormant when its ReDo score (Sokar et
   al. 2023) on the batch is <= `dormant_tau` (0: the paper's I_prune = f(theta_i) <= 0, as a reviewer quotes it,
   units silent on the whole batch; the public default tau is 0 too). prunable = min(floor(prune_ratio a), N - path), a the layer's
   active connections and N its size: a step never replaces more than that share of the connections the layer had
   (at the public pace this never binds; on a short span the first steps would otherwise prune the whole layer),
   and never prunes what it could not regrow beside its path (so a layer whose target is its full size reaches it).
   g is the fewest connections with g - pruned = the path's step, so pruned < grown at every growth step (a layer
   with nothing to grow at a step prunes nothing) and the network expands. A pruned connection is not regrown at once.
4. Constant density after the span. Once every sparse layer is at its target, each topology change prunes
   floor(regrow_t a) connections (the same order) and regrows as many by gradient, regrow_t = `regrow_fraction`/2
   (1 + cos(pi s / T_end)), s the network's own updates since it reached its target and T_end the stream's updates
   (the public code's second phase: zeta 0.2, T_end the run's updates).
5. Experience review on the paper's trigger (`review_gate=dormant_stall`). The paper reviews old experience when the
   change rate of the dormant ratio falls below a dynamic threshold; its text gives neither the rate's window nor the
   threshold's rule in numbers (reviewers asked), so this is the suite's reading, made to latch while the ratio
   stalls and let go when it moves. At every critic topology change k the critic's dormant ratio d_k (tau as above)
   is measured on the update's batch; its average change rate over the last W = `review_window` (10) changes is r_k
   = |d_k - d_{k-W}| / W (a single batch's noise shrinks as 1/W); the dynamic threshold is `review_threshold` (0.25)
   x the fastest rate of the run so far. While r_k <= threshold (from the W-th change on, and once the ratio has
   moved: a ratio that never moved has not stalled), each update's batch is, with probability `review_probability`
   (0.5, about what the public gate gives), drawn from the oldest `review_fraction` (0.3, the public `hist_size`;
   the meta-review says "the initial quarter") of the seed's buffer. With tau 0 the ratio counts silent units, which
   settle early, so review latches on early and stays on, as in the paper's Figure 5 (a reviewer: the threshold
   "plateaus to its lowest value (strongest consolidation) even before halfway"); a unit dying or reviving lets go.
   The board's `ne` row uses this trigger, because a row is a verdict on the paper's method; the public
   active-fraction gate is `review_gate=active_fraction`, and `ne_public`'s row.

Why the growth span defaults to half the stream (`growth_fraction` 0.5; `growth_updates` sets it in updates). The
paper's point is that the network grows while the agent learns, from a small size to its full one, and its cosine
runs over T_end, which the public code sets to the run's length in updates. The public code never uses that cosine
while growing (TD3.py builds STL_Scheduler with its default uni=True, STL_Scheduler.py lines 165, 428-432, 479-482):
it grows a constant 0.008 x a layer's initial free space per topology change, prunes 40% of that again, and so
reaches 75% after about 190 changes (HalfCheetah sizes: 191 for the critic, 186 for the actor), about 19k critic and
37k actor updates, 2-4% of a 1M-step run. At that pace a stream's expansion would be over inside its first task
visit (25k steps on `lite`, 1M on `full`) and the board would rank a constant-density network. Half the stream is
the first cycle of the suite's two-cycle streams: every task is first learned while the network still expands, the
second half runs the public code's constant-density phase, both phases are in every run, and the board's density
curve shows the expansion. The span counts updates from the first one, so it ends the warm-up's length after the
stream's midpoint. The cosine front-loads growth as the paper's rate does: 48% of the room by a quarter of the span,
82% by half. `method.growth_updates=20000` is about the public pace.

The reviewers' questions (the seed reviews of the paper). How grown weights start: at exactly 0, with zero Adam
moments (the paper and the public code start them at 0; the public `--init_method lecun` never reaches the
scheduler, whose default is zero); biases are dense and need no start. The starting sparsity: 0.8 (density 0.2),
spread by Erdos-Renyi. The grow and prune rates: per topology change a layer's net growth is the path's step (room x
(1 + cos(pi x)) x delta / span at x of the span, the most at the start); it grows about 1/0.6 of that and prunes 40%
of what it grows; after the span it swaps regrow_fraction 0.2 of its connections at first, annealed to 0 over T_end.
The dense gradient costs one extra loss and backward pass with the raw weights (masked ones are 0) on the update's
batch, at topology changes only: RigL's approximation, the gradient of a missing connection at weight 0.

`ne_public`: the public code's configuration, as stl/train.py runs with `--recall`
- critic 3 x 256 with LayerNorm after the third hidden linear layer (before its ReLU), actor 2 x 256 (modules_TD3.py
  lines 11-75); the LayerNorm gains count as dense weights in the Erdos-Renyi budget and in the density, as the
  public `sparse_set` and `show_sparsity` count every 'weight' tensor. Every other method keeps TD3's networks.
  `ne_public` reproduces a TD3 code base, so it runs on TD3 only.
- growth at the constant pace (`growth_schedule=constant`): each sparse layer grows floor(0.008 x its initial free
  space) connections per topology change, the free space being 0.8 N - initial (the public `n_init_space`), and
  prunes floor(0.4 x that), until the network's density reaches 0.75; there are no per-layer targets.
- review through the active-fraction gate (`review_gate=active_fraction`), at every update, on a batch of its own:
  with a = the critic's fraction of active hidden units, review while a < 0.4 (`--awaken`), when a uniform draw is
  >= gate = 1 / (1 + 0.9 exp(0.4 - a)) (`--Tamp` 0.9; a gate >= 0.6 becomes 0.4): probability 0.47 to 0.57.
- the public artefacts that change what it computes, each reproduced: (a) `auto_batch` (on, and its store_true flag
  cannot turn it off): while a < 0.36 the batch is halved (`halve_batch_below`: the first half of the draw, each
  transition twice, so shapes stay static and the mean loss is the half batch's); (b) Adam's `step` of each sparse
  layer's weight restarts at 0 at every topology change during growth (`_reset_adam_moments` with an all-false mask
  still resets `step`; its bias lookup then raises IndexError, which is swallowed), which cuts those layers' effective
  learning rate to about 0.23x on average (`restart_adam_steps`); (c) the dormant-score lookup never matches
  (activation hooks are keyed by module name, the lookup by layer index) and tau is 0, so pruning is by smallest |w|
  alone (`prune_order=magnitude`); (d) the connections pruned at a step compete for regrowth at that step and keep
  their weight when regrown (`regrow_pruned`).
- not reproduced, because it changes 1 update in 100 and would put NE inside the update: at each topology change the
  public code skips that network's optimizer step; here the update steps.
train.py's defaults leave `--recall` off, and the README's example adds `--static_actor` (an actor frozen at 20%
density); `ne_public` follows train.py's defaults with review on, as the paper's method has it.

Differences from the public code that remain (in `ne_public`, and in `ne` where it shares the mechanism):
- the dense gradient comes from an extra pass after the update, on the same batch (public: the update's own
  backward, whose step it skips): one Adam step later, with a fresh draw of the target-policy noise;
- a pruned connection's Adam moments are zeroed (public: kept and decaying, its gradient being masked, so one regrown
  later starts with them): that keeps masked weights exactly 0 without re-masking after every optimizer step;
- a layer that starts above 80% dense (the critic's first layer, 98% at HalfCheetah's sizes) has a negative free
  space; the public code's negative counts then add 3 zero-weight connections to it per change until it is dense
  (about 37 changes); here such a layer keeps its start;
- the halved batch holds each of its transitions twice, with two target-noise draws (public: one);
- the active fraction averages the per-layer fractions (public: pooled over layers; equal, all its layers being 256);
- budgets count environment steps, evaluation covers every task of the stream and seeds are batched, as for every
  method of the suite; the public code's n-step returns, EMA networks and dynamic buffer are off by default there
  and absent here.
Ablations: `ne_no_growth` (the sparse start stays: nothing grows, so nothing is pruned), `ne_no_prune` (growth
without pruning, and no prune-and-regrow after it), `ne_no_review`; all on the defaults above.

Seeds: every count, choice, threshold and schedule is per seed. Masks are the `mask` buffers of the online networks'
sparse layers (saved with the modules; dense layers have none). Masked weights are kept exactly 0 with zero Adam
moments (the optimizer zeroes their gradients), so acting and training forwards use the raw weights and skip the
mask multiply; the target networks share the masks and stay 0 where they are 0. Diagnostics, per evaluation: each
network's density, connections grown and pruned since the last evaluation, the share of batches drawn by
review since then, the growth phase, and the review signal (the change rate, or the active fraction) and threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch, Learner
from cyclic_bench.nn import BatchedMLP, SeedAdam
from cyclic_bench.plasticity import active_fraction, clone_parameters, density, dormant_ratio, dormant_units
from cyclic_bench.registry import register_intervention
from cyclic_bench.rng import SeedRNG

REVIEW_STREAM, TOPOLOGY_STREAM = 11, 12  # random-stream ids of NE's own draws (learners use 1-4)
GROWTH_SCHEDULES = ("cosine", "constant")
REVIEW_GATES = ("dormant_stall", "active_fraction")
PRUNE_ORDERS = ("dormant", "magnitude")
PUBLIC_NETWORKS = {"critic_hidden": [256, 256, 256], "critic_layer_norm": [2]}  # modules_TD3.MLPCritic: 3 x 256, LayerNorm after the third


@dataclass
class NEConfig:
    name: str = "ne"  # registered method name
    initial_density: float = 0.2  # fraction of each network's weights in use at the start (global sparsity 0.8)
    target_density: float = 0.75  # growth ends at this density (public code: 75% dense)
    topology_every: int = 100  # the paper's delta: a network's own updates between its topology changes
    growth_schedule: str = "cosine"  # cosine: the paper's annealed rate over the growth span | constant: the public pace
    growth_fraction: float = 0.5  # cosine: the growth span as a fraction of the stream's updates
    growth_updates: int = 0  # cosine: the growth span in updates; > 0 overrides growth_fraction
    constant_growth: float = 0.008  # constant: connections grown per topology change, x each layer's initial free space
    prune_ratio: float = 0.4  # connections pruned per grown one at each growth step (< 1: the network expands)
    prune_order: str = "dormant"  # dormant: dormant units' connections first, then smallest |w| | magnitude: smallest |w|
    regrow_pruned: bool = False  # connections pruned at a step may be regrown at that step, keeping their weight
    regrow_fraction: float = 0.2  # after growth: fraction of active connections pruned and regrown, cosine-annealed
    schedule_updates: int = 0  # T_end of the schedules, in updates; 0 = the stream's updates
    dormant_tau: float = 0.0  # a hidden unit whose ReDo score is <= tau is dormant (0: silent on the whole batch)
    review_gate: str = "dormant_stall"  # dormant_stall: the paper's trigger | active_fraction: the public gate
    review_window: int = 10  # dormant_stall: topology changes over which the dormant ratio's change rate is averaged
    review_threshold: float = 0.25  # dormant_stall: review while that rate <= this x the fastest rate so far
    review_probability: float = 0.5  # dormant_stall: chance that a batch is a review batch while review is on
    review_active_below: float = 0.4  # active_fraction: review while the critic's active fraction is below this
    review_temperature: float = 0.9  # active_fraction: the gate is 1 / (1 + temperature * exp(below - active))
    review_fraction: float = 0.3  # review batches come from this oldest fraction of each seed's buffer
    halve_batch_below: float = 0.0  # halve the batch while the critic's active fraction is below this; 0 = never
    restart_adam_steps: bool = False  # restart the Adam step count of sparse layers' weights at each growth step
    grow: bool = True  # elastic growth (ablation: false)
    prune: bool = True  # pruning, and prune-and-regrow after growth (ablation: false)
    review: bool = True  # experience review (ablation: false)

    def __post_init__(self) -> None:
        require(
            0 < self.initial_density <= self.target_density <= 1,
            f"method.initial_density={self.initial_density} and method.target_density={self.target_density} are not allowed: "
            "they must satisfy 0 < initial_density <= target_density <= 1",
        )
        for name, allowed in (("growth_schedule", GROWTH_SCHEDULES), ("review_gate", REVIEW_GATES), ("prune_order", PRUNE_ORDERS)):
            value = getattr(self, name)
            require(value in allowed, f"method.{name}={value!r} is not allowed: allowed: {', '.join(allowed)}")
        for name in ("topology_every", "review_window"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"method.{name}={value} is not allowed: it must be an integer >= 1")
        for name in ("growth_updates", "schedule_updates"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 0, f"method.{name}={value} is not allowed: it must be an integer >= 0")
        require(0 < self.growth_fraction <= 1, f"method.growth_fraction={self.growth_fraction} is not allowed: it must be in (0, 1]")
        require(0 <= self.prune_ratio < 1, f"method.prune_ratio={self.prune_ratio} is not allowed: it must be in [0, 1)")
        require(0 < self.review_fraction <= 1, f"method.review_fraction={self.review_fraction} is not allowed: it must be in (0, 1]")
        for name in ("constant_growth", "regrow_fraction", "review_probability", "review_active_below", "halve_batch_below"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"method.{name}={value} is not allowed: it must be in [0, 1]")
        for name in ("dormant_tau", "review_threshold", "review_temperature"):
            value = getattr(self, name)
            require(value >= 0, f"method.{name}={value} is not allowed: it must be >= 0")


@dataclass
class NEPublicConfig(NEConfig):
    name: str = "ne_public"  # registered method name (TD3's networks are set at its registration: PUBLIC_NETWORKS)
    growth_schedule: str = "constant"  # STL_Scheduler's uni=True: 0.008 x the initial free space per change
    prune_order: str = "magnitude"  # the dormant-score lookup never matches: smallest |w|
    regrow_pruned: bool = True  # the public regrowth ranks every connection the pruning left out
    review_gate: str = "active_fraction"  # stl/TD3.py with --recall, --awaken 0.4, --Tamp 0.9
    halve_batch_below: float = 0.36  # auto_batch: awaken x 0.9
    restart_adam_steps: bool = True  # _reset_adam_moments resets Adam's step of every sparse layer's weight


# ---- sparse topology ----------------------------------------------------------------------------------------
def erdos_renyi_densities(shapes: list[tuple[int, int]], density: float, dense_entries: int = 0) -> list[float]:
    """Layer densities eps * (in + out) / (in * out) holding `density` of all weights; layers over 1 are made dense.

    `dense_entries` are weights outside these layers that are always dense (LayerNorm gains) but count in the budget.
    Layers tied for the densest are made dense together, as the public `sparse_set` does.
    """
    sizes = [i * o for i, o in shapes]
    total = sum(sizes) + dense_entries
    dense: set[int] = set()
    while True:
        raw = {layer: (i + o) / (i * o) for layer, (i, o) in enumerate(shapes) if layer not in dense}
        if not raw:
            return [1.0] * len(shapes)
        budget = density * total - dense_entries - sum(sizes[layer] for layer in dense)
        eps = budget / sum(raw[layer] * sizes[layer] for layer in raw)
        densest = max(raw.values())
        if eps * densest <= 1.0:
            return [1.0 if layer in dense else eps * raw[layer] for layer in range(len(shapes))]
        dense |= {layer for layer, value in raw.items() if value == densest}


def connection_count(density: float, size: int) -> int:
    """Connections of a layer at `density`: size - floor((1 - density) * size), as the public code counts them."""
    return max(1, size - int((1.0 - density) * size))


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


def rows(x: torch.Tensor) -> torch.Tensor:
    """[S, *members, in, out] -> [S, M, in * out]: one row per seed and member."""
    return x.reshape(x.shape[0], -1, x.shape[-2] * x.shape[-1])


class MaskedSeedAdam:
    """Adam for a sparse network: the gradients of masked weights are zeroed before each step, so they stay 0 with zero
    moments, and training forwards can use the raw weights (`unmasked`).

    With `restartable`, the sparse layers' weights are a SeedAdam group of their own: both groups step together (the
    same updates as one SeedAdam), and `restart_steps` restarts that group's step count alone, as the public code does.
    """

    def __init__(self, net: BatchedMLP, sparse_layers: list[int], n_seeds: int, lr: float, restartable: bool):
        sparse = [net.layers[k].weight for k in sparse_layers] if restartable else []
        rest = [p for p in net.parameters() if all(p is not q for q in sparse)]
        self.groups = [SeedAdam(params, n_seeds, lr) for params in (sparse, rest) if params]
        self.masked = [(net.layers[k].weight, net.layers[k].mask) for k in sparse_layers]  # mask buffers, changed in place
        self.sparse_group = self.groups[0] if sparse else None

    def zero_grad(self) -> None:
        for group in self.groups:
            group.zero_grad()

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        for weight, mask in self.masked:
            if weight.grad is not None:
                weight.grad.mul_(mask)
        for group in self.groups:
            group.step(active)

    def restart_steps(self, seeds: torch.Tensor) -> None:
        """Adam's step count of the sparse layers' weights back to 0 where `seeds` (bool [S]); moments are kept."""
        if self.sparse_group is not None:
            self.sparse_group.steps.masked_fill_(seeds, 0.0)

    def moments(self, param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        group = next(g for g in self.groups if any(p is param for p in g.params))
        return group.moments(param)

    def state_dict(self) -> dict:
        return {"groups": [group.state_dict() for group in self.groups]}

    def load_state_dict(self, state: dict) -> None:
        for group, saved in zip(self.groups, state["groups"], strict=True):
            group.load_state_dict(saved)


class SparseTopology:
    """The masks of one network (online and target, if any), its sparse start, and the rewiring of one layer at a time.

    A layer's weight [S, *members, in, out] is handled as rows [S, M, N]: one mask, count and choice per seed and
    member (M = product of the member axes, N = in * out). Also the per-seed phase: growing, or at constant density.
    """

    def __init__(self, net: BatchedMLP, target: BatchedMLP | None, initial_density: float, target_density: float):
        self.net, self.target, self.layers = net, target, list(net.layers)
        shapes = [(layer.in_features, layer.out_features) for layer in self.layers]
        self.sizes = [i * o for i, o in shapes]
        self.members = self.layers[0].weight[0].numel() // self.sizes[0]  # twin critics: 2
        self.gains = sum(norm.weight[0].numel() for norm in net.norms.values()) // self.members  # LayerNorm gains per member
        start = erdos_renyi_densities(shapes, initial_density, self.gains)
        goal = erdos_renyi_densities(shapes, target_density, self.gains)
        self.initial_counts = [connection_count(d, n) for d, n in zip(start, self.sizes, strict=True)]
        self.target_counts = [max(c, connection_count(d, n)) for c, d, n in zip(self.initial_counts, goal, self.sizes, strict=True)]
        self.sparse = [k for k, n in enumerate(self.sizes) if self.initial_counts[k] < n]  # dense layers never change
        S, device = self.layers[0].weight.shape[0], self.layers[0].weight.device
        self.growing = torch.ones(S, dtype=torch.bool, device=device)  # still expanding (else: constant density)
        self.switched_at = torch.zeros(S, device=device)  # the network's own update count when it reached its target
        self.grown = torch.zeros(S, device=device)  # connections grown so far (all layers and members)
        self.pruned = torch.zeros(S, device=device)  # connections pruned so far
        with torch.no_grad():
            for k in self.sparse:
                layer = self.layers[k]
                magnitude = rows(layer.weight).abs()
                counts = torch.full(magnitude.shape[:-1], self.initial_counts[k], dtype=torch.long, device=device)
                layer.mask = pick([magnitude], torch.ones_like(magnitude, dtype=torch.bool), counts).view_as(layer.weight).float()
                layer.weight.mul_(layer.mask)
            for tracked, online in zip(target.parameters(), net.parameters(), strict=True) if target is not None else ():
                tracked.copy_(online)

    def active(self, k: int) -> torch.Tensor:
        """[S, M]: connections in use in layer k."""
        return rows(self.layers[k].mask).sum(dim=-1).long()

    def density(self) -> torch.Tensor:
        """[S]: the fraction of weights in use, LayerNorm gains counted as dense weights (the public `show_sparsity`)."""
        dense = sum(n for k, n in enumerate(self.sizes) if k not in self.sparse) + self.gains
        used = sum(self.active(k).sum(dim=1).float() for k in self.sparse) + self.members * dense
        return used / (self.members * (sum(self.sizes) + self.gains))

    def dormant_connections(self, k: int, dormant: list[torch.Tensor]) -> torch.Tensor:
        """bool rows [S, M, N] of layer k: connections into or out of a dormant hidden unit.

        dormant: per hidden layer, bool [S, *members, features]; a unit with several features (CReLU: relu(x), relu(-x))
        is dormant when all of them are, and each feature's outgoing connections go with it.
        """
        touches = torch.zeros_like(self.layers[k].weight, dtype=torch.bool)
        if k > 0:
            touches |= dormant[k - 1].unsqueeze(-1)
        if k < len(self.layers) - 1:
            touches |= dormant[k].unflatten(-1, (self.net.activation.width, -1)).all(dim=-2).unsqueeze(-2)
        return rows(touches)

    @torch.no_grad()
    def rewire(
        self,
        k: int,
        n_grow: torch.Tensor,
        n_prune: torch.Tensor,
        grad: torch.Tensor,
        prune_first: torch.Tensor | None,
        optimizer: MaskedSeedAdam,
        regrow_pruned: bool,
    ) -> None:
        """Prune n_prune [S, M] active connections of layer k, then grow n_grow inactive ones with the largest |grad|.

        prune_first: bool rows of connections pruned before the others (dormant units'), or None; the rest go by
        smallest |w|. New connections start at 0 with zero Adam moments, as do pruned ones once gone.
        """
        layer = self.layers[k]
        mask, weight = rows(layer.mask).bool(), rows(layer.weight)
        order = [-weight.abs()] if prune_first is None else [prune_first.float(), -weight.abs()]
        pruned = pick(order, mask, n_prune)
        candidates = ~(mask & ~pruned) if regrow_pruned else ~mask  # else: a pruned connection is not regrown at once
        grown = pick([rows(grad).abs()], candidates, n_grow)
        new_mask = (mask & ~pruned) | grown
        stay = (mask & new_mask).view_as(layer.weight)  # keep weight and moments; everything else is 0
        tracked = [] if self.target is None else [self.target.layers[k].weight]
        for tensor in (layer.weight, *optimizer.moments(layer.weight), *tracked):
            tensor.mul_(stay.to(tensor.dtype))
        layer.mask.copy_(new_mask.view_as(layer.weight))
        self.grown += (new_mask & ~mask).sum(dim=(1, 2))
        self.pruned += (mask & ~new_mask).sum(dim=(1, 2))

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


# ---- growth schedules: (grown, pruned) per layer and growth step ----------------------------------------------
def cosine_path(initial: int, target: int, progress: float) -> int:
    """The paper's schedule integrated: connections after `progress` (in [0, 1]) of the span, rate ~ 1 + cos(pi x)."""
    return initial + math.floor((target - initial) * (progress + math.sin(math.pi * progress) / math.pi))


def growth_for(net: torch.Tensor, prunable: torch.Tensor, prune_ratio: float) -> torch.Tensor:
    """The fewest connections g to grow so that g - min(floor(prune_ratio * g), prunable) = net (all [S, M], >= 0)."""
    net, prunable = net.double(), prunable.double()

    def kept(g):  # g - floor(r g), the net growth of g grown connections when the prune cap does not bind
        return g - torch.floor(prune_ratio * g)

    g = torch.where(net > 0, torch.floor((net - 1) / (1 - prune_ratio)) + 1, 0.0)  # kept(g) = ceil((1 - r) g)
    g = g + (kept(g) < net).double()  # guards against rounding at exact boundaries
    g = g - ((g > 0) & (kept(g - 1) >= net)).double()
    return torch.minimum(g, net + prunable).long()  # where the cap binds: prune all prunable, grow net + prunable


def pruned_for(grown: torch.Tensor, prunable: torch.Tensor, prune_ratio: float) -> torch.Tensor:
    """min(floor(prune_ratio * grown), prunable): the connections a growth step prunes."""
    return torch.minimum(torch.floor(prune_ratio * grown.double()).long(), prunable)


# ---- experience review ----------------------------------------------------------------------------------------
class DormantStallTrigger:
    """The paper's consolidation trigger: review while the dormant ratio's change rate is at or below a dynamic threshold.

    At measurement k (one per critic topology change) of the dormant ratio d_k: rate r_k = |d_k - d_{k-W}| / W, the
    average change per topology change over the last W; threshold_k = `threshold` x max_{j <= k} r_j. Review is on
    while r_k <= threshold_k, from measurement W on (a rate needs W changes) and once the ratio has moved (max > 0).
    All per seed.
    """

    def __init__(self, n_seeds: int, window: int, threshold: float, device: torch.device):
        self.window, self.threshold = window, threshold
        self.history = torch.zeros(n_seeds, window + 1, device=device)  # ring of the last W + 1 ratios
        self.measurements = 0  # all seeds measure in lockstep
        self.rate = torch.zeros(n_seeds, device=device)  # r_k
        self.fastest = torch.zeros(n_seeds, device=device)  # max r_j so far
        self.on = torch.zeros(n_seeds, dtype=torch.bool, device=device)

    def measure(self, ratio: torch.Tensor) -> torch.Tensor:
        """Take d_k [S]; returns where review is on."""
        W = self.window
        self.history[:, self.measurements % (W + 1)] = ratio
        if self.measurements >= W:
            self.rate = (ratio - self.history[:, (self.measurements - W) % (W + 1)]).abs() / W
            self.fastest = torch.maximum(self.fastest, self.rate)
            self.on = (self.rate <= self.threshold * self.fastest) & (self.fastest > 0)  # only a ratio that moved can stall
        self.measurements += 1
        return self.on

    def state_dict(self) -> dict:
        return {"history": self.history, "measurements": self.measurements, "rate": self.rate, "fastest": self.fastest, "on": self.on}

    def load_state_dict(self, state: dict) -> None:
        self.history.copy_(state["history"])
        self.measurements = state["measurements"]
        for name in ("rate", "fastest", "on"):
            setattr(self, name, state[name].clone())


def active_fraction_gate(active: torch.Tensor, coin: torch.Tensor, below: float, temperature: float) -> torch.Tensor:
    """The public gate (stl/TD3.py): review where active < below and coin >= 1 / (1 + temperature exp(below - active)),
    a gate >= 0.6 becoming 0.4; active, coin [S] (coin uniform on [0, 1))."""
    gate = 1.0 / (1.0 + temperature * torch.exp(below - active))
    gate = torch.where(gate >= 0.6, 0.4, gate)
    return (active < below) & (coin >= gate)


def oldest_slice(logical: torch.Tensor, size: int, fraction: float) -> torch.Tensor:
    """Map uniform draws in [0, size) onto the oldest int(fraction * size) transitions (0 = oldest), keeping uniformity."""
    return logical * max(1, int(fraction * size)) // size


# ---- the intervention -----------------------------------------------------------------------------------------
@register_intervention("ne_public", NEPublicConfig, learners=("td3",), **PUBLIC_NETWORKS)
@register_intervention("ne_no_review", NEConfig, review=False)
@register_intervention("ne_no_prune", NEConfig, prune=False)
@register_intervention("ne_no_growth", NEConfig, grow=False)
@register_intervention("ne")
class NE(Intervention):
    Config = NEConfig

    def __init__(self, config: NEConfig, learner: Learner):
        super().__init__(config, learner)
        spec, S, device = learner.spec, learner.spec.n_seeds, learner.spec.device
        self.order = ["critic", *(name for name in learner.networks if name != "critic")]  # as a learner update reaches them
        self.topologies = {}
        for name in self.order:
            net = learner.networks[name]
            self.topologies[name] = SparseTopology(net.module, net.target, config.initial_density, config.target_density)
            net.optimizer = MaskedSeedAdam(net.module, self.topologies[name].sparse, S, learner.config.lr, config.restart_adam_steps)
            net.initial = clone_parameters(net.module)  # the sparse start
        self.own_updates = dict.fromkeys(self.order, 0)  # each network's own updates (TD3's actor: its delayed ones)
        self.horizon = config.schedule_updates or max(1, spec.total_steps * learner.config.updates_per_step)
        self.span = config.growth_updates or max(1, round(config.growth_fraction * self.horizon))
        self.review_rng = SeedRNG(spec.seed_ids, stream=REVIEW_STREAM, device=device)
        self.topology_rng = SeedRNG(spec.seed_ids, stream=TOPOLOGY_STREAM, device=device)
        self.trigger = DormantStallTrigger(S, config.review_window, config.review_threshold, device)
        self.review_plan = torch.zeros(S, config.topology_every, dtype=torch.bool, device=device)  # dormant_stall batches to come
        self.critic_activity = torch.full((S,), float("nan"), device=device)  # the last active fraction the gate saw
        self.watch_activity = config.halve_batch_below > 0 or (config.review and config.review_gate == "active_fraction")
        zeros = {name: torch.zeros(S, device=device) for name in ("batches", "review_batches")}
        self.tallies = zeros | {f"{name}_{kind}": torch.zeros(S, device=device) for name in self.order for kind in ("grown", "pruned")}

    def online_networks(self) -> list[BatchedMLP]:
        return [net.module for net in self.learner.networks.values()]

    # ---- sampling: experience review and the halved batch -------------------------------------------------
    def sample_positions(self, logical: torch.Tensor, size: int) -> torch.Tensor:
        """The learner's uniform draw, except for seeds that review (the oldest slice of their buffer) or halve it."""
        cfg, B, active = self.config, logical.shape[1], self.learner.active
        if self.watch_activity:  # the public code measures the critic on a batch of its own at every update
            self.critic_activity = self.probe_activity(size, B)
            if cfg.halve_batch_below > 0:
                halved = logical[:, torch.arange(B, device=logical.device) % max(1, B // 2)]  # each transition twice
                logical = torch.where((self.critic_activity < cfg.halve_batch_below).unsqueeze(1), halved, logical)
        review = torch.zeros_like(active)
        if cfg.review and cfg.review_gate == "active_fraction":
            review = active_fraction_gate(self.critic_activity, self.review_rng.uniform(), cfg.review_active_below, cfg.review_temperature)
        elif cfg.review:
            review = self.review_plan[:, self.learner.updates % cfg.topology_every]
        self.tallies["batches"] += active
        self.tallies["review_batches"] += review & active
        return torch.where(review.unsqueeze(1), oldest_slice(logical, size, cfg.review_fraction), logical)

    @torch.no_grad()
    def probe_activity(self, size: int, batch_size: int) -> torch.Tensor:
        """[S]: the critic's fraction of active hidden units on a uniform batch drawn for it."""
        critic = self.learner.networks["critic"]
        probe = self.learner.batch_at(self.review_rng.randint(size, batch_size))
        hidden: list[torch.Tensor] = []
        with unmasked(critic.module):
            critic.module(critic.inputs(probe), hidden=hidden)
        return active_fraction(hidden)

    # ---- learning and topology ----------------------------------------------------------------------------
    def computing(self):
        return unmasked(*self.online_networks())  # masked weights are 0 and their gradients are zeroed by MaskedSeedAdam

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        for name in stepped:
            self.own_updates[name] += 1
        due = [name for name in self.order if name in stepped and self.own_updates[name] % self.config.topology_every == 0]
        if due:
            self.topology_step(batch, due)

    def topology_step(self, batch: Batch, names: list[str] | None = None) -> None:
        """Rewire the networks in `names` (default all) on this batch; a critic change also feeds the review trigger."""
        names = self.order if names is None else names
        grads, hidden = self.dense_gradients(batch, names), self.hidden_activations(batch)
        if "critic" in names and self.config.review and self.config.review_gate == "dormant_stall":
            on = self.trigger.measure(dormant_ratio(hidden["critic"], self.config.dormant_tau))
            coins = self.review_rng.uniform(self.config.topology_every)  # drawn whether or not a seed reviews: streams stay per seed
            self.review_plan = on.unsqueeze(1) & (coins < self.config.review_probability)
        for name in names:
            self.change_topology(name, grads[name], hidden[name])

    def change_topology(self, name: str, grads: list[torch.Tensor], hidden: list[torch.Tensor]) -> None:
        """One topology change of a network: growth-phase steps on its schedule, then constant-density rewiring."""
        cfg, topology, active = self.config, self.topologies[name], self.learner.active
        optimizer = self.learner.networks[name].optimizer
        clock = self.own_updates[name]
        reached = self.growth_over(topology)
        switching = topology.growing & reached & active
        topology.switched_at = torch.where(switching, float(clock), topology.switched_at)
        topology.growing &= ~switching
        if cfg.restart_adam_steps:
            optimizer.restart_steps(topology.growing & active)
        since = (clock - topology.switched_at).clamp(max=self.horizon)
        regrow_t = (cfg.regrow_fraction / 2 * (1 + torch.cos(math.pi * since / self.horizon))).unsqueeze(1)  # [S, 1]
        dormant = [dormant_units(h, cfg.dormant_tau) for h in hidden] if cfg.prune_order == "dormant" else None
        growing, live = topology.growing.unsqueeze(1), active.unsqueeze(1)
        for k in topology.sparse:
            in_use, size = topology.active(k), topology.sizes[k]
            n_grow, n_prune = self.growth_counts(topology, k, in_use)
            swaps = (regrow_t * in_use).floor().long() if cfg.prune else torch.zeros_like(in_use)
            swaps = swaps if cfg.regrow_pruned else swaps.clamp(max=size - in_use)
            n_grow = torch.where(live, torch.where(growing, n_grow, swaps), 0)
            n_prune = torch.where(live, torch.where(growing, n_prune, swaps), 0)
            prune_first = None if dormant is None else topology.dormant_connections(k, dormant)
            topology.rewire(k, n_grow, n_prune, grads[k], prune_first, optimizer, cfg.regrow_pruned)

    def growth_over(self, topology: SparseTopology) -> torch.Tensor:
        """bool [S]: the growth phase is over (cosine: every sparse layer at its target; constant: the network's density)."""
        if self.config.growth_schedule == "constant":
            return topology.density() >= self.config.target_density
        reached = torch.ones_like(topology.growing)
        for k in topology.sparse:
            reached &= (topology.active(k) >= topology.target_counts[k]).all(dim=1)
        return reached

    def growth_counts(self, topology: SparseTopology, k: int, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(grown, pruned) [S, M] of layer k at a growth step, on the configured schedule."""
        cfg, size = self.config, topology.sizes[k]
        ratio = cfg.prune_ratio if cfg.prune else 0.0
        if not cfg.grow:
            return torch.zeros_like(active), torch.zeros_like(active)
        if cfg.growth_schedule == "constant":  # the public pace: a fixed share of the layer's initial free space
            free = max(0.0, size * (1 - cfg.initial_density) - topology.initial_counts[k])
            n_grow = torch.full_like(active, int(cfg.constant_growth * free)).clamp(max=size - active)
            return n_grow, pruned_for(n_grow, active, ratio)
        path = cosine_path(topology.initial_counts[k], topology.target_counts[k], min(self.learner.updates, self.span) / self.span)
        prunable = torch.floor(ratio * active.double()).long().clamp(max=max(0, size - path))  # see the docstring, item 3
        n_grow = growth_for((path - active).clamp(min=0), prunable, ratio)
        return n_grow, pruned_for(n_grow, prunable, ratio)

    def dense_gradients(self, batch: Batch, names) -> dict[str, list[torch.Tensor]]:
        """dL/dW of every layer, masked or not, of the networks in `names`, each from its own loss on the batch."""
        grads = {}
        with unmasked(*self.online_networks()), torch.enable_grad():
            for name in names:  # the critic first: its loss draws from the stream first
                net = self.learner.networks[name]
                loss = net.loss(batch, self.topology_rng).sum()
                grads[name] = list(torch.autograd.grad(loss, [layer.weight for layer in net.module.layers]))
        return grads

    @torch.no_grad()
    def hidden_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        """Post-activation hidden outputs of every network on the batch, [S, *members, B, units] per hidden layer."""
        hidden: dict[str, list[torch.Tensor]] = {name: [] for name in self.learner.networks}
        with unmasked(*self.online_networks()):
            for name, net in self.learner.networks.items():
                net.module(net.inputs(batch), hidden=hidden[name])
        return hidden

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Each network's density, and since the last evaluation: connections grown and pruned per network and the
        share of batches drawn by experience review; also the growth phase and the review signal and threshold."""
        out = {}
        for name, topology in self.topologies.items():
            out[f"{name}_density"] = density(self.learner.networks[name].module)  # also before the learner reports it
            for kind, total in (("grown", topology.grown), ("pruned", topology.pruned)):
                out[f"{name}_{kind}"] = total - self.tallies[f"{name}_{kind}"]
                self.tallies[f"{name}_{kind}"] = total.clone()
            out[f"{name}_growing"] = topology.growing.float()
        batches = self.tallies["batches"]
        out["review_batches"] = torch.where(batches > 0, self.tallies["review_batches"] / batches.clamp(min=1), float("nan"))
        self.tallies["batches"], self.tallies["review_batches"] = torch.zeros_like(batches), torch.zeros_like(batches)
        if self.config.review_gate == "active_fraction":
            out["review_signal"] = self.critic_activity.clone()
            out["review_threshold"] = torch.full_like(batches, self.config.review_active_below)
        else:
            out["review_signal"] = self.trigger.rate.clone()
            out["review_threshold"] = self.config.review_threshold * self.trigger.fastest
            out["review"] = self.trigger.on.float()
        return out

    def random_streams(self) -> dict[str, SeedRNG]:
        return {"review": self.review_rng, "topology": self.topology_rng}

    def extra_state(self) -> dict:
        return {
            **super().extra_state(),
            "topologies": {name: topology.state_dict() for name, topology in self.topologies.items()},
            "own_updates": dict(self.own_updates),
            "trigger": self.trigger.state_dict(),
            "review_plan": self.review_plan,
            "critic_activity": self.critic_activity,
            "tallies": self.tallies,
        }

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        for name, topology in self.topologies.items():
            topology.load_state_dict(state["topologies"][name])
        self.own_updates = dict(state["own_updates"])
        self.trigger.load_state_dict(state["trigger"])
        self.review_plan, self.critic_activity = state["review_plan"].clone(), state["critic_activity"].clone()
        self.tallies = {name: value.clone() for name, value in state["tallies"].items()}
