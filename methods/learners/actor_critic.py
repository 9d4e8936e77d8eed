"""What the off-policy actor-critic learners (TD3, SAC) share: their config, replay, uniform sampling, a twin critic
with a target copy, soft updates, plasticity diagnostics and checkpoint state. Not a learner itself: td3.py and
sac.py add the actor's output, acting, the losses and the update.

Seed-batched: every network carries a leading seed axis; the twin critics are one network with a member axis of
size 2. Random streams (ids 1-4) are per seed: initial weights, training noise, sampling, and the diagnostics' own.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from cyclic_bench.errors import integer, layer_indices, layer_sizes, number, one_of, require, require_settings
from cyclic_bench.learner import Batch, Learner, Network, NetworkOptions
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.nn import ACTIVATIONS, BatchedMLP, SeedAdam, seed_view
from cyclic_bench.plasticity import clone_parameters, gradient_norm, linear_layers, network_diagnostics
from cyclic_bench.replay import SeedReplay
from cyclic_bench.rng import SeedRNG


@dataclass
class ActorCriticConfig:
    name: str = ""  # registered method name
    base: str = ""  # the learner (an intervention picks it with method.base=<learner>)
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])  # actor hidden layer sizes (units)
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])  # each twin critic's hidden sizes (units)
    actor_layer_norm: list[int] = field(default_factory=list)  # actor hidden layers with LayerNorm before the activation
    critic_layer_norm: list[int] = field(default_factory=list)  # critic hidden layers with LayerNorm before the activation
    activation: str = "relu"  # hidden activation of both networks: relu | crelu (two features per unit)
    lr: float = 3e-4  # Adam learning rate, actor and critic
    batch_size: int = 256  # transitions per seed per update
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target-network soft-update rate
    buffer_size: int = 1_000_000  # replay capacity per seed (capped at the stream's length)
    updates_per_step: int = 1  # gradient updates per environment step

    def __post_init__(self) -> None:
        require_learner_settings(self)
        require_settings("method", self, {"tau": number(0, 1, low_open=True)})


def require_learner_settings(config) -> None:
    """The checks every actor-critic learner's config shares (TD3, SAC, DrQ): network shapes, optimiser, replay."""
    require_settings(
        "method",
        config,
        {
            "actor_hidden": layer_sizes(),
            "critic_hidden": layer_sizes(),
            "activation": one_of(list(ACTIVATIONS)),
            "lr": number(0, low_open=True),
            "batch_size": integer(1),
            "gamma": number(0, 1),
            "buffer_size": integer(1),
            "updates_per_step": integer(1),
        },
    )
    hidden_layers = {"actor_layer_norm": len(config.actor_hidden), "critic_layer_norm": len(config.critic_hidden)}
    require_settings("method", config, {name: layer_indices(layers) for name, layers in hidden_layers.items()})
    require(
        config.buffer_size >= config.batch_size,
        f"method.buffer_size={config.buffer_size} is not allowed: it must be >= method.batch_size={config.batch_size}",
    )


