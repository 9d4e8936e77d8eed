"""DrQ: Data-regularized Q (Kostrikov, Yarats & Fergus, ICLR 2021, "Image Augmentation Is All You Need: Regularizing
Deep Reinforcement Learning from Pixels", arXiv 2004.13649): SAC from pixels with random-shift augmentation.

The learner of NE's pixel DMC experiments (Liu et al., ICLR 2025, arXiv 2410.07994: "DrQ", not DrQ-v2; the NE public
code ships only the TD3 agent, with a `used_in_DrQ` switch in its sparsity schedule). Checked against the DrQ authors'
public code (github.com/denisyarats/drq: drq.py, replay_buffer.py, config.yaml). Seed-batched: every parameter has a
leading seed axis; the encoder is a grouped convolution, one group per seed (cyclic_bench/conv.py).

Read top to bottom: config, networks, features and the policy, acting, storing, the losses, the update, bookkeeping.
- Encoder: 4 convolutions 3x3 of 32 channels (the first with stride 2), ReLU after each, on frames / 255; the critic's
  encoder is trained by the critic loss only. Each of actor and critic projects the flat feature map to 50 features
  (linear, LayerNorm, tanh); the actor's projection reads the critic's convolutions with their gradient stopped (the
  public code ties the actor's convolution weights to the critic's and detaches them in the actor's update).
- Actor: an MLP 1024-1024 on the 50 features giving a mean and a log-std per action, log-std squashed into [-10, 2]
  by tanh; a tanh-squashed Gaussian policy. Critic: twin MLPs 1024-1024 on [features, action].
- Augmentation: each sampled observation is padded by 4 pixels (border replicated) and cropped back at a random
  offset; the critic's target averages K = 2 augmented next observations, its loss sums M = 2 augmented copies of
  the observation (each with both critics). Offsets are drawn per seed from the counter-based SeedRNG (stream 5).
- Defaults (the paper's table of hyperparameters): Adam 1e-3 for actor, critic and temperature; batch 512; gamma
  0.99; replay 100k; actor (and temperature) every 2nd update; target networks every 2nd update, critic heads with
  tau 0.01, encoder and projection with tau 0.05; initial temperature 0.1, target entropy -|A|. The random-action start
  (1000 steps in the public code) is the protocol's `warmup_steps`, as for every off-policy learner of the suite.
- Replay: frames stored once, uint8, stacks rebuilt on sampling (cyclic_bench/frame_replay.py); about 21.7 kB per seed
  per transition at 84 x 84 (see BENCHMARKS.md); `check_resources` refuses a run that cannot fit before allocating.

Where this differs from the public code, and why:
- Encoder soft-update rate 0.05 (the paper's table) where the public code moves the whole critic target with 0.01:
  `method.encoder_tau=0.01` is the public configuration. Batch 512 (the paper's, and the public README's advice to
  reproduce it) where the public config's default is 128.
- Initial weights: PyTorch's default uniform initialisation, drawn per seed from the SeedRNG, where the public code
  uses orthogonal initialisation (gain sqrt 2 for convolutions) and zero biases: the suite's interventions re-draw
  weights from each network's own initial distribution (resets, recycled units), which is the default one for every
  learner here.
- The actor's update stops the critic features' gradient entirely (no gradient reaches the critic's projection
  from it); the public code computes one there and discards it at the critic's next zero_grad. The same update.
- Which parts the interventions act on: the contract's networks are the actor and critic MLPs (inputs: their 50
  projected features); the encoder and the projections train with their own optimizers and are reported by the
  diagnostics (`encoder_*`: channels as units). So reset and plasticity injection act on the MLP heads (plasticity
  injection's paper injects a head and keeps its encoder learning), ReDo recycles the MLPs' units, and NE's
  sparse topology covers the MLPs, not the convolutions (the NE public code's DrQ switch also keeps some layers
  dense; its DrQ agent is not public, so which convolutions it sparsified is unknown).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field

import torch
from cyclic_bench.methods.learners.actor_critic import q_values, require_learner_settings, twin_inputs
from cyclic_bench.methods.learners.sac import Temperature
from torch import nn

from cyclic_bench.conv import ConvEncoder, conv_output_size, encoder_diagnostics, random_shift
from cyclic_bench.errors import integer, number, require, require_settings
from cyclic_bench.frame_replay import FrameReplay, planned_bytes
from cyclic_bench.learner import Batch, Learner, Network, NetworkOptions, with_terms
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.nn import ACTIVATIONS, BatchedLayerNorm, BatchedLinear, BatchedMLP, SeedAdam, seed_view
from cyclic_bench.plasticity import clone_parameters, gradient_norm, linear_layers, network_diagnostics, srank
from cyclic_bench.registry import register_learner
from cyclic_bench.rng import SeedRNG

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MEMORY_USE = 0.9  # the share of a device's memory a run may plan to fill
GB = 1e9


@dataclass
class DrQConfig:
    name: str = "drq"  # registered method name
    base: str = "drq"  # the learner
    actor_hidden: list[int] = field(default_factory=lambda: [1024, 1024])  # the actor MLP's hidden layers, on the features
    critic_hidden: list[int] = field(default_factory=lambda: [1024, 1024])  # each twin critic's hidden layers
    actor_layer_norm: list[int] = field(default_factory=list)  # hidden layers of the actor MLP with a LayerNorm before their activation
    critic_layer_norm: list[int] = field(default_factory=list)  # the same for the critics
    activation: str = "relu"  # the MLPs' hidden non-linearity
    conv_layers: int = 4  # 3x3 convolutions of the encoder (the first with stride 2)
    conv_channels: int = 32  # channels of every convolution
    feature_dim: int = 50  # features the actor's and the critic's projections make of the feature map
    lr: float = 1e-3  # Adam learning rate of every network and the temperature
    batch_size: int = 512  # transitions per seed per update
    gamma: float = 0.99  # discount
    critic_tau: float = 0.01  # soft-update rate of the target critic heads
    encoder_tau: float = 0.05  # soft-update rate of the target encoder and projection (public code: 0.01)
    target_every: int = 2  # updates between target soft updates
    actor_every: int = 2  # updates between actor (and temperature) updates
    init_temperature: float = 0.1  # the entropy temperature alpha at the start
    log_std_min: float = -10.0  # the policy's log-std range
    log_std_max: float = 2.0
    image_pad: int = 4  # random shift: pixels of replicated border before the crop back
    buffer_size: int = 100_000  # replay capacity per seed (capped at the stream's length)
    updates_per_step: int = 1  # gradient updates per environment step

    def __post_init__(self) -> None:
        require_learner_settings(self)
        require_settings(
            "method",
            self,
            {
                "conv_layers": integer(1),
                "conv_channels": integer(1),
                "feature_dim": integer(1),
                "critic_tau": number(0, 1, low_open=True),
                "encoder_tau": number(0, 1, low_open=True),
                "target_every": integer(1),
                "actor_every": integer(1),
                "init_temperature": number(0, low_open=True),
                "log_std_min": number(),
                "log_std_max": number(),
                "image_pad": integer(0),
            },
        )
        require(
            self.log_std_min < self.log_std_max,
            f"method.log_std_min={self.log_std_min} is not allowed: it must be below method.log_std_max={self.log_std_max}",
        )


class Projection(nn.Module):
    """DrQ's encoder head: linear to the features, LayerNorm, tanh."""

    def __init__(self, n_seeds: int, in_features: int, features: int, rng: SeedRNG):
        super().__init__()
        self.linear = BatchedLinear(n_seeds, in_features, features, rng)
        self.norm = BatchedLayerNorm(n_seeds, features, device=rng.keys.device)

    def reset_parameters(self, rng: SeedRNG, seeds: torch.Tensor | None = None) -> None:
        self.linear.reset_parameters(rng, seeds)
        self.norm.reset_parameters(rng, seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.linear(x)))


