"""Hebbian meta-learning with evolution strategies (Najarro & Risi, NeurIPS 2020, "Meta-Learning through Hebbian
Plasticity in Random Networks", arXiv 2007.02686; public code github enajx/HebbianMetaLearning at ec65143).

The policy network obs -> 128 -> 64 -> act (tanh after every layer, the last one giving actions in [-1, 1]; no
biases) starts every episode from random weights U(-0.1, 0.1) and changes them after every step by a per-synapse
Hebbian rule. Evolution (OpenAI-ES, `cyclic_bench.es`) learns only the rule's coefficients, started N(0, 1).
The paper's rule, ABCD with a learning rate, for the synapse from unit i (presynaptic activation o_i) to unit j
(postsynaptic o_j) of the step just taken:

    dw_ji = eta_ji * (A_ji * o_i * o_j + B_ji * o_i + C_ji * o_j + D_ji)        (5 coefficients per synapse)

Its other variants are options (`rule`): A, AD, AD_lr, ABC, ABC_lr, ABCD, ABCD_lr: the named terms summed, times
eta where the name ends in `_lr` (`ABCD_lr` is the public code's `hebbian_update_ABCD_lr_D_in`, D inside eta).
ES defaults are the authors' command line: population 200, lr 0.2 decayed by 0.995 per generation while above
0.001, sigma 0.1 decayed by 0.999 while above 0.01, fitness penalty 0.01 * mean(coefficients ** 2).

Seed-batched: S seeds x P members. Live weights are [S, P, out, in], one einsum per layer per step; a member's
coefficients are [S, P, C, out, in] views of its genome (the ES member), and the rule is element-wise.

Playing a population in a step-budgeted stream. The engine steps all S x P environments every iteration, and each
iteration charges P steps to every seed. A generation is a window of `generation_steps` iterations (L), the same
for every member and every seed, so a generation costs P x L steps per seed and a run holds about
total_steps / (P x L) of them:
- Every member plays its genome for the whole window. Its environment restarts whenever an episode ends (the
  engine's auto-reset), and every episode starts from fresh random weights, so no step is idle.
- Fitness (`fitness`): `per_episode` (default) is the window's summed reward divided by the number of episodes the
  member played in it, where an episode cut by the window's start or end counts as one; when episodes fill the
  window exactly (every episode lasts L steps) it is the episode return, the paper's fitness. `summed` is the
  window's summed reward.
- The generation closes (ES update, new genomes) on the window's last step. Members whose episode goes on past it
  play its rest with the new genome, from fresh random weights (a new life in mid-episode: the environment has no
  reset that a method could call); the others start their next episode with it.
- Task switches do not cut a generation: a window running at a switch goes on in the next task's environments
  (all seeds switch together, and every member of a seed plays the same steps of both tasks, so their fitnesses
  still rank fairly), whether or not the protocol shows boundaries. This is also how a generation averages over
  the training morphologies in the paper's protocol (`ant_morphology` with `variant=paper`: visits of one episode
  per member; set L to the number of training morphologies x the episode length, e.g. 2000).
- A window cut short by the end of the stream closes with the steps it has, so the final evaluation sees it.
The diagnostic `fitness_step_fraction` is the share of the charged steps that went into the fitness of a closed
generation (1 at the end of a run; below 1 while a window is open); `fitness_episodes` is the mean number of
episodes per member in the last closed window.
Evaluation plays the ES centre (unperturbed coefficients), from fresh random weights every episode.

Where this differs from the paper and the authors' code, and why:
- Budget: there each member played one whole episode per training morphology per generation, in processes of its
  own, and a member that finished early cost nothing; here the population shares the stream's step budget in
  lockstep, so a generation is the fixed window above, an early-ending episode is followed by another one inside
  the window, and the fitness is the mean return per episode of the window (equal to the paper's when no episode
  ends early or straddles the window's edges).
- Reward and episode are the stream's: Gymnasium's rewards in `cyclic_mujoco`; the authors' quadruped fitness
  (distance walked after a 40-step burn-in, their early stops) is `ant_morphology`'s `reward=distance`, the default
  of its `variant=paper`, on MuJoCo's Ant rather than PyBullet's.
- Weight normalisation (`normalise_weights`): the authors' code divides each layer by its max |w| after every
  update in every environment that is not a PyBullet one (CarRacing and any Gym environment), and not for the
  PyBullet quadruped. This suite's tasks are MuJoCo stand-ins for that quadruped (the paper's only state-vector
  experiment), so the default is the quadruped's: no normalisation; `normalise_weights=true` is the code's rule for
  other Gym environments.
- Actions are tanh of the last layer, as the authors' code does for PyBullet tasks (for other Gym environments it
  clips the raw output instead).
- Noise: counter-based per-seed streams, so a seed evolves the same alone or in a batch; centered ranks break ties
  by member index (the code's argsort leaves them arbitrary). The public code's extra rules `ABCD_lr_D_out` and
  `ABCD_lr_D_in_and_out` (not in the paper) and co-evolved initial weights are not offered.
- Population: every evaluation interval and task visit of the stream must be a multiple of P (the engine steps
  the whole population at once, and says so if not): `cyclic_mujoco`'s `demo` and `lite` sizes (evaluations every
  1,500 and 12,500 steps) need e.g. `method.population=100`, the `smoke` sizes e.g. `method.population=4`; and
  `generation_steps` should be the stream's episode length (or a multiple of it) for the fitness to be the return
  of whole episodes. Left unset, it is the stream's own window where the protocol has one (`ant_morphology`'s
  `variant=paper`: one episode on each training morphology) and the paper's 1000-step episode otherwise.
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
FITNESS = ("per_episode", "summed")
RuleTerms = list[dict[str, torch.Tensor]]  # per layer, the rule's coefficient arrays by term name
EPS = 1e-12
BOOKKEEPING = (  # per-member and per-seed counters a checkpoint keeps
    "episodes",
    "window_return",
    "window_episodes",
    "window_steps",
    "steps",
    "scored_steps",
    "last_returns",
    "last_episodes",
    "probe",
    "probe_count",
)


EPISODE_STEPS = 1000  # the paper's episode length: the fitness window where neither the config nor the stream sets one


@dataclass
class HebbianConfig:
    name: str = "hebbian"  # registered method name
    hidden: list[int] = field(default_factory=lambda: [128, 64])  # hidden layer sizes (tanh, no biases)
    rule: str = "ABCD_lr"  # Hebbian rule variant, a key of RULES
    init_weight: float = 0.1  # weights start every episode U(-init_weight, init_weight)
    normalise_weights: bool = False  # divide each layer by its max |w| after every update (the code's rule off PyBullet)
    population: int = 200  # ES members per seed, even (antithetic pairs); each is one environment of the seed
    generation_steps: int | None = None  # L: steps every member plays per generation; None: the stream's window, else 1000
    fitness: str = "per_episode"  # per_episode: the window's reward per episode played | summed: the window's reward
    lr: float = 0.2  # ES learning rate
    lr_decay: float = 0.995  # lr multiplied by this after every generation ...
    lr_limit: float = 0.001  # ... while it is above this
    sigma: float = 0.1  # ES noise standard deviation
    sigma_decay: float = 0.999  # sigma multiplied by this after every generation ...
    sigma_limit: float = 0.01  # ... while it is above this
    l2: float = 0.01  # fitness penalty: l2 * mean(genome ** 2)
    probe_steps: int = 32  # recent steps of hidden activations kept for the dormant-unit diagnostics

    def __post_init__(self) -> None:
        require(self.rule in RULES, f"method.rule={self.rule!r} is not allowed: use one of {', '.join(RULES)}")
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
        require(
            self.generation_steps is None or self.generation_steps > 0,
            f"method.generation_steps={self.generation_steps} is not allowed: it must be > 0 (or null: the stream's window)",
        )
        require(self.fitness in FITNESS, f"method.fitness={self.fitness!r} is not allowed: use one of {', '.join(FITNESS)}")
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
        self.generation_steps = config.generation_steps or spec.generation_steps or EPISODE_STEPS
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
        self.training_terms = self.rule_terms(self.genomes)  # the members' rule coefficients, eta folded in
        self.weight_keys = row_keys(spec.seed_ids, stream=3, rows=P, device=device)  # one stream of initial weights per member
        self.episodes = torch.zeros(S, P, dtype=torch.int64, device=device)  # weight draws of each member so far
        self.eval_rng = SeedRNG(spec.seed_ids, stream=4, device=device)
        self.plastic = [torch.zeros(S, P, o, i, device=device) for o, i in self.shapes]  # live weights of the population
        self.eval_weights: list[torch.Tensor] = []

        self.window_return = torch.zeros(S, P, device=device)  # each member's summed reward in the open window
        self.window_episodes = torch.ones(S, P, dtype=torch.int64, device=device)  # episodes it played in the window
        self.window_steps = 0  # iterations of the open window so far
        self.steps = 0  # environment steps taken per seed (the same for every seed)
        self.scored_steps = torch.zeros(S, dtype=torch.int64, device=device)  # of which went into a closed generation's fitness
        self.last_returns = torch.full((S, P), float("nan"), device=device)  # the members' fitness in the last closed generation
        self.last_episodes = torch.full((S, P), float("nan"), device=device)  # and the episodes each played in it
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

    def rule_terms(self, genomes: torch.Tensor) -> RuleTerms:
        """Per layer, the rule's coefficients [S, E, out, in] by name, eta multiplied into the others:
        eta (A o_i o_j + B o_i + C o_j + D) = (eta A) o_i o_j + ..., one array fewer to read at every step."""
        layers = []
        for coefficients in self.per_layer(genomes):
            c = dict(zip(self.terms, coefficients.unbind(2), strict=True))
            eta = c.pop("eta", None)
            layers.append(c if eta is None else {name: value * eta for name, value in c.items()})
        return layers

    # ---- acting: one forward pass, then the Hebbian update of the weights just used ----------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        if explore:
            weights, terms = self.live_weights(), self.training_terms
        else:
            weights, terms = self.eval_weights, self.rule_terms(self.es.centre[:, None])
        activations = [obs]
        for w in weights:
            activations.append(torch.tanh(torch.einsum("seoi,sei->seo", w, activations[-1])))
        if explore:
            for probe, h in zip(self.probe, activations[1:-1], strict=True):
                probe[:, :, self.probe_count % self.config.probe_steps] = h
            self.probe_count += 1
        self.learn_within_episode(weights, terms, activations)
        return activations[-1]

    def learn_within_episode(self, weights: list[torch.Tensor], terms: RuleTerms, activations: list[torch.Tensor]) -> None:
        """The rule, in place: w_l += (A post + B) pre + (C post + D), with pre = activations[l], post = activations[l + 1]."""
        for w, c, pre, post in zip(weights, terms, activations[:-1], activations[1:], strict=True):
            pre, post = pre[..., None, :], post[..., :, None]
            w.addcmul_(torch.addcmul(c["B"], c["A"], post) if "B" in c else c["A"] * post, pre)
            if "C" in c:
                w.addcmul_(c["C"], post)
            if "D" in c:
                w += c["D"]
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

    # ---- fitness windows and evolution --------------------------------------------------------------------
    def observe(self, t: Transition) -> None:
        ended = t.terminated | t.truncated
        self.window_return += t.reward
        self.window_steps += 1
        self.steps += t.reward.shape[1]
        if self.window_steps < self.generation_steps and self.steps < self.spec.total_steps:
            self.window_episodes += ended  # the next episode is one more of this window
            return
        self.close_generation(continuing=~ended)

    @torch.no_grad()
    def close_generation(self, continuing: torch.Tensor) -> None:
        """ES update of every live seed from the window's fitness; members take their new genomes, and those whose
        episode goes on (`continuing` [S, P]) start a new life in it."""
        live = self.active
        fitness = self.window_return / self.window_episodes if self.config.fitness == "per_episode" else self.window_return
        self.es.tell(fitness, live)
        self.genomes[live] = self.es.members(live)
        self.training_terms = self.rule_terms(self.genomes)
        self.last_returns[live] = fitness[live]
        self.last_episodes[live] = self.window_episodes[live].float()
        self.scored_steps += live * self.window_steps * self.config.population
        self.window_return.zero_()
        self.window_episodes.fill_(1)
        self.window_steps = 0
        self.start_training_episodes(continuing & live[:, None])

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """ES state, the last generation's fitness, and dormant / active hidden units of the live population."""
        weights = torch.cat([w.flatten(1) for w in self.live_weights()], dim=1)
        out = {
            "generations": self.es.generation.float(),
            "fitness_mean": self.last_returns.mean(dim=1),
            "fitness_max": self.last_returns.amax(dim=1),
            "fitness_episodes": self.last_episodes.mean(dim=1),
            "es_lr": self.es.lr.clone(),
            "es_sigma": self.es.sigma.clone(),
            "centre_norm": self.es.centre.norm(dim=1),
            "fitness_step_fraction": self.scored_steps / max(self.steps, 1),
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
        self.training_terms = self.rule_terms(self.genomes)
        for mine, saved in zip(self.live_weights(), state["live_weights"], strict=True):
            mine.copy_(saved)
