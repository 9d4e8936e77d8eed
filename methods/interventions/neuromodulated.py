"""Neuromodulated plasticity: expected and unexpected uncertainty of the TD error set each seed's learning rate and exploration.

The principle of the ACh/NA bandit agent (Lee, Liebana Garcia, Clopath & Dabney 2024, arXiv 2408.08446;
methods/achna.py) carried to a deep agent, after Yu & Dayan 2005: acetylcholine reports expected uncertainty
(the noise an agent has learned to expect), noradrenaline unexpected uncertainty (surprise at a change of
context); after Doya 2002 they set the learning rate and the exploration. Here the uncertainty is that of the
critic's TD errors, tracked per seed at two time scales, once per critic update t:

    e_t = 1/2 sum_{j=1,2} mean_batch (Q_j(s, a) - y)^2       squared TD error of both critics (the learner's squared_td_error)
    E_t = E_{t-1} + beta_E (e_t - E_{t-1})                    expected uncertainty (ACh): slow average, beta_E = 1e-3
    F_t = F_{t-1} + beta_F (e_t - F_{t-1})                    recent TD errors: fast average, beta_F = 5e-2
    U_t = max(F_t - E_t, 0)                                   unexpected uncertainty (NA): recent errors above the expected
    g_t = U_t / (U_t + E_t)                                   surprise share in [0, 1), like achna_jan2023's epi / (epi + ale)
    lr_t = lr * (1 + kappa_lr * g_t)                          every network's Adam learning rate (SeedAdam's per-seed lr)
    s_t = 1 + kappa_sigma * g_t                               the learner's exploration scale

E and F start at the first e. While TD errors stay at the level the agent has come to expect, however noisy,
F ~ E and g ~ 0: the plain learner. When the task changes the TD errors jump, F runs ahead of E, g rises towards 1 and the
seed learns faster and explores more; as E catches up (about 1 / beta_E updates) the boost fades. High stationary
noise raises E (ACh) and, through the denominator, damps g. The modulation never looks at task boundaries: it
detects changes from the TD errors alone, so it works where the protocol hides them. This is this suite's own
instance of the framework (the paper gives none for deep RL); kappa_lr = kappa_sigma = 1 double the rate and
the exploration scale at full surprise.

What the exploration scale moves is the learner's: on TD3 it multiplies the std of the Gaussian action noise,
sigma_t = sigma * s_t; on SAC it moves the entropy target, H_t = -|A| + |A| log s_t (the entropy a Gaussian policy
gains when every std is multiplied by s_t), and the temperature follows by its own tuning; SAC's temperature keeps
its own learning rate. Registered as `neuromodulated` (every learner) and, under its original name,
`neuromodulated_td3` (TD3 only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch
from cyclic_bench.registry import register_intervention


@dataclass
class NeuromodulatedConfig:
    name: str = "neuromodulated"  # registered method name
    expected_rate: float = 1e-3  # beta_E: averaging rate of the expected squared TD error (slow)
    recent_rate: float = 5e-2  # beta_F: averaging rate of the recent squared TD error (fast)
    lr_gain: float = 1.0  # kappa_lr: learning rate = lr * (1 + kappa_lr * surprise share)
    noise_gain: float = 1.0  # kappa_sigma: exploration scale = 1 + kappa_sigma * surprise share

    def __post_init__(self) -> None:
        for field in ("expected_rate", "recent_rate"):
            value = getattr(self, field)
            require(0 < value <= 1, f"method.{field}={value} is not allowed: it must lie in (0, 1]")
        require(
            self.expected_rate < self.recent_rate,
            f"method.expected_rate={self.expected_rate} is not allowed: it must be below method.recent_rate={self.recent_rate} "
            "(slow vs fast average)",
        )
        for field in ("lr_gain", "noise_gain"):
            require(getattr(self, field) >= 0, f"method.{field}={getattr(self, field)} is not allowed: it must be >= 0")


class SurpriseTracker:
    """Per-seed expected (E) and recent (F) squared TD error, and the surprise share g = max(F - E, 0) / (max(F - E, 0) + E)."""

    def __init__(self, n_seeds: int, expected_rate: float, recent_rate: float, device: torch.device):
        self.expected_rate, self.recent_rate = expected_rate, recent_rate
        self.expected = torch.full((n_seeds,), float("nan"), device=device)
        self.recent = torch.full((n_seeds,), float("nan"), device=device)

    def update(self, squared_error: torch.Tensor, live: torch.Tensor) -> None:
        """Fold in one squared TD error per seed [S], for seeds where `live` (and the error is finite)."""
        live = live & torch.isfinite(squared_error)
        for average, rate in ((self.expected, self.expected_rate), (self.recent, self.recent_rate)):
            moved = torch.where(torch.isnan(average), squared_error, average + rate * (squared_error - average))
            average.copy_(torch.where(live, moved, average))

    @property
    def unexpected(self) -> torch.Tensor:
        """[S]: U = max(F - E, 0); 0 before the first error."""
        return (self.recent - self.expected).clamp(min=0.0).nan_to_num(0.0)

    @property
    def share(self) -> torch.Tensor:
        """[S]: g = U / (U + E) in [0, 1); 0 before the first error or while both vanish."""
        unexpected, total = self.unexpected, self.unexpected + self.expected.nan_to_num(0.0)
        return torch.where(total > 0, unexpected / total.clamp(min=1e-30), 0.0)

    def state_dict(self) -> dict:
        return {"expected": self.expected.clone(), "recent": self.recent.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.expected.copy_(state["expected"])
        self.recent.copy_(state["recent"])


@register_intervention("neuromodulated_td3", NeuromodulatedConfig, learners=("td3",))
@register_intervention("neuromodulated")
class Neuromodulated(Intervention):
    Config = NeuromodulatedConfig

    def __init__(self, config: NeuromodulatedConfig, learner):
        super().__init__(config, learner)
        self.surprise = SurpriseTracker(learner.spec.n_seeds, config.expected_rate, config.recent_rate, learner.spec.device)
        self.modulate_exploration()

    def modulate_exploration(self) -> None:
        """s_t = 1 + kappa_sigma * g_t, for the learner to apply to its exploration."""
        scale = 1.0 + self.config.noise_gain * self.surprise.share
        if self.learner.exploration_scale is None:
            self.learner.exploration_scale = scale
        else:
            self.learner.exploration_scale.copy_(scale)  # in place: a captured update (SAC's entropy target) reads it

    def after_update(self, batch: Batch, stepped: tuple[str, ...]) -> None:
        learner = self.learner
        self.surprise.update(learner.squared_td_error(), learner.active)
        learning_rate = learner.config.lr * (1.0 + self.config.lr_gain * self.surprise.share)
        for net in learner.networks.values():
            net.optimizer.lr.copy_(torch.where(learner.active, learning_rate, net.optimizer.lr))
        self.modulate_exploration()

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {
            "expected_uncertainty": self.surprise.expected.clone(),
            "unexpected_uncertainty": self.surprise.unexpected,
            "surprise_share": self.surprise.share,
            "learning_rate": self.learner.networks["critic"].optimizer.lr.clone(),
            **self.learner.exploration_level(),
        }

    def extra_state(self) -> dict:
        return {**super().extra_state(), "surprise": self.surprise.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.surprise.load_state_dict(state["surprise"])
        self.modulate_exploration()