def update_bytes(config: DrQConfig, obs_shape: tuple[int, int, int]) -> int:
    """Bytes one seed's update holds at its peak, estimated: the four shifted float copies of the batch, and what the
    critic's backward pass keeps of the encoder for one shifted copy (the two copies take their backward passes in
    turn): its scaled input and three floats per feature-map entry, above the 2.6 measured (BENCHMARKS.md)."""
    _, height, _ = obs_shape
    maps = [conv_output_size(height, i + 1) ** 2 * config.conv_channels for i in range(config.conv_layers)]
    per_sample = 4 * 4 * math.prod(obs_shape) + 4 * (3 * sum(maps) + math.prod(obs_shape))
    return config.batch_size * per_sample


def parameter_bytes(config: DrQConfig, obs_shape: tuple[int, int, int], action_dim: int) -> int:
    """Bytes of one seed's parameters: online ones with their gradients and two Adam moments, and the targets."""
    channels, height, _ = obs_shape
    conv = (
        channels * config.conv_channels * 9
        + config.conv_channels
        + (config.conv_layers - 1) * (config.conv_channels**2 * 9 + config.conv_channels)
    )
    projection = config.conv_channels * conv_output_size(height, config.conv_layers) ** 2 * config.feature_dim + 3 * config.feature_dim

    def mlp(sizes: list[int]) -> int:
        return sum(i * o + o for i, o in zip(sizes, sizes[1:], strict=False))

    actor = mlp([config.feature_dim, *config.actor_hidden, 2 * action_dim])
    critic = 2 * mlp([config.feature_dim + action_dim, *config.critic_hidden, 1])
    online, targets = conv + 2 * projection + actor + critic, conv + projection + critic
    return 4 * (4 * online + targets)


