"""The January 2023 ACh/NA bandit agent: learning rate epi / (epi + ale) per arm, temperature from epistemic surprise.

An earlier instance of the agent of Lee, Liebana Garcia, Clopath & Dabney 2024 ("Lifelong Reinforcement Learning via
Neuromodulation", arXiv 2408.08446; methods/achna.py holds the agent of the public experiment config). It follows
the first author's public code, github.com/seblee97/doya_dayu_bandits, branch `master` at commit b191cbc
(2023-01-13): `dd_mabs/doya_dayu.py` (DoyaDaYu, last changed in de5b8fa) with the settings of `agents.py`. At that
commit every DoyaDaYu agent in `agents.py` is commented out, and the later branch `run_mode` replaced it with the
reliability-index agent; it is kept as a documented variant, not as the public configuration. Per seed, per arm a,
an ensemble of N estimators of the reward's mean Q and second moment S:

    pull arm a, see reward r; member i learns with probability mask_probability (bootstrap mask):
        alpha_i = alpha_a * lr_noise * perm(linspace(0, 1, N))_i        (a fresh permutation every pull)
        Q_ai += alpha_i (r - Q_ai)          S_ai += alpha_i (r^2 - S_ai)
    epistemic (unexpected) uncertainty   epi_a = Var_i(Q_ai)
    aleatoric (expected) uncertainty     ale_a = clip(mean_i S_ai - (mean_i Q_ai)^2, 0, 100)
    ACh, the learning rate               alpha_a = epi_a / (epi_a + ale_a)
    NA, the temperature                  T = sum_a softmax(Qbar)_a epi_a   (Qbar_a = mean_i Q_ai)
                                         m = T - floor whenever T < m      (running minimum, m starts at +inf)
                                         tau = T - m
    policy                               softmax(Qbar / tau) once every arm has been pulled; before, the first
                                         unpulled arm (as the public code).

The intent: noise the agent has learned to expect raises ale, which lowers alpha (averaging more); a context
change moves the members apart (they learn at different rates), which raises epi, so alpha and tau should rise
together. tau is measured against the lowest policy-weighted epistemic uncertainty seen, so a surprise (epi above
its floor) explores more.

Choices, where the public code leaves room: the weights of T are the unit-temperature softmax of Qbar, as in the
code (our reading of "policy-weighted"); T and its minimum are updated after each learning step (the code does it
when choosing the next arm, from the same estimates) and only once every arm has been pulled; alpha is 0 where
epi + ale = 0 (the code divides by zero there). Defaults are the code's DoyaDaYu agent (N = 20, Q init N(0, 0.5^2),
S init |N(0, 0.01^2)|, lr_noise 1.25, floor 1e-4) with bootstrap masks of probability 0.5 (the tabular variant's
default; the code's DoyaDaYu agents use 1.0, which measured no better). Seeds are a tensor axis in float64 with
counter-based per-seed random streams (the code runs one numpy agent per seed).

Measured (BENCHMARKS.md, 100 seeds of the public bandit): inside a stable context the members' spread shrinks with
alpha, so alpha decays towards 0 (median 0.0046 at step 500, 0.00026 at 8,000); after a switch the aleatoric
estimate absorbs the shift of the mean, so alpha barely moves (1.15 times its level before, interval 0.94 to 1.42)
while tau rises (3.6 times); this instance has more regret than epsilon-greedy and than the agents of the public
config (tests/methods/test_achna_jan2023.py shows alpha falling at a switch on a hand-made sequence).

Diagnostics (per seed, at each evaluation): expected_uncertainty (mean ale over arms, the ACh signal),
unexpected_uncertainty (T, the NA signal), learning_rate (alpha of the last pulled arm) and temperature (tau).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.achna import INIT_STREAM, member_mean, member_variance
from cyclic_bench.methods.bandit_baselines import BanditMethod

from cyclic_bench.errors import require
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG


@dataclass
class AChNAJan2023Config:
    name: str = "achna_jan2023"  # registered method name
    n_ensemble: int = 20  # estimators per arm
    mask_probability: float = 0.5  # chance that a member learns from a pull (bootstrap mask)
    lr_noise: float = 1.25  # member step sizes: alpha * lr_noise * a random permutation of linspace(0, 1, N)
    q_init_scale: float = 0.5  # Q starts N(0, q_init_scale^2) per member
    s_init_scale: float = 0.01  # S starts |N(0, s_init_scale^2)| per member
    temperature_floor: float = 1e-4  # the running minimum is set this far below the lowest T seen
    aleatoric_max: float = 100.0  # upper clip of the aleatoric estimate

    def __post_init__(self):
        require(self.n_ensemble >= 2, f"method.n_ensemble={self.n_ensemble} is not allowed: an ensemble needs >= 2 members")
        require(0 < self.mask_probability <= 1, f"method.mask_probability={self.mask_probability} is not allowed: it must lie in (0, 1]")
        for field in ("lr_noise", "temperature_floor", "aleatoric_max"):
            require(getattr(self, field) > 0, f"method.{field}={getattr(self, field)} is not allowed: it must be > 0")
        for field in ("q_init_scale", "s_init_scale"):
            require(getattr(self, field) >= 0, f"method.{field}={getattr(self, field)} is not allowed: it must be >= 0")


@register_method("achna_jan2023")
class AChNAJan2023(BanditMethod):
    Config = AChNAJan2023Config

    def __init__(self, config: AChNAJan2023Config, spec: MethodSpec):
        super().__init__(config, spec)
        S, A, N = self.S, self.A, config.n_ensemble
        init_rng = SeedRNG(spec.seed_ids, stream=INIT_STREAM, device=spec.device)
        self.stats.update(
            q=config.q_init_scale * init_rng.normal(A, N).to(torch.float64),
            s=(config.s_init_scale * init_rng.normal(A, N).to(torch.float64)).abs(),
            running_min=torch.full((S,), float("inf"), dtype=torch.float64, device=spec.device),
            temperature=torch.full((S,), float("nan"), dtype=torch.float64, device=spec.device),
            last_learning_rate=torch.full((S,), float("nan"), dtype=torch.float64, device=spec.device),
        )
        self.member_rates = config.lr_noise * torch.linspace(0.0, 1.0, N, dtype=torch.float64, device=spec.device)

    def learned(self) -> list[str]:
        return ["q", "s"]  # the rest start as NaN or +inf on purpose (no temperature, no minimum yet)

    # ---- uncertainties and the modulated rates --------------------------------------------------------------
    def means(self) -> torch.Tensor:
        """[S, arms]: the ensemble's mean estimate of each arm's reward."""
        return member_mean(self.stats["q"])

    def epistemic(self) -> torch.Tensor:
        """[S, arms]: unexpected uncertainty, the variance of the members' means."""
        return member_variance(self.stats["q"])

    def aleatoric(self) -> torch.Tensor:
        """[S, arms]: expected uncertainty, the estimated reward variance."""
        return (self.stats["s"].mean(dim=2) - self.means().square()).clamp(0.0, self.config.aleatoric_max)

    def learning_rates(self) -> torch.Tensor:
        """[S, arms]: ACh, epi / (epi + ale) (0 where both vanish)."""
        epi = self.epistemic()
        total = epi + self.aleatoric()
        return torch.where(total > 0, epi / total.clamp(min=1e-300), 0.0)

    def policy_weighted_epistemic(self) -> torch.Tensor:
        """[S]: T, the epistemic uncertainty averaged under the unit-temperature softmax of the mean estimates."""
        return (torch.softmax(self.means(), dim=1) * self.epistemic()).sum(dim=1)

    def update_temperature(self, live: torch.Tensor) -> None:
        """NA: tau = T - m, with m the running minimum of T (minus the floor), for seeds that have pulled every arm."""
        ready = live & self.stats["seen"].all(dim=1)
        value = self.policy_weighted_epistemic()
        lower = ready & (value < self.stats["running_min"])
        self.stats["running_min"] = torch.where(lower, value - self.config.temperature_floor, self.stats["running_min"])
        self.stats["temperature"] = torch.where(ready, value - self.stats["running_min"], self.stats["temperature"])

    # ---- acting ---------------------------------------------------------------------------------------------
    def policy(self) -> torch.Tensor:
        """[S, arms]: softmax(Qbar / tau); uniform for seeds without a temperature yet (they play unpulled arms)."""
        tau = self.stats["temperature"].nan_to_num(1.0)[:, None]
        return torch.softmax(self.means() / tau, dim=1)

    def choose(self, envs: int) -> torch.Tensor:
        return self.sample(self.policy(), envs)

    def greedy(self) -> torch.Tensor:
        return self.means().argmax(dim=1)

    # ---- learning -------------------------------------------------------------------------------------------
    def learn(self, arm: torch.Tensor, reward: torch.Tensor, live: torch.Tensor) -> None:
        cfg, N = self.config, self.config.n_ensemble
        rate = self.learning_rates().gather(1, arm[:, None])  # [S, 1], before this pull, as the public code
        draws = self.rng.uniform(2, N)
        order = torch.argsort(draws[:, 0], dim=1, stable=True)  # a fresh permutation per seed
        mask = (draws[:, 1] < cfg.mask_probability).to(torch.float64)
        alpha = rate * self.member_rates[order] * mask * live[:, None]  # [S, N]
        rows = torch.arange(self.S, device=arm.device)
        q, s = self.stats["q"][rows, arm], self.stats["s"][rows, arm]  # [S, N]
        self.stats["q"][rows, arm] = q + alpha * (reward[:, None] - q)
        self.stats["s"][rows, arm] = s + alpha * (reward[:, None].square() - s)
        self.stats["last_learning_rate"] = torch.where(live, rate[:, 0], self.stats["last_learning_rate"])

    def observe(self, t: Transition) -> None:
        super().observe(t)
        self.update_temperature(self.active)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {
            "expected_uncertainty": self.aleatoric().mean(dim=1).float(),
            "unexpected_uncertainty": self.policy_weighted_epistemic().float(),
            "learning_rate": self.stats["last_learning_rate"].float(),
            "temperature": self.stats["temperature"].float(),
        }
