"""TD3: Twin Delayed Deep Deterministic policy gradient (Fujimoto, van Hoof & Meger, ICML 2018).

Seed-batched: every network carries a leading seed axis and S seeds train as one computation. Read top to
bottom: config, networks, acting, storing, the update. The twin critics are one network with a member axis
of size 2. Defaults are the paper's (256-256 actor and critics, Adam 3e-4, batch 256, gamma 0.99, tau 0.005,
target noise 0.2 clipped at 0.5, policy delay 2, exploration noise 0.1). The random start steps (25k in the
paper) are the protocol's `warmup_steps`, so every off-policy method of a stream gets the same warm-up.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from cyclic_bench.errors import integer, layer_indices, layer_sizes, number, require, require_settings
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.nn import BatchedMLP, SeedAdam, seed_view
from cyclic_bench.plasticity import clone_parameters, gradient_norm, network_diagnostics
from cyclic_bench.registry import register_method
from cyclic_bench.replay import SeedReplay
from cyclic_bench.rng import SeedRNG


@dataclass
class TD3Config:
    name: str = "td3"  # registered method name
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])  # actor hidden layer sizes
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])  # each twin critic's hidden sizes
    actor_layer_norm: list[int] = field(default_factory=list)  # actor hidden layers with LayerNorm before ReLU
    critic_layer_norm: list[int] = field(default_factory=list)  # critic hidden layers with LayerNorm before ReLU
    lr: float = 3e-4  # Adam learning rate, actor and critic
    batch_size: int = 256  # transitions per seed per update
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target-network soft-update rate
    policy_noise: float = 0.2  # std of the target-policy smoothing noise
    noise_clip: float = 0.5  # clip of the target-policy smoothing noise
    policy_delay: int = 2  # critic updates per actor (and target) update
    exploration_noise: float = 0.1  # std of the Gaussian noise on training actions
    buffer_size: int = 1_000_000  # replay capacity per seed (capped at the stream's length)
    updates_per_step: int = 1  # gradient updates per environment step

    def __post_init__(self) -> None:
        require_settings(
            "method",
            self,
            {
                "actor_hidden": layer_sizes(),
                "critic_hidden": layer_sizes(),
                "lr": number(0, low_open=True),
                "batch_size": integer(1),
                "gamma": number(0, 1),
                "tau": number(0, 1, low_open=True),
                "policy_noise": number(0),
                "noise_clip": number(0),
                "policy_delay": integer(1),
                "exploration_noise": number(0),
                "buffer_size": integer(1),
                "updates_per_step": integer(1),
            },
        )
        hidden_layers = {"actor_layer_norm": len(self.actor_hidden), "critic_layer_norm": len(self.critic_hidden)}
        require_settings("method", self, {name: layer_indices(layers) for name, layers in hidden_layers.items()})
        require(
            self.buffer_size >= self.batch_size,
            f"method.buffer_size={self.buffer_size} is not allowed: it must be >= method.batch_size={self.batch_size}",
        )


@register_method("td3")
class TD3(Method):
    Config = TD3Config

    def __init__(self, config: TD3Config, spec: MethodSpec):
        super().__init__(config, spec)
        S, obs_dim, act_dim, device = spec.n_seeds, spec.obs_dim, spec.action_dim, spec.device
        self.init_rng = SeedRNG(spec.seed_ids, stream=1, device=device)
        self.noise_rng = SeedRNG(spec.seed_ids, stream=2, device=device)
        self.sample_rng = SeedRNG(spec.seed_ids, stream=3, device=device)
        self.probe_rng = SeedRNG(spec.seed_ids, stream=4, device=device)  # diagnostics draw apart from training

        self.actor = BatchedMLP(
            S, [obs_dim, *config.actor_hidden, act_dim], self.init_rng, output_activation=torch.tanh, layer_norm=config.actor_layer_norm
        )
        self.critic = BatchedMLP(
            S, [obs_dim + act_dim, *config.critic_hidden, 1], self.init_rng, members=(2,), layer_norm=config.critic_layer_norm
        )
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.initial = {"actor": clone_parameters(self.actor), "critic": clone_parameters(self.critic)}  # for distance-from-init
        self.actor_opt = SeedAdam(self.actor.parameters(), S, config.lr)
        self.critic_opt = SeedAdam(self.critic.parameters(), S, config.lr)

        capacity = min(config.buffer_size, spec.total_steps * self.envs_per_seed)
        self.replay = SeedReplay(
            S, capacity, {"obs": (obs_dim,), "action": (act_dim,), "reward": (), "next_obs": (obs_dim,), "done": ()}, device
        )
        self.updates = 0
        self.last = {name: torch.full((S,), float("nan"), device=device) for name in ("critic_loss", "actor_loss", "q_mean")}

    # ---- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        action = self.actor(obs)
        if explore:
            action = action + self.config.exploration_noise * self.noise_rng.normal(*action.shape[1:])
        return action.clamp(-1.0, 1.0)

    # ---- storing and learning -----------------------------------------------------------------------------
    def observe(self, t: Transition) -> None:
        self.replay.add(obs=t.obs, action=t.action, reward=t.reward, next_obs=t.next_obs, done=t.terminated.float())
        if not t.learn or self.replay.size < self.config.batch_size:
            return
        for _ in range(self.config.updates_per_step * t.obs.shape[1]):
            self.update(self.sample())

    def sample(self) -> dict[str, torch.Tensor]:
        """A uniform batch [S, B, ...] from each seed's own buffer."""
        slots = self.sample_rng.randint(self.replay.size, self.config.batch_size)
        return self.replay.get(self.replay.chronological(slots))

    def q_values(self, critic: BatchedMLP, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Both critics' values, [S, 2, B]."""
        x = torch.cat([obs, action], dim=-1).unsqueeze(1).expand(-1, 2, -1, -1)
        return critic(x).squeeze(-1)

    def critic_loss(self, batch: dict[str, torch.Tensor], noise_rng: SeedRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """Both critics' squared TD error summed, [S], and their values [S, 2, B]."""
        cfg = self.config
        with torch.no_grad():
            noise = (cfg.policy_noise * noise_rng.normal(*batch["action"].shape[1:])).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_action = (self.actor_target(batch["next_obs"]) + noise).clamp(-1.0, 1.0)
            next_q = self.q_values(self.critic_target, batch["next_obs"], next_action).min(dim=1).values
            target = batch["reward"] + cfg.gamma * (1.0 - batch["done"]) * next_q
        q = self.q_values(self.critic, batch["obs"], batch["action"])
        return (q - target.unsqueeze(1)).square().mean(dim=-1).sum(dim=1), q

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[S]: minus the first critic's value of the actor's actions."""
        return -self.q_values(self.critic, batch["obs"], self.actor(batch["obs"]))[:, 0].mean(dim=-1)

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        critic_loss, q = self.critic_loss(batch, self.noise_rng)
        self.critic_opt.zero_grad()
        critic_loss.sum().backward()  # seeds are independent, so the sum's gradient is each seed's own
        self.critic_opt.step(self.active)
        self.last["critic_loss"], self.last["q_mean"] = critic_loss.detach(), q.detach().mean(dim=(1, 2))

        self.updates += 1
        if self.updates % self.config.policy_delay == 0:
            actor_loss = self.actor_loss(batch)
            self.actor_opt.zero_grad()
            actor_loss.sum().backward()
            self.actor_opt.step(self.active)
            self.critic.zero_grad(set_to_none=True)  # the actor's backward pass also reached the critic
            self.last["actor_loss"] = actor_loss.detach()
            self.soft_update()

    @torch.no_grad()
    def soft_update(self) -> None:
        for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            online, tracked = list(net.parameters()), list(target.parameters())
            keep = [torch.where(seed_view(self.active, p), p, t) for p, t in zip(online, tracked, strict=True)]
            torch._foreach_lerp_(tracked, keep, self.config.tau)

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Last losses, plus every plasticity diagnostic of actor and critic on a probe batch from the buffer."""
        if self.replay.size == 0:
            return dict(self.last)
        slots = self.probe_rng.randint(self.replay.size, self.config.batch_size)
        probe = self.replay.get(self.replay.chronological(slots))
        critic_input = torch.cat([probe["obs"], probe["action"]], dim=-1).unsqueeze(1).expand(-1, 2, -1, -1)
        out = {
            **self.last,
            **network_diagnostics("actor", self.actor, probe["obs"], self.initial["actor"]),
            **network_diagnostics("critic", self.critic, critic_input, self.initial["critic"]),
        }
        for name, net, loss in (
            ("critic", self.critic, lambda: self.critic_loss(probe, self.probe_rng)[0]),
            ("actor", self.actor, lambda: self.actor_loss(probe)),
        ):
            net.zero_grad(set_to_none=True)
            with torch.enable_grad():  # the engine evaluates under no_grad
                loss().sum().backward()
            out[f"{name}_gradient_norm"] = gradient_norm(net)
        self.actor.zero_grad(set_to_none=True)
        self.critic.zero_grad(set_to_none=True)
        return out

    def policy_weights(self) -> list[torch.Tensor]:
        return [layer.weight.data for layer in self.actor.layers]

    def optimizers(self) -> list[SeedAdam]:
        return [self.actor_opt, self.critic_opt]

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target, "critic_target": self.critic_target}

    def random_streams(self) -> dict[str, SeedRNG]:
        return {"init": self.init_rng, "noise": self.noise_rng, "sample": self.sample_rng, "probe": self.probe_rng}

    def extra_state(self) -> dict:
        rngs = {key: rng.state_dict() for key, rng in self.random_streams().items()}
        return {"replay": self.replay.state_dict(), "updates": self.updates, "last": self.last, "rngs": rngs, "initial": self.initial}

    def load_extra_state(self, state: dict) -> None:
        self.replay.load_state_dict(state["replay"])
        self.updates, self.last, self.initial = state["updates"], state["last"], state["initial"]
        for key, rng in self.random_streams().items():
            rng.load_state_dict(state["rngs"][key])