def device_memory(device: torch.device) -> int:
    """Bytes of memory the device has: the GPU's, or the host's for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@register_learner("drq")
class DrQ(Learner):
    Config = DrQConfig
    observations = "pixels"
    supports = frozenset({"ne", "reset", "reset_switch", "redo", "plasticity_injection", "layer_norm"})

    def __init__(self, config: DrQConfig, spec: MethodSpec, options: dict[str, NetworkOptions], active: torch.Tensor):
        super().__init__(config, spec, options, active)
        S, A, device = spec.n_seeds, spec.action_dim, spec.device
        self.image_shape = tuple(spec.obs_shape)
        self.init_rng = SeedRNG(spec.seed_ids, stream=1, device=device)
        self.noise_rng = SeedRNG(spec.seed_ids, stream=2, device=device)
        self.sample_rng = SeedRNG(spec.seed_ids, stream=3, device=device)
        self.probe_rng = SeedRNG(spec.seed_ids, stream=4, device=device)  # diagnostics draw apart from training
        self.shift_rng = SeedRNG(spec.seed_ids, stream=5, device=device)  # the augmentation's offsets

        self.encoder = ConvEncoder(S, self.image_shape, config.conv_channels, config.conv_layers, self.init_rng)
        self.critic_projection = Projection(S, self.encoder.output_dim, config.feature_dim, self.init_rng)
        self.actor_projection = Projection(S, self.encoder.output_dim, config.feature_dim, self.init_rng)
        a, c = options["actor"], options["critic"]
        actor = BatchedMLP(
            S, [config.feature_dim, *a.hidden, 2 * A], self.init_rng, activation=ACTIVATIONS[a.activation], layer_norm=a.layer_norm
        )
        critic = BatchedMLP(
            S,
            [config.feature_dim + A, *c.hidden, 1],
            self.init_rng,
            members=(2,),
            activation=ACTIVATIONS[c.activation],
            layer_norm=c.layer_norm,
        )
        self.encoder_target, self.critic_projection_target = copy.deepcopy(self.encoder), copy.deepcopy(self.critic_projection)
        self.networks = {
            "actor": Network(
                actor,
                SeedAdam(actor.parameters(), S, config.lr),
                self.init_rng,
                None,
                clone_parameters(actor),
                inputs=lambda batch: self.actor_features(batch["obs"]),
                loss=lambda batch, rng: self.actor_loss(random_shift(batch["obs"], config.image_pad, rng), rng)[0],
            ),
            "critic": Network(
                critic,
                SeedAdam(critic.parameters(), S, config.lr),
                self.init_rng,
                copy.deepcopy(critic),
                clone_parameters(critic),
                inputs=lambda batch: twin_inputs(self.critic_features(batch["obs"]), batch["action"]),
                loss=lambda batch, rng: self.critic_loss(batch, rng, self.views(batch, rng)),
            ),
        }
        self.encoder_optimizer = SeedAdam([*self.encoder.parameters(), *self.critic_projection.parameters()], S, config.lr)
        self.actor_projection_optimizer = SeedAdam(self.actor_projection.parameters(), S, config.lr)
        self.temperature = Temperature(S, config.init_temperature, device)
        self.temperature_optimizer = SeedAdam(self.temperature.parameters(), S, config.lr)
        self.encoder_initial = clone_parameters(self.encoder)
        frame_shape = (3, *self.image_shape[1:])
        self.replay = FrameReplay(S, min(config.buffer_size, spec.total_steps), frame_shape, self.image_shape[0] // 3, A, device)
        self.updates = 0
        names = ("critic_loss", "actor_loss", "q_mean", "temperature_loss", "entropy")
        self.last = {name: torch.full((S,), float("nan"), device=device) for name in names}

    @classmethod
    def network_options(cls, config: DrQConfig) -> dict[str, NetworkOptions]:
        return {
            net: NetworkOptions(list(getattr(config, f"{net}_hidden")), list(getattr(config, f"{net}_layer_norm")), config.activation)
            for net in ("actor", "critic")
        }

    @classmethod
    def check_resources(cls, config: DrQConfig, spec: MethodSpec) -> None:
        """Refuse a run whose replay and update cannot fit in MEMORY_USE of the device's memory, before allocating."""
        S, capacity = spec.n_seeds, min(config.buffer_size, spec.total_steps)
        replay = planned_bytes(S, capacity, (3, *spec.obs_shape[1:]), spec.obs_shape[0] // 3, spec.action_dim)
        update = S * (update_bytes(config, spec.obs_shape) + parameter_bytes(config, spec.obs_shape, spec.action_dim))
        have = device_memory(spec.device)
        require(
            replay + update <= MEMORY_USE * have,
            f"method.buffer_size={config.buffer_size} with {S} seeds needs about {(replay + update) / GB:.1f} GB of {spec.device.type} "
            f"memory (replay {replay / GB:.1f} GB, networks and updates {update / GB:.1f} GB) and {MEMORY_USE:.0%} of the device's "
            f"{have / GB:.1f} GB is {MEMORY_USE * have / GB:.1f} GB: lower method.buffer_size or method.batch_size, or shard the seeds "
            "over runs (e.g. seeds=10 first_seed=0,10,20)",
        )

    # ---- features and the policy --------------------------------------------------------------------------
    def images(self, obs: torch.Tensor) -> torch.Tensor:
        """Flat stacks [S, N, C*H*W] (or images already [S, N, C, H, W]) -> [S, N, C, H, W]."""
        return obs.reshape(*obs.shape[:2], *self.image_shape)

    def critic_features(self, images: torch.Tensor, target: bool = False) -> torch.Tensor:
        """[S, N, C, H, W] -> the critic's features [S, N, feature_dim] (from the target encoder and projection if `target`)."""
        if target:
            return self.critic_projection_target(self.encoder_target(images))
        return self.critic_projection(self.encoder(images))

    def actor_features(self, images: torch.Tensor) -> torch.Tensor:
        """[S, N, C, H, W] -> the actor's features: its projection of the critic's feature map, the gradient stopped there."""
        return self.actor_projection(self.encoder(images).detach())

    def policy(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std [S, N, A], the log-std squashed into [log_std_min, log_std_max] by tanh."""
        cfg = self.config
        mean, raw = self.networks["actor"].module(features).chunk(2, dim=-1)
        return mean, cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(raw) + 1)

    def sample_actions(self, features: torch.Tensor, rng: SeedRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised squashed actions [S, N, A] and their log-probabilities [S, N] (tanh's Jacobian in its stable form)."""
        mean, log_std = self.policy(features)
        eps = rng.normal(*mean.shape[1:])
        u = mean + log_std.exp() * eps
        log_prob = (-0.5 * eps.square() - log_std - HALF_LOG_2PI).sum(dim=-1)
        log_det = 2 * (math.log(2) - u - nn.functional.softplus(-2 * u))
        return torch.tanh(u), log_prob - log_det.sum(dim=-1)

    def alpha(self) -> torch.Tensor:
        """[S]: the temperature, as a constant of the losses."""
        return self.temperature.log_value.detach().exp()

    def target_entropy(self) -> torch.Tensor:
        """[S]: -|A|, moved by the exploration scale as SAC's is (sac.py)."""
        scale = torch.ones_like(self.alpha()) if self.exploration_scale is None else self.exploration_scale
        return -float(self.spec.action_dim) + self.spec.action_dim * torch.log(scale)

    # ---- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        features = self.actor_features(self.images(obs))
        if explore:
            return self.sample_actions(features, self.noise_rng)[0]
        return torch.tanh(self.policy(features)[0])

    def exploration_level(self) -> dict[str, torch.Tensor]:
        return {"target_entropy": self.target_entropy(), "temperature": self.alpha()}

    # ---- storing and sampling -----------------------------------------------------------------------------
    def store(self, t: Transition) -> None:
        self.replay.add(t.obs[:, 0], t.action[:, 0], t.reward[:, 0], t.next_obs[:, 0], t.terminated[:, 0].float())

    def on_episode_start(self, mask: torch.Tensor, explore: bool) -> None:
        if explore:
            self.replay.start_episodes(mask.any(dim=1))

    def updates_due(self, t: Transition) -> int:
        if not t.learn or self.replay.size < self.config.batch_size:
            return 0
        return self.config.updates_per_step

    def sample(self, positions=lambda logical, size: logical) -> Batch:
        """A uniform batch from each seed's own buffer: obs and next_obs as uint8 stacks [S, B, C, H, W]."""
        logical = self.sample_rng.randint(self.replay.size, self.config.batch_size)
        return self.batch_at(positions(logical, self.replay.size))

    def stored(self) -> int:
        return self.replay.size

    def batch_at(self, logical: torch.Tensor) -> Batch:
        return self.replay.get(self.replay.chronological(logical))

    # ---- the losses ---------------------------------------------------------------------------------------
    def views(self, batch: Batch, rng: SeedRNG) -> dict[str, list[torch.Tensor]]:
        """Two independently shifted copies of the observations and of the next observations (M = K = 2)."""
        pad = self.config.image_pad
        return {key: [random_shift(batch[key], pad, rng) for _ in range(2)] for key in ("obs", "next_obs")}

    def critic_target(self, batch: Batch, rng: SeedRNG, next_views: list[torch.Tensor]) -> torch.Tensor:
        """[S, B]: the soft TD target, averaged over the shifted next observations."""
        critic, alpha = self.networks["critic"], self.alpha()
        targets = []
        with torch.no_grad():
            for next_obs in next_views:
                next_action, next_log_prob = self.sample_actions(self.actor_features(next_obs), rng)
                next_q = q_values(critic.target, self.critic_features(next_obs, target=True), next_action).min(dim=1).values
                soft_q = next_q - seed_view(alpha, next_q) * next_log_prob
                targets.append(batch["reward"] + (1.0 - batch["done"]) * self.config.gamma * soft_q)
        return sum(targets) / len(targets)

    def view_loss(self, batch: Batch, images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both critics' mean squared errors on one shifted copy of the observations, summed, [S]; their values [S, 2, B]."""
        q = q_values(self.networks["critic"].module, self.critic_features(images), batch["action"])
        return (q - target.unsqueeze(1)).square().mean(dim=-1).sum(dim=1), q

    def critic_loss(self, batch: Batch, rng: SeedRNG, views: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        """[S]: the critic's loss, summed over the shifted copies of the observations."""
        target = self.critic_target(batch, rng, views["next_obs"])
        return sum(self.view_loss(batch, images, target)[0] for images in views["obs"])

    def actor_loss(self, images: torch.Tensor, rng: SeedRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """[S]: E[alpha log pi(a|s) - min_j Q_j(s, a)] on shifted observations, and the samples' log-probabilities [S, B]."""
        action, log_prob = self.sample_actions(self.actor_features(images), rng)
        with torch.no_grad():
            features = self.critic_features(images)
        min_q = q_values(self.networks["critic"].module, features, action).min(dim=1).values
        return (seed_view(self.alpha(), log_prob) * log_prob - min_q).mean(dim=-1), log_prob

    def squared_td_error(self) -> torch.Tensor:
        return self.last["critic_loss"] / 4  # the loss sums two critics on two shifted copies

    # ---- the update ---------------------------------------------------------------------------------------
    def update(self, batch: Batch) -> tuple[str, ...]:
        critic = self.networks["critic"]
        views = self.views(batch, self.shift_rng)
        target = self.critic_target(batch, self.noise_rng, views["next_obs"])
        critic.optimizer.zero_grad()
        self.encoder_optimizer.zero_grad()
        losses, values = [], []
        for k, images in enumerate(views["obs"]):  # a backward pass per shifted copy: half the activations at once, the same gradient
            loss, q = self.view_loss(batch, images, target)
            (with_terms(loss, critic) if k == 0 else loss).sum().backward()  # seeds are independent: the sum's gradient is each seed's own
            losses.append(loss.detach())
            values.append(q.detach())
        critic.optimizer.step(self.active)
        self.encoder_optimizer.step(self.active)
        self.last["critic_loss"], self.last["q_mean"] = sum(losses), values[0].mean(dim=(1, 2))
        self.updates += 1
        stepped: tuple[str, ...] = ("critic",)
        if self.updates % self.config.actor_every == 0:
            self.update_actor_and_temperature(views["obs"][0])
            stepped = ("critic", "actor")
        if self.updates % self.config.target_every == 0:
            self.soft_update()
        return stepped

    def update_actor_and_temperature(self, images: torch.Tensor) -> None:
        actor = self.networks["actor"]
        actor_loss, log_prob = self.actor_loss(images, self.noise_rng)
        actor.optimizer.zero_grad()
        self.actor_projection_optimizer.zero_grad()
        with_terms(actor_loss, actor).sum().backward()
        actor.optimizer.step(self.active)
        self.actor_projection_optimizer.step(self.active)
        self.networks["critic"].module.zero_grad(set_to_none=True)  # the actor's backward pass also reached the critic heads
        alpha = self.temperature.log_value.exp()
        temperature_loss = (alpha.unsqueeze(1) * (-log_prob - self.target_entropy().unsqueeze(1)).detach()).mean(dim=-1)
        self.temperature_optimizer.zero_grad()
        temperature_loss.sum().backward()
        self.temperature_optimizer.step(self.active)
        self.last |= {
            "actor_loss": actor_loss.detach(),
            "temperature_loss": temperature_loss.detach(),
            "entropy": -log_prob.detach().mean(dim=-1),
        }

    @torch.no_grad()
    def soft_update(self) -> None:
        """Targets move toward their online networks: critic heads by critic_tau, encoder and projection by encoder_tau
        (failed seeds' targets stay)."""
        critic = self.networks["critic"]
        pairs = [(critic.module, critic.target, self.config.critic_tau)]
        pairs += [(self.encoder, self.encoder_target, self.config.encoder_tau)]
        pairs += [(self.critic_projection, self.critic_projection_target, self.config.encoder_tau)]
        for online_module, target_module, tau in pairs:
            online, tracked = list(online_module.parameters()), list(target_module.parameters())
            keep = [torch.where(seed_view(self.active, p), p, t) for p, t in zip(online, tracked, strict=True)]
            torch._foreach_lerp_(tracked, keep, tau)

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Last losses; every plasticity diagnostic of the actor and critic MLPs and of the encoder (channels as units,
        plus the srank of the critic's features) with each one's gradient norm, on a probe batch; the temperature."""
        out = {**self.last, **self.exploration_level()}
        if self.replay.size == 0:
            return out
        probe = self.batch_at(self.probe_rng.randint(self.replay.size, self.config.batch_size))
        for name, net in self.networks.items():
            out |= network_diagnostics(name, net.module, net.inputs(probe), net.initial)
        out |= encoder_diagnostics("encoder", self.encoder, probe["obs"], self.encoder_initial)
        with torch.no_grad():
            out["encoder_srank"] = srank(self.critic_features(probe["obs"]))
        trained = [*self.modules().values()]
        for name, net in self.networks.items():
            for module in trained:
                module.zero_grad(set_to_none=True)
            with torch.enable_grad():  # the engine evaluates under no_grad
                net.loss(probe, self.probe_rng).sum().backward()
            out[f"{name}_gradient_norm"] = gradient_norm(net.module)
            if name == "critic":
                out["encoder_gradient_norm"] = gradient_norm(self.encoder)
        for module in trained:
            module.zero_grad(set_to_none=True)
        return out

    def policy_weights(self) -> list[torch.Tensor]:
        return [layer.weight.data for layer in linear_layers(self.networks["actor"].module)]

    def optimizers(self) -> list[SeedAdam]:
        heads = [net.optimizer for net in self.networks.values()]
        return [*heads, self.encoder_optimizer, self.actor_projection_optimizer, self.temperature_optimizer]

    def modules(self) -> dict[str, nn.Module]:
        online = {name: net.module for name, net in self.networks.items()}
        targets = {f"{name}_target": net.target for name, net in self.networks.items() if net.target is not None}
        encoders = {
            "encoder": self.encoder,
            "encoder_target": self.encoder_target,
            "critic_projection": self.critic_projection,
            "critic_projection_target": self.critic_projection_target,
            "actor_projection": self.actor_projection,
        }
        return online | targets | encoders | {"temperature": self.temperature}

    def random_streams(self) -> dict[str, SeedRNG]:
        return {"init": self.init_rng, "noise": self.noise_rng, "sample": self.sample_rng, "probe": self.probe_rng, "shift": self.shift_rng}

    def extra_state(self) -> dict:
        return {
            "replay": self.replay.state_dict(),
            "updates": self.updates,
            "last": self.last,
            "rngs": {key: rng.state_dict() for key, rng in self.random_streams().items()},
            "initial": {name: net.initial for name, net in self.networks.items()},
            "encoder_initial": self.encoder_initial,
        }

    def load_extra_state(self, state: dict) -> None:
        self.replay.load_state_dict(state["replay"])
        self.updates, self.last = state["updates"], state["last"]
        for name, net in self.networks.items():
            net.initial = state["initial"][name]
        self.encoder_initial = state["encoder_initial"]
        for key, rng in self.random_streams().items():
            rng.load_state_dict(state["rngs"][key])
