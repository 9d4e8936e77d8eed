"""Hebbian meta-learning with evolution strategies (Najarro & Risi, NeurIPS 2020, "Meta-Learning through Hebbian
Plasticity in Random Networks", arXiv 2007.02686).

The policy network obs -> 128 -> 64 -> act (tanh after every layer, the last one giving actions in [-1, 1]; no
biases) starts every episode from random weights U(-0.1, 0.1) and changes them after every step by a per-synapse
Hebbian rule. Evolution (OpenAI-ES, `cyclic_bench.es`) learns only the rule's coefficients, started N(0, 1).
The paper's rule, ABCD with a learning rate, for the synapse from unit i (presynaptic activation o_i) to unit j
(postsynaptic o_j) of the step just taken:

    dw_ji = eta_ji * (A_ji * o_i * o_j + B_ji * o_i + C_ji * o_j + D_ji)        (5 coefficients per synapse)

Its other variants are options (`rule`): A, AD, AD_lr, ABC, ABC_lr, ABCD, ABCD_lr: the named terms summed, times
eta where the name ends in `_lr`. Dividing each layer by its max |w| after every update (`normalise_weights`) is
the paper's setting for its pixel task; its quadruped ran without it, as here by default.

Seed-batched: S seeds x P members. Live weights are [S, P, out, in], one einsum per layer per step; a member's
coefficients are [S, P, C, out, in] views of its genome (the ES member), and the rule is element-wise.

Playing a population in a step-budgeted stream (the engine steps all S x P environments every iteration and every
step counts against the budget):
- Member i plays with its genome theta + sigma * eps_i. Its fitness is the return of the first complete episode
  (ended by termination or by the environment's time limit) that it started with that genome.
- A member that has its fitness plays on with the same genome until every member of its seed has one: those steps
  are spent and counted, and score nothing. The diagnostic `fitness_step_fraction` says which share of the steps
  went into a fitness.
- The seed's generation then closes (ES update, new noise) at its next step. Members whose episode starts at that
  step score their new genome from it; the others switch genome at once, but their running episode (begun with the
  old genome) does not count: their next one does.
- At a visible task switch, a fitness recorded on the visit's last step by a truncation is dropped: the switch may
  have cut that episode short (a time-limit ending on that very step cannot be told apart, and is dropped too).
  A generation still complete then closes; an incomplete one is discarded and replayed from the new task's first
  step, since returns of two tasks are not ranked together. Where boundaries are hidden the method cannot tell, and
  an episode cut by the switch counts as complete.
Evaluation plays the ES centre (unperturbed coefficients), from fresh random weights every episode.

Where this differs from the paper: its members each played a full episode per generation on environments of
their own (population 200, 300 generations, a 'distance walked' reward on PyBullet's Ant); here members share the
stream's budget as described above, and the default population is 50 (the public code's default is 100): it
divides every evaluation interval of the built-in streams (the smallest is 50 steps); set 200 where the
stream's budgets allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cyclic_bench.errors import require
from cyclic_bench.es import OpenAIES, keyed_uniform, row_keys
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.plasticity import active_fraction, dormant_ratio
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG

RULES = {  # the paper's rule variants: the terms each one sums ("eta" multiplies the sum)
    "A": ("A",),
    "AD": ("A", "D"),
    "AD_lr": ("A", "D", "eta"),
    "ABC": ("A", "B", "C"),
    "ABC_lr": ("A", "B", "C", "eta"),
    "ABCD": ("A", "B", "C", "D"),
    "ABCD_lr": ("A", "B", "C", "D", "eta"),
}
EPS = 1e-12
BOOKKEEPING = (  # per-member and per-seed counters a checkpoint keeps
    "episodes",
    "episode_return",
    "episode_steps",
    "counts",
    "fitness",
    "scored",
    "scored_length",
    "scored_at_cut",
    "steps",
    "used_steps",
    "last_returns",
    "probe",
    "probe_count",
)


@dataclass
class HebbianConfig:
    name: str = "hebbian"  # registered method name
    hidden: list[int] = field(default_factory=lambda: [128, 64])  # hidden layer sizes (tanh, no biases)
    rule: str = "ABCD_lr"  # Hebbian rule variant, a key of RULES
    init_weight: float = 0.1  # weights start every episode U(-init_weight, init_weight)
    normalise_weights: bool = False  # divide each layer by its max |w| after every update (the paper's pixel setting)
    population: int = 50  # ES members per seed, even (antithetic pairs); each is one environment of the seed
    lr: float = 0.2  # ES learning rate
    lr_decay: float = 0.995  # lr multiplied by this after every generation ...
    lr_limit: float = 0.001  # ... while it is above this
    sigma: float = 0.1  # ES noise standard deviation
    sigma_decay: float = 0.999  # sigma multiplied by this after every generation ...
    sigma_limit: float = 0.01  # ... while it is above this
    l2: float = 0.01  # fitness penalty: l2 * mean(genome ** 2)
    probe_steps: int = 32  # recent steps of hidden activations kept for the dormant-unit diagnostics

    def __post_init__(self) -> None:
        require(self.rule in RULES, f"method.rule={self.rule!r} is not allowed; allowed: {', '.join(RULES)}")
        require(self.init_weight >= 0, f"method.init_weight={self.init_weight} is not allowed: it must be >= 0")
        require(self.probe_steps > 0, f"method.probe_steps={self.probe_steps} is not allowed: it must be > 0")
        require(
            len(self.hidden) > 0 and all(h > 0 for h in self.hidden),
            f"method.hidden={self.hidden} is not allowed: give one or more sizes > 0",
        )
        require(
            self.population >= 2 and self.population % 2 == 0,
            f"method.population={self.population} is not allowed: it must be even and >= 2 (antithetic pairs)",
        )
        require(self.lr > 0 and self.sigma > 0, f"method.lr={self.lr} and method.sigma={self.sigma} are not allowed: both must be > 0")
        for name in ("lr_decay", "sigma_decay"):
            require(0 < getattr(self, name) <= 1, f"method.{name}={getattr(self, name)} is not allowed: it must be in (0, 1]")
        require(self.l2 >= 0, f"method.l2={self.l2} is not allowed: it must be >= 0")


@register_method("hebbian")
class HebbianES(Method):
    Config = HebbianConfig
    uses_random_warmup = False  # evolution needs no replay buffer to fill
    terms: tuple[str, ...]  # the coefficients per synapse (set from the config's rule)

    def __init__(self, config: HebbianConfig, spec: MethodSpec):
        super().__init__(config, spec)
        S, P, device = spec.n_seeds, config.population, spec.device
        self.envs_per_seed = P
        sizes = [spec.obs_dim, *config.hidden, spec.action_dim]
        self.shapes = [(n_out, n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False)]
        self.terms = self.genome_terms()
        genome_size = len(self.terms) * sum(o * i for o, i in self.shapes)
        self.es = OpenAIES(
            self.initial_centre(SeedRNG(spec.seed_ids, stream=1, device=device), genome_size),
            spec.seed_ids,
            stream=2,
            population=P,
            lr=config.lr,
            lr_decay=config.lr_decay,
            lr_limit=config.lr_limit,
            sigma=config.sigma,
            sigma_decay=config.sigma_decay,
            sigma_limit=config.sigma_limit,
            l2=config.l2,
        )
        self.genomes = self.es.members()  # [S, P, D]: what each member plays with
        self.weight_keys = row_keys(spec.seed_ids, stream=3, rows=P, device=device)  # one stream of initial weights per member
        self.episodes = torch.zeros(S, P, dtype=torch.int64, device=device)  # episodes each member started (its draw number)
        self.eval_rng = SeedRNG(spec.seed_ids, stream=4, device=device)
        self.plastic = [torch.zeros(S, P, o, i, device=device) for o, i in self.shapes]  # live weights of the population
        self.eval_weights: list[torch.Tensor] = []

        zeros = lambda dtype=torch.float32: torch.zeros(S, P, dtype=dtype, device=device)
        self.episode_return, self.episode_steps = zeros(), zeros(torch.int64)
        self.counts = torch.ones(S, P, dtype=torch.bool, device=device)  # the running episode began with the current genome
        self.fitness, self.scored, self.scored_length = zeros(), zeros(torch.bool), zeros(torch.int64)
        self.scored_at_cut = zeros(torch.bool)  # scored on the latest step by a truncation (a task switch may have cut it)
        self.steps = torch.zeros(S, dtype=torch.int64, device=device)  # environment steps taken per seed
        self.used_steps = torch.zeros_like(self.steps)  # of which went into a fitness of a closed generation
        self.last_returns = torch.full((S, P), float("nan"), device=device)  # the members' returns of the last closed generation
        self.probe = [torch.zeros(S, P, config.probe_steps, h, device=device) for h in config.hidden]
        self.probe_count = 0

    # ---- what evolution searches (the static-weight baseline overrides these) -----------------------------
    def genome_terms(self) -> tuple[str, ...]:
        return RULES[self.config.rule]

    def initial_centre(self, rng: SeedRNG, size: int) -> torch.Tensor:
        """Coefficients start N(0, 1) (the paper's 'normal' initialisation)."""
        return rng.normal(size)

    def live_weights(self) -> list[torch.Tensor]:
        """The training population's current weights, [S, P, out, in] per layer."""
        return self.plastic

    def per_layer(self, genomes: torch.Tensor) -> list[torch.Tensor]:
        """[S, E, D] genomes -> views [S, E, C, out, in] per layer (C = len(self.terms))."""
        views, offset = [], 0
        for o, i in self.shapes:
            size = len(self.terms) * o * i
            views.append(genomes[..., offset : offset + size].unflatten(-1, (len(self.terms), o, i)))
            offset += size
        return views

    # ---- acting: one forward pass, then the Hebbian update of the weights just used ----------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        if explore:
            self.close_generations()
            weights, genomes = self.live_weights(), self.genomes
        else:
            weights, genomes = self.eval_weights, self.es.centre[:, None]
        activations = [obs]
        for w in weights:
            activations.append(torch.tanh(torch.einsum("seoi,sei->seo", w, activations[-1])))
        if explore:
            for probe, h in zip(self.probe, activations[1:-1], strict=True):
                probe[:, :, self.probe_count % self.config.probe_steps] = h
            self.probe_count += 1
        self.learn_within_episode(weights, genomes, activations)
        return activations[-1]

    def learn_within_episode(self, weights: list[torch.Tensor], genomes: torch.Tensor, activations: list[torch.Tensor]) -> None:
        """The rule, in place: w_l += dw(coefficients, pre = activations[l], post = activations[l + 1])."""
        for w, coefficients, pre, post in zip(weights, self.per_layer(genomes), activations[:-1], activations[1:], strict=True):
            c = dict(zip(self.terms, coefficients.unbind(2), strict=True))
            pre, post = pre[..., None, :], post[..., :, None]
            dw = c["A"] * post  # factored as ((A post + B) pre + C post + D), in place: few passes over the synapses
            if "B" in c:
                dw += c["B"]
            dw *= pre
            if "C" in c:
                dw.addcmul_(c["C"], post)
            if "D" in c:
                dw += c["D"]
            if "eta" in c:
                w.addcmul_(dw, c["eta"])
            else:
                w += dw
            if self.config.normalise_weights:
                w /= w.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(EPS)

    def on_episode_start(self, mask: torch.Tensor, explore: bool) -> None:
        if explore:
            self.start_training_episodes(mask)
        else:
            self.start_evaluation_episodes(mask)

    def start_training_episodes(self, mask: torch.Tensor) -> None:
        """Fresh random weights for the members where mask [S, P] is True, from each member's own stream."""
        if not mask.any():
            return
        size, bound = sum(o * i for o, i in self.shapes), self.config.init_weight
        draws = keyed_uniform(self.weight_keys[mask], self.episodes[mask], size, low=-bound, high=bound)
        for w, block in zip(self.plastic, draws.split([o * i for o, i in self.shapes], dim=1), strict=True):
            w[mask] = block.view(-1, *w.shape[2:])
        self.episodes += mask

    def start_evaluation_episodes(self, mask: torch.Tensor) -> None:
        """Fresh random weights [S, K, out, in] for the evaluation episodes starting where mask [S, K] is True."""
        bound, K = self.config.init_weight, mask.shape[1]
        fresh = [self.eval_rng.uniform(K, o, i, low=-bound, high=bound) for o, i in self.shapes]
        if self.eval_weights and self.eval_weights[0].shape[1] == K:
            fresh = [torch.where(mask[..., None, None], f, old) for f, old in zip(fresh, self.eval_weights, strict=True)]
        self.eval_weights = fresh

    # ---- fitness bookkeeping and evolution ----------------------------------------------------------------
    def observe(self, t: Transition) -> None:
        ended = t.terminated | t.truncated
        self.episode_return += t.reward
        self.episode_steps += 1
        self.steps += t.reward.shape[1]
        score = ended & self.counts & ~self.scored
        self.fitness = torch.where(score, self.episode_return, self.fitness)
        self.scored_length = torch.where(score, self.episode_steps, self.scored_length)
        self.scored |= score
        self.scored_at_cut = score & t.truncated & ~t.terminated
        self.episode_return = torch.where(ended, 0.0, self.episode_return)
        self.episode_steps = torch.where(ended, 0, self.episode_steps)
        self.counts |= ended

    @torch.no_grad()
    def close_generations(self) -> None:
        """ES update for every live seed whose members all have a fitness; its members take their new genomes."""
        ready = self.scored.all(dim=1) & self.active
        if not ready.any():
            return
        self.es.tell(self.fitness, ready)
        self.genomes[ready] = self.es.members(ready)
        self.last_returns[ready] = self.fitness[ready]
        self.used_steps += torch.where(ready, self.scored_length.sum(dim=1), 0)
        self.scored &= ~ready[:, None]
        self.counts = torch.where(ready[:, None], self.episode_steps == 0, self.counts)

    def on_task_start(self, task_index: int) -> None:
        self.scored &= ~self.scored_at_cut
        self.scored_at_cut.zero_()
        self.close_generations()
        self.scored.zero_()  # the rest of an unfinished generation is discarded: it replays on the new task

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """ES state, the last generation's returns, and dormant / active hidden units of the live population."""
        weights = torch.cat([w.flatten(1) for w in self.live_weights()], dim=1)
        out = {
            "generations": self.es.generation.float(),
            "fitness_mean": self.last_returns.mean(dim=1),
            "fitness_max": self.last_returns.amax(dim=1),
            "es_lr": self.es.lr.clone(),
            "es_sigma": self.es.sigma.clone(),
            "centre_norm": self.es.centre.norm(dim=1),
            "fitness_step_fraction": self.used_steps / self.steps.clamp_min(1),
            "weight_magnitude": weights.abs().mean(dim=1),
        }
        filled = min(self.probe_count, self.config.probe_steps)
        if filled:
            hidden = [p[:, :, :filled] for p in self.probe]  # members as the member axis, recent steps as the batch
            out["policy_dormant_ratio_tau0"] = dormant_ratio(hidden, 0.0)
            out["policy_dormant_ratio_tau0.1"] = dormant_ratio(hidden, 0.1)
            out["policy_active_units"] = active_fraction(hidden)
        return out

    def policy_weights(self) -> list[torch.Tensor]:
        return self.live_weights()

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"es": self.es}

    def extra_state(self) -> dict:
        """Live weights and bookkeeping; the genomes are not stored: they follow from the ES state."""
        state = {name: getattr(self, name) for name in BOOKKEEPING}
        return {**state, "live_weights": self.live_weights(), "eval_rng": self.eval_rng.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        for name in BOOKKEEPING:
            value = state[name]
            setattr(self, name, [v.clone() for v in value] if isinstance(value, list) else value)
        self.eval_rng.load_state_dict(state["eval_rng"])
        self.genomes = self.es.members()
        for mine, saved in zip(self.live_weights(), state["live_weights"], strict=True):
            mine.copy_(saved)
