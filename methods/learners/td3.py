"""TD3: Twin Delayed Deep Deterministic policy gradient (Fujimoto, van Hoof & Meger, ICML 2018).

Seed-batched (S seeds train as one computation; replay, twin critic, soft updates and diagnostics come from
actor_critic.py). Read top to bottom: config, acting, the losses, the update. Defaults are the paper's (256-256
actor and critics, Adam 3e-4, batch 256, gamma 0.99, tau 0.005, target noise 0.2 clipped at 0.5, policy delay 2,
exploration noise 0.1). The random start steps (25k in the paper) are the protocol's `warmup_steps`, so every
off-policy method of a stream gets the same warm-up.

Exploration scale (the contract's `exploration_scale`, set by e.g. the neuromodulated intervention): it multiplies
each seed's exploration noise std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cyclic_bench.methods.learners.actor_critic import ActorCriticConfig, OffPolicyActorCritic, q_values

from cyclic_bench.errors import integer, number, require_settings
from cyclic_bench.learner import Batch, with_terms
from cyclic_bench.nn import seed_view
from cyclic_bench.registry import register_learner
from cyclic_bench.rng import SeedRNG


@dataclass
class TD3Config(ActorCriticConfig):
    name: str = "td3"  # registered method name
    base: str = "td3"  # the learner
    policy_noise: float = 0.2  # std of the target-policy smoothing noise
    noise_clip: float = 0.5  # clip of the target-policy smoothing noise
    policy_delay: int = 2  # critic updates per actor (and target) update
    exploration_noise: float = 0.1  # std of the Gaussian noise on training actions

    def __post_init__(self) -> None:
        super().__post_init__()
        require_settings(
            "method",
            self,
            {"policy_noise": number(0), "noise_clip": number(0), "policy_delay": integer(1), "exploration_noise": number(0)},
        )


@register_learner("td3")
class TD3(OffPolicyActorCritic):
    Config = TD3Config
    actor_output_activation = staticmethod(torch.tanh)

    # ---- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        action = self.actor(obs)
        if explore:
            noise = self.noise_rng.normal(*action.shape[1:])
            scale = self.config.exploration_noise
            if self.exploration_scale is not None:
                scale = seed_view(self.config.exploration_noise * self.exploration_scale, noise)
            action = action + scale * noise
        return action.clamp(-1.0, 1.0)

    def exploration_level(self) -> dict[str, torch.Tensor]:
        """The std of each seed's exploration noise."""
        scale = torch.ones_like(self.last["critic_loss"]) if self.exploration_scale is None else self.exploration_scale
        return {"exploration_noise": self.config.exploration_noise * scale}

    # ---- losses -------------------------------------------------------------------------------------------
    def critic_loss(self, batch: Batch, noise_rng: SeedRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """Both critics' squared TD error summed, [S], and their values [S, 2, B]."""
        cfg, actor, critic = self.config, self.networks["actor"], self.networks["critic"]
        with torch.no_grad():
            noise = (cfg.policy_noise * noise_rng.normal(*batch["action"].shape[1:])).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_action = (actor.target(batch["next_obs"]) + noise).clamp(-1.0, 1.0)
            next_q = q_values(critic.target, batch["next_obs"], next_action).min(dim=1).values
            target = batch["reward"] + cfg.gamma * (1.0 - batch["done"]) * next_q
        q = q_values(critic.module, batch["obs"], batch["action"])
        return (q - target.unsqueeze(1)).square().mean(dim=-1).sum(dim=1), q

    def actor_loss(self, batch: Batch, noise_rng: SeedRNG | None = None) -> torch.Tensor:
        """[S]: minus the first critic's value of the actor's actions (deterministic: no noise drawn)."""
        return -q_values(self.critic, batch["obs"], self.actor(batch["obs"]))[:, 0].mean(dim=-1)

    def squared_td_error(self) -> torch.Tensor:
        return self.last["critic_loss"] / 2  # the loss sums both critics' mean squared errors

    # ---- the update ---------------------------------------------------------------------------------------
    def plan_update(self) -> tuple[str, ...]:
        """Every update steps the critics; every `policy_delay`-th also the actor and the targets."""
        self.updates += 1
        return ("critic",) if self.updates % self.config.policy_delay else ("critic", "actor")

    def learn(self, batch: Batch, stepping: tuple[str, ...]) -> None:
        actor, critic = self.networks["actor"], self.networks["critic"]
        critic_loss, q = self.critic_loss(batch, self.noise_rng)
        critic.optimizer.zero_grad()
        with_terms(critic_loss, critic).sum().backward()  # seeds are independent, so the sum's gradient is each seed's own
        critic.optimizer.step(self.active)
        self.keep(critic_loss=critic_loss, q_mean=q.mean(dim=(1, 2)))
        if "actor" not in stepping:
            self.drop_gradients()
            return
        actor_loss = self.actor_loss(batch)
        actor.optimizer.zero_grad()
        trained = [p for p in actor.module.parameters() if p.requires_grad]
        with_terms(actor_loss, actor).sum().backward(inputs=trained)  # the actor's gradients only: not the critics' weights
        actor.optimizer.step(self.active)
        self.keep(actor_loss=actor_loss)
        self.soft_update()
        self.drop_gradients()