def twin_inputs(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """[S, B, O] and [S, B, A] -> the twin critics' input [S, 2, B, O + A]."""
    return torch.cat([obs, action], dim=-1).unsqueeze(1).expand(-1, 2, -1, -1)


def q_values(critic: torch.nn.Module, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Both critics' values, [S, 2, B]."""
    return critic(twin_inputs(obs, action)).squeeze(-1)


class OffPolicyActorCritic(Learner):
    """Subclasses set how many outputs the actor has per action dimension, its output activation, whether it keeps a
    target copy, and implement `act`, `actor_loss`, `critic_loss`, `update` and the exploration read-outs."""

    actor_outputs: ClassVar[int] = 1  # actor outputs per action dimension
    actor_output_activation: ClassVar[Callable | None] = None
    actor_has_target: ClassVar[bool] = True

    def __init__(self, config: ActorCriticConfig, spec: MethodSpec, options: dict[str, NetworkOptions], active: torch.Tensor):
        super().__init__(config, spec, options, active)
        S, obs_dim, act_dim, device = spec.n_seeds, spec.obs_dim, spec.action_dim, spec.device
        self.init_rng = SeedRNG(spec.seed_ids, stream=1, device=device)
        self.noise_rng = SeedRNG(spec.seed_ids, stream=2, device=device)
        self.sample_rng = SeedRNG(spec.seed_ids, stream=3, device=device)
        self.probe_rng = SeedRNG(spec.seed_ids, stream=4, device=device)  # diagnostics draw apart from training

        a, c = options["actor"], options["critic"]
        actor = BatchedMLP(
            S,
            [obs_dim, *a.hidden, self.actor_outputs * act_dim],
            self.init_rng,
            activation=ACTIVATIONS[a.activation],
            output_activation=self.actor_output_activation,
            layer_norm=a.layer_norm,
        )
        critic = BatchedMLP(
            S, [obs_dim + act_dim, *c.hidden, 1], self.init_rng, members=(2,), activation=ACTIVATIONS[c.activation], layer_norm=c.layer_norm
        )
        self.networks = {
            "actor": Network(
                actor,
                SeedAdam(actor.parameters(), S, config.lr),
                self.init_rng,
                copy.deepcopy(actor) if self.actor_has_target else None,
                clone_parameters(actor),
                inputs=lambda batch: batch["obs"],
                loss=self.actor_loss,
            ),
            "critic": Network(
                critic,
                SeedAdam(critic.parameters(), S, config.lr),
                self.init_rng,
                copy.deepcopy(critic),
                clone_parameters(critic),
                inputs=lambda batch: twin_inputs(batch["obs"], batch["action"]),
                loss=lambda batch, rng: self.critic_loss(batch, rng)[0],
            ),
        }
        capacity = min(config.buffer_size, spec.total_steps)
        self.replay = SeedReplay(
            S, capacity, {"obs": (obs_dim,), "action": (act_dim,), "reward": (), "next_obs": (obs_dim,), "done": ()}, device
        )
        self.updates = 0
        self.last = {name: torch.full((S,), float("nan"), device=device) for name in ("critic_loss", "actor_loss", "q_mean")}

    @classmethod
    def network_options(cls, config: ActorCriticConfig) -> dict[str, NetworkOptions]:
        return {
            net: NetworkOptions(list(getattr(config, f"{net}_hidden")), list(getattr(config, f"{net}_layer_norm")), config.activation)
            for net in ("actor", "critic")
        }

    @property
    def actor(self) -> torch.nn.Module:
        return self.networks["actor"].module

    @property
    def critic(self) -> torch.nn.Module:
        return self.networks["critic"].module

    # ---- storing and sampling -----------------------------------------------------------------------------
    def store(self, t: Transition) -> None:
        self.replay.add(obs=t.obs, action=t.action, reward=t.reward, next_obs=t.next_obs, done=t.terminated.float())

    def updates_due(self, t: Transition) -> int:
        if not t.learn or self.replay.size < self.config.batch_size:
            return 0
        return self.config.updates_per_step * t.obs.shape[1]

    def sample(self, positions: Callable[[torch.Tensor, int], torch.Tensor] = lambda logical, size: logical) -> Batch:
        """A uniform batch [S, B, ...] from each seed's own buffer (positions may be moved first)."""
        logical = self.sample_rng.randint(self.replay.size_now, self.config.batch_size)  # a device tensor: capturable
        return self.batch_at(positions(logical, self.replay.size))

    def stored(self) -> int:
        return self.replay.size

    def batch_at(self, logical: torch.Tensor) -> Batch:
        return self.replay.get(self.replay.chronological(logical))

    # ---- the update ---------------------------------------------------------------------------------------
    @property
    def capturable(self) -> bool:
        """True while `update` is `plan_update` then `learn`: a subclass that overrides `update` runs it eagerly."""
        return type(self).update is OffPolicyActorCritic.update

    def update(self, batch: Batch) -> tuple[str, ...]:
        stepping = self.plan_update()
        self.learn(batch, stepping)
        return stepping

    def keep(self, **values: torch.Tensor) -> None:
        """Record the update's losses into `last`, in place (a captured update writes the same tensors at every replay)."""
        for name, value in values.items():
            self.last[name].copy_(value.detach())

    def drop_gradients(self) -> None:
        """Every gradient back to None at the end of `learn`, so each update starts from the same state (one traced
        graph per `stepping`; nothing reads a gradient between updates)."""
        for optimizer in self.optimizers():
            optimizer.zero_grad()

    # ---- learning helpers ---------------------------------------------------------------------------------
    @abstractmethod
    def critic_loss(self, batch: Batch, noise_rng: SeedRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """The critics' loss [S] and their values [S, 2, B]."""

    @abstractmethod
    def actor_loss(self, batch: Batch, noise_rng: SeedRNG) -> torch.Tensor:
        """The actor's loss [S]."""

    @torch.no_grad()
    def soft_update(self) -> None:
        """Every target moves `tau` toward its online network (failed seeds' targets stay)."""
        for net in self.networks.values():
            if net.target is None:
                continue
            online, tracked = list(net.module.parameters()), list(net.target.parameters())
            keep = [torch.where(seed_view(self.active, p), p, t) for p, t in zip(online, tracked, strict=True)]
            torch._foreach_lerp_(tracked, keep, self.config.tau)

    # ---- bookkeeping --------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Last losses, plus every plasticity diagnostic and the gradient norm of each network on a probe batch."""
        if self.replay.size == 0:
            return dict(self.last)
        slots = self.probe_rng.randint(self.replay.size, self.config.batch_size)
        probe = self.replay.get(self.replay.chronological(slots))
        out = dict(self.last)
        for name, net in self.networks.items():
            out |= network_diagnostics(name, net.module, net.inputs(probe), net.initial)
        for name, net in self.networks.items():
            net.module.zero_grad(set_to_none=True)
            with torch.enable_grad():  # the engine evaluates under no_grad
                net.loss(probe, self.probe_rng).sum().backward()
            out[f"{name}_gradient_norm"] = gradient_norm(net.module)
        for net in self.networks.values():
            net.module.zero_grad(set_to_none=True)
        return out

    def policy_weights(self) -> list[torch.Tensor]:
        return [layer.weight.data for layer in linear_layers(self.actor)]

    def optimizers(self) -> list[SeedAdam]:
        return [net.optimizer for net in self.networks.values()]

    def modules(self) -> dict[str, torch.nn.Module]:
        online = {name: net.module for name, net in self.networks.items()}
        return online | {f"{name}_target": net.target for name, net in self.networks.items() if net.target is not None}

    def random_streams(self) -> dict[str, SeedRNG]:
        return {"init": self.init_rng, "noise": self.noise_rng, "sample": self.sample_rng, "probe": self.probe_rng}

    def extra_state(self) -> dict:
        return {
            "replay": self.replay.state_dict(),
            "updates": self.updates,
            "last": self.last,
            "rngs": {key: rng.state_dict() for key, rng in self.random_streams().items()},
            "initial": {name: net.initial for name, net in self.networks.items()},
        }

    def load_extra_state(self, state: dict) -> None:
        self.replay.load_state_dict(state["replay"])
        self.updates = state["updates"]
        self.keep(**state["last"])
        for name, net in self.networks.items():
            net.initial = state["initial"][name]
        for key, rng in self.random_streams().items():
            rng.load_state_dict(state["rngs"][key])
