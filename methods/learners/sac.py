"""SAC: Soft Actor-Critic with automatic entropy tuning (Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu,
Gupta, Abbeel & Levine 2018, "Soft Actor-Critic Algorithms and Applications", arXiv 1812.05905).

Seed-batched (replay, twin critic, soft updates and diagnostics come from actor_critic.py). Read top to bottom:
config, the policy, acting, the losses, the update. Defaults are the paper's continuous-control ones: 256-256 actor
and critics, Adam 3e-4 for actor, critics and temperature, batch 256, gamma 0.99, tau 0.005 (target critics updated
every step), one gradient step per environment step, temperature tuned toward the entropy target -|A| (|A| the
stream's largest action size: the dimensions a task does not use are still the policy's), starting at 1.

The policy is a tanh-squashed Gaussian: the actor's last layer gives a mean and a log-std per action dimension
(log-std clamped to [-20, 2]); log pi(a|s) = sum_i [log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2 + 1e-6)].
Evaluation acts with tanh(mu).

The update follows Stable-Baselines3's SAC.train() step by step (tests/methods/learners/test_sac.py checks the
updated parameters against numbers SB3 computed): the temperature takes its step first, on this batch's fresh policy
samples, and the critic and actor losses use the temperature from before that step; then the critics step; then the
actor, against the updated critics; then the target critics move. The paper's Algorithm 1 lists critic, actor and
temperature steps in that order; the authors' softlearning code computes all three from the same parameters. The
differences are one step of lag in a slowly moving quantity.

Exploration scale (the contract's `exploration_scale` s, set by e.g. the neuromodulated intervention): it moves the
entropy target, H_t = -|A| + |A| log s, the entropy a Gaussian gains when every std is multiplied by s; the
temperature then follows through its own gradient steps. (Scaling the temperature directly would be undone by the
automatic tuning.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from cyclic_bench.methods.learners.actor_critic import ActorCriticConfig, OffPolicyActorCritic, q_values
from torch import nn

from cyclic_bench.errors import number, require_settings
from cyclic_bench.learner import Batch, with_terms
from cyclic_bench.method import MethodSpec
from cyclic_bench.nn import SeedAdam, seed_view
from cyclic_bench.registry import register_learner
from cyclic_bench.rng import SeedRNG

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
SQUASH_EPS = 1e-6  # in log(1 - tanh(u)^2 + eps), as the reference implementations
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class SACConfig(ActorCriticConfig):
    name: str = "sac"  # registered method name
    base: str = "sac"  # the learner
    init_temperature: float = 1.0  # the entropy temperature alpha at the start
    temperature_lr: float = 3e-4  # Adam learning rate of log alpha
    target_entropy: float | None = None  # entropy the temperature is tuned toward; None = -|A|

    def __post_init__(self) -> None:
        super().__post_init__()
        require_settings("method", self, {"init_temperature": number(0, low_open=True), "temperature_lr": number(0)})
        if self.target_entropy is not None:
            require_settings("method", self, {"target_entropy": number()})


class Temperature(nn.Module):
    """log alpha per seed, [S]."""

    def __init__(self, n_seeds: int, value: float, device: torch.device):
        super().__init__()
        self.log_value = nn.Parameter(torch.full((n_seeds,), math.log(value), device=device))


@register_learner("sac")
class SAC(OffPolicyActorCritic):
    Config = SACConfig
    actor_outputs = 2  # a mean and a log-std per action dimension
    actor_has_target = False

    def __init__(self, config: SACConfig, spec: MethodSpec, options, active: torch.Tensor):
        super().__init__(config, spec, options, active)
        self.temperature = Temperature(spec.n_seeds, config.init_temperature, spec.device)
        self.temperature_opt = SeedAdam(self.temperature.parameters(), spec.n_seeds, config.temperature_lr)
        self.base_entropy = -float(spec.action_dim) if config.target_entropy is None else config.target_entropy
        self.last |= {name: torch.full((spec.n_seeds,), float("nan"), device=spec.device) for name in ("temperature_loss", "entropy")}

    # ---- the policy ---------------------------------------------------------------------------------------
    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clamped log-std, each [S, B, A]."""
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample_actions(self, obs: torch.Tensor, noise_rng: SeedRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised squashed actions [S, B, A] and their log-probabilities [S, B]."""
        mean, log_std = self.policy(obs)
        eps = noise_rng.normal(*mean.shape[1:])
        gaussian = mean + log_std.exp() * eps
        action = torch.tanh(gaussian)
        log_prob = (-0.5 * eps.square() - log_std - HALF_LOG_2PI).sum(dim=-1)
        return action, log_prob - torch.log(1 - action.square() + SQUASH_EPS).sum(dim=-1)

    def alpha(self) -> torch.Tensor:
        """[S]: the temperature, as a constant of the losses."""
        return self.temperature.log_value.detach().exp()

    def target_entropy(self) -> torch.Tensor:
        """[S]: the entropy target, moved by the exploration scale."""
        scale = torch.ones_like(self.alpha()) if self.exploration_scale is None else self.exploration_scale
        return self.base_entropy + self.spec.action_dim * torch.log(scale)

    # ---- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        if explore:
            return self.sample_actions(obs, self.noise_rng)[0]
        return torch.tanh(self.policy(obs)[0])

    def exploration_level(self) -> dict[str, torch.Tensor]:
        """The entropy target and the temperature of each seed."""
        return {"target_entropy": self.target_entropy(), "temperature": self.alpha()}

    # ---- losses -------------------------------------------------------------------------------------------
    def critic_loss(self, batch: Batch, noise_rng: SeedRNG, alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Half the sum of both critics' mean squared soft TD errors, [S], and their values [S, 2, B]; alpha: [S], default now's."""
        critic, alpha = self.networks["critic"], self.alpha() if alpha is None else alpha
        with torch.no_grad():
            next_action, next_log_prob = self.sample_actions(batch["next_obs"], noise_rng)
            next_q = q_values(critic.target, batch["next_obs"], next_action).min(dim=1).values
            soft_q = next_q - seed_view(alpha, next_q) * next_log_prob
            target = batch["reward"] + (1.0 - batch["done"]) * self.config.gamma * soft_q
        q = q_values(critic.module, batch["obs"], batch["action"])
        return 0.5 * (q - target.unsqueeze(1)).square().mean(dim=-1).sum(dim=1), q

    def actor_loss(self, batch: Batch, noise_rng: SeedRNG) -> torch.Tensor:
        """[S]: E[alpha log pi(a|s) - min_j Q_j(s, a)] over fresh policy samples."""
        action, log_prob = self.sample_actions(batch["obs"], noise_rng)
        return self.policy_loss(batch["obs"], action, log_prob, self.alpha())

    def policy_loss(self, obs: torch.Tensor, action: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        min_q = q_values(self.critic, obs, action).min(dim=1).values
        return (seed_view(alpha, log_prob) * log_prob - min_q).mean(dim=-1)

    def squared_td_error(self) -> torch.Tensor:
        return self.last["critic_loss"]  # half the sum over two critics: their mean

    # ---- the update ---------------------------------------------------------------------------------------
    def plan_update(self) -> tuple[str, ...]:
        self.updates += 1
        return ("critic", "actor")

    def learn(self, batch: Batch, stepping: tuple[str, ...]) -> None:
        actor, critic = self.networks["actor"], self.networks["critic"]
        action, log_prob = self.sample_actions(batch["obs"], self.noise_rng)
        alpha, log_alpha = self.alpha(), self.temperature.log_value  # the losses below use alpha from before its step
        temperature_loss = -(log_alpha.unsqueeze(1) * (log_prob + self.target_entropy().unsqueeze(1)).detach()).mean(dim=-1)
        self.temperature_opt.zero_grad()
        temperature_loss.sum().backward()
        self.temperature_opt.step(self.active)

        critic_loss, q = self.critic_loss(batch, self.noise_rng, alpha)
        critic.optimizer.zero_grad()
        with_terms(critic_loss, critic).sum().backward()
        critic.optimizer.step(self.active)

        actor_loss = self.policy_loss(batch["obs"], action, log_prob, alpha)
        actor.optimizer.zero_grad()
        with_terms(actor_loss, actor).sum().backward()
        actor.optimizer.step(self.active)
        self.soft_update()
        self.drop_gradients()  # the actor's backward pass also reached the critic
        self.keep(
            critic_loss=critic_loss,
            q_mean=q.mean(dim=(1, 2)),
            actor_loss=actor_loss,
            temperature_loss=temperature_loss,
            entropy=-log_prob.mean(dim=-1),
        )

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {**super().diagnostics(), **self.exploration_level()}

    def optimizers(self) -> list[SeedAdam]:
        return [*super().optimizers(), self.temperature_opt]

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "temperature": self.temperature}
