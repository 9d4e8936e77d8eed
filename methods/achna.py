"""The ACh/NA bandit agent of the public configuration: a reliability index sets the learning rate and temperature.

Lee, Liebana Garcia, Clopath & Dabney 2024, "Lifelong Reinforcement Learning via Neuromodulation" (arXiv
2408.08446): after Doya 2002 (neuromodulators as meta-parameters: acetylcholine ~ learning rate, noradrenaline ~
softmax temperature) and Yu & Dayan 2005 (ACh reports expected uncertainty, NA unexpected uncertainty), validated
on the non-stationary bandit of protocols/bandit.py. This module follows the first author's public code,
github.com/seblee97/doya_dayu_bandits, branch `run_mode` at commit 41115d6 (2023-05-19), whose experiment config
`dd_bandits/experiments/config.yaml` (last changed in b3cb6a3) is the protocol's source. Its agents are
`dd_bandits/dd_mabs/td_doya_dayu_.py` (DoyaDayu, last changed in 17b1227) with the adaptation module
`dd_bandits/dd_mabs/adaptation_modules/reliability_index_adaptation.py` (last changed in 4a7b292), run by
`dd_bandits/runner.py`. Three agents of that config are registered:

    achna           "Doya Dayu (RI Temperature, LR)": learning rate = temperature = RI_frac
    achna_ratio     "Operation Test": learning rate RI_frac / (RI_frac + sqrt(mean_var)), temperature RI_frac
    achna_constant  "Constant LR / Temp": learning rate 0.1, temperature 0.1, every member learns every pull

Per seed: for each arm a, an ensemble of N members i, each with a mean estimate Q_ai and a second-moment estimate
S_ai, and one number E, the running mean squared prediction error. One pull of arm a paying r, in the order of
`DoyaDayu.update` (td_doya_dayu_.py), all quantities taken before the pull:

    learning rate        lr = learning_rate_rule (below)
    bootstrap mask       m_i ~ Bernoulli(mask_probability), fresh for every pull     (the jax mask in `loss`)
    prediction errors    delta_i = r - Q_ai
    mean                 Q_ai += lr m_i delta_i                 SGD on 1/2 m_i delta_i^2 (`loss`, optax.sgd)
    second moment        S_ai += 2 lr m_i (r^2 - S_ai)          SGD on m_i (r^2 - S_ai)^2 (`loss`, use_direct False)
    reliability          E += ri_step (mean_i delta_i^2 - E)    every member, masked or not (`ReliabilityIndexAdaptation.update`)

    RI = sqrt(E),  RI_frac = ri_multiple * RI                   (`ReliabilityIndexAdaptation.__call__`, multiple 0.1)
    learning_rate_rule   reliability: RI_frac;   ratio: RI_frac / (RI_frac + sqrt(mean_a Var_i Q_ai))
                         (`RATIO` in `DoyaDayu.__init__`, offset 0; "mean_var" in `scalar_log`);   constant: the value
    temperature_rule     reliability: T = RI_frac;   constant: the value
    policy               pi = softmax(softmax(Qbar) / T), Qbar_a = mean_i Q_ai      (`DoyaDayu.policy`: a softmax of
                         the ensemble means, then rlax.softmax(T) of those probabilities); before every arm has been
                         pulled, the first unpulled arm (`DoyaDayu.play`)
    initial values       Q_ai ~ N(0, q_init_scale^2),  S_ai ~ |N(0, s_init_scale^2)|    (`_setup_values`)
                         E = ri_init_scale * U^2, U ~ U(0, 1]                            (the module's constructor)

A context change makes every prediction error large, so E, and with it the learning rate and the temperature,
rises after a switch (more learning, more exploration) and decays back to the reward noise's level once the
estimates have caught up (ri_step = 0.1: about ten pulls). The ensemble only enters the ratio rule and the
diagnostics; the policy uses its means. Defaults are the config's "Doya Dayu (RI Temperature, LR)": N = 20, mask
probability 0.5, Q init scale 0.01, S init scale 0.5, RI step 0.1, multiple 0.1, EMA start 10 U^2.

Measured (BENCHMARKS.md, 100 seeds of the public bandit): over the 10 steps from a context change the learning
rate and temperature average 6.8 times their level of the 50 steps before, and by the end of a stream they sit
near the constant agent's 0.1; `achna`, `achna_ratio` and `achna_constant` have the same regret, seed for seed,
all far below epsilon-greedy's.

Differences from the public code, and why:
- Seeds are a tensor axis in float64 with counter-based per-seed random streams (the code runs one numpy/jax agent
  per seed in float32, its E start drawn from numpy's global generator). U is drawn on (0, 1] rather than [0, 1)
  so that E, the temperature and the ratio's denominator are never 0.
- The agents are those listed in config.yaml. At the branch head `run.py` hands the runner the agents of
  `config_changes.py` instead (there, a discounted-UCB grid), and DoyaDayu requires an `offset` argument (added in
  44b2b23, after the config's last change) that the config does not set; offset 0 is the value `config_changes.py`
  gives its agents, and only the ratio rule adds it.
- The ratio rule follows config.yaml's "Operation Test", whose second operand is mean_var, the ensemble variance of
  the means averaged over arms (`ratio_denominator=epistemic`). The ablation grid of `config_changes.py` (commits
  e09afb7 to a1a6331) uses var_mean, the mean of the second-moment estimates S, instead, with S init scale 0.1;
  `ratio_denominator=second_moment` gives that operand.
- The code also keeps a per-arm E and a second module with multiple 1 and its own random start; neither reaches
  the agent's learning rate or temperature, so neither is kept (the `reliability_index` diagnostic is sqrt(E) of
  the E that drives the agent). `lr_per_arm` is stored but unused by DoyaDayu.
- Expected uncertainty (a diagnostic only) is max(mean_i S_ai - Qbar_a^2, 0): the code's `predict_bandits` clips
  the same quantity to [100, 100] (its lower bound is BASELINE = 100), so its logged variance is constant.
- The paper's text could not be compared line by line here (only its abstract and framework were at hand), so
  nothing in this module is called the paper's agent. The same repository's later branch `two_ab` (Dec 2023 to Feb
  2024) holds a quantile-regression agent (`dd_bandits/run_qr.py`) with other learning-rate and temperature rules;
  it is not implemented here. The January 2023 agent of branch `master` is methods/achna_jan2023.py.

Diagnostics (per seed, at each evaluation): learning_rate and temperature (what the next pull uses),
reliability_index (RI), expected_uncertainty (mean over arms of the aleatoric estimate above, the ACh quantity of
Yu & Dayan) and unexpected_uncertainty (mean over arms of Var_i Q_ai, the ensemble's epistemic spread, NA's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.bandit_baselines import BanditMethod

from cyclic_bench.errors import require
from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG

INIT_STREAM = 2  # random-stream id of the initial estimates (the policy and masks use BanditMethod's stream 1)
LEARNING_RATE_RULES = ("reliability", "ratio", "constant")
TEMPERATURE_RULES = ("reliability", "constant")
RATIO_DENOMINATORS = ("epistemic", "second_moment")


@dataclass
class AChNAConfig:
    name: str = "achna"  # registered method name
    n_ensemble: int = 20  # members per arm (n_ens)
    mask_probability: float = 0.5  # chance that a member learns from a pull (mask_p)
    q_init_scale: float = 0.01  # Q starts N(0, q_init_scale^2) per member (q_initialisation)
    s_init_scale: float = 0.5  # S starts |N(0, s_init_scale^2)| per member (s_initialisation)
    learning_rate_rule: str = "reliability"  # reliability: RI_frac | ratio: RI_frac / (RI_frac + sqrt(...)) | constant
    temperature_rule: str = "reliability"  # reliability: RI_frac | constant
    ratio_denominator: str = "epistemic"  # under the square root of the ratio: epistemic (mean_var) | second_moment (var_mean)
    constant_learning_rate: float = 0.1  # the learning rate under learning_rate_rule=constant
    constant_temperature: float = 0.1  # the temperature under temperature_rule=constant
    ri_step: float = 0.1  # step size of E, the running mean squared prediction error (the module's learning_rate)
    ri_multiple: float = 0.1  # RI_frac = ri_multiple * sqrt(E) (the module's multiple)
    ri_init_scale: float = 10.0  # E starts at ri_init_scale * U^2, U ~ U(0, 1]

    def __post_init__(self):
        require(self.n_ensemble >= 2, f"method.n_ensemble={self.n_ensemble} is not allowed: an ensemble needs >= 2 members")
        require(0 < self.mask_probability <= 1, f"method.mask_probability={self.mask_probability} is not allowed: it must lie in (0, 1]")
        for field, allowed in (
            ("learning_rate_rule", LEARNING_RATE_RULES),
            ("temperature_rule", TEMPERATURE_RULES),
            ("ratio_denominator", RATIO_DENOMINATORS),
        ):
            value = getattr(self, field)
            require(value in allowed, f"method.{field}={value} is not allowed: it must be one of {', '.join(allowed)}")
        for field in ("q_init_scale", "s_init_scale"):
            require(getattr(self, field) >= 0, f"method.{field}={getattr(self, field)} is not allowed: it must be >= 0")
        for field in ("constant_learning_rate", "constant_temperature", "ri_multiple", "ri_init_scale"):
            require(getattr(self, field) > 0, f"method.{field}={getattr(self, field)} is not allowed: it must be > 0")
        require(0 < self.ri_step <= 1, f"method.ri_step={self.ri_step} is not allowed: it must lie in (0, 1]")


@register_method("achna_constant", learning_rate_rule="constant", temperature_rule="constant", mask_probability=1.0)
@register_method("achna_ratio", learning_rate_rule="ratio")
@register_method("achna")
class AChNA(BanditMethod):
    Config = AChNAConfig

    def __init__(self, config: AChNAConfig, spec: MethodSpec):
        super().__init__(config, spec)
        A, N = self.A, config.n_ensemble
        init_rng = SeedRNG(spec.seed_ids, stream=INIT_STREAM, device=spec.device)
        self.stats.update(
            q=config.q_init_scale * init_rng.normal(A, N).to(torch.float64),
            s=(config.s_init_scale * init_rng.normal(A, N).to(torch.float64)).abs(),
            squared_error=config.ri_init_scale * (1.0 - init_rng.uniform(1)[:, 0].to(torch.float64)).square(),
        )

    # ---- the ensemble's uncertainties -----------------------------------------------------------------------
    def means(self) -> torch.Tensor:
        """[S, arms]: Qbar, the ensemble's mean estimate of each arm's reward."""
        return member_mean(self.stats["q"])

    def epistemic(self) -> torch.Tensor:
        """[S, arms]: Var_i Q_ai, the spread of the members' means (unexpected uncertainty)."""
        return member_variance(self.stats["q"])

    def aleatoric(self) -> torch.Tensor:
        """[S, arms]: max(mean_i S_ai - Qbar_a^2, 0), the estimated reward variance (expected uncertainty)."""
        return (self.stats["s"].mean(dim=2) - self.means().square()).clamp(min=0.0)

    # ---- the modulated rates --------------------------------------------------------------------------------
    def reliability_index(self) -> torch.Tensor:
        """[S]: RI = sqrt(E), the root of the running mean squared prediction error."""
        return self.stats["squared_error"].sqrt()

    def learning_rate(self) -> torch.Tensor:
        """[S]: the learning rate of the next pull, by `learning_rate_rule`."""
        cfg = self.config
        if cfg.learning_rate_rule == "constant":
            return torch.full((self.S,), cfg.constant_learning_rate, dtype=torch.float64, device=self.spec.device)
        ri_frac = cfg.ri_multiple * self.reliability_index()
        if cfg.learning_rate_rule == "reliability":
            return ri_frac
        spread = self.epistemic() if cfg.ratio_denominator == "epistemic" else self.stats["s"].mean(dim=2)
        return ri_frac / (ri_frac + spread.mean(dim=1).sqrt())

    def temperature(self) -> torch.Tensor:
        """[S]: the softmax temperature of the next choice, by `temperature_rule`."""
        if self.config.temperature_rule == "constant":
            return torch.full((self.S,), self.config.constant_temperature, dtype=torch.float64, device=self.spec.device)
        return self.config.ri_multiple * self.reliability_index()

    # ---- acting ---------------------------------------------------------------------------------------------
    def policy(self) -> torch.Tensor:
        """[S, arms]: softmax(softmax(Qbar) / T), the public code's double softmax."""
        return torch.softmax(torch.softmax(self.means(), dim=1) / self.temperature()[:, None], dim=1)

    def choose(self, envs: int) -> torch.Tensor:
        return self.sample(self.policy(), envs)

    def greedy(self) -> torch.Tensor:
        return self.means().argmax(dim=1)

    # ---- learning -------------------------------------------------------------------------------------------
    def learn(self, arm: torch.Tensor, reward: torch.Tensor, live: torch.Tensor) -> None:
        rate = self.learning_rate()[:, None]  # [S, 1], from the estimates before this pull
        mask = (self.rng.uniform(self.config.n_ensemble) < self.config.mask_probability).to(torch.float64)
        step = rate * mask * live[:, None]  # [S, N]
        rows = torch.arange(self.S, device=arm.device)
        q, s = self.stats["q"][rows, arm], self.stats["s"][rows, arm]  # [S, N]
        delta = reward[:, None] - q
        self.stats["q"][rows, arm] = q + step * delta
        self.stats["s"][rows, arm] = s + 2.0 * step * (reward[:, None].square() - s)
        error = self.stats["squared_error"]
        self.stats["squared_error"] = torch.where(live, error + self.config.ri_step * (delta.square().mean(dim=1) - error), error)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {
            "learning_rate": self.learning_rate().float(),
            "temperature": self.temperature().float(),
            "reliability_index": self.reliability_index().float(),
            "expected_uncertainty": self.aleatoric().mean(dim=1).float(),
            "unexpected_uncertainty": self.epistemic().mean(dim=1).float(),
        }


def member_mean(estimates: torch.Tensor) -> torch.Tensor:
    """[S, arms]: the mean over ensemble members of estimates [S, arms, members]."""
    return estimates.mean(dim=2)


def member_variance(estimates: torch.Tensor) -> torch.Tensor:
    """[S, arms]: the population variance over ensemble members of estimates [S, arms, members]."""
    return estimates.var(dim=2, unbiased=False)
