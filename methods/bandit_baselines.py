"""Bandit baselines, seed-batched: epsilon-greedy, Boltzmann, UCB, discounted UCB and Gaussian Thompson sampling.

The comparison set of the neuromodulated bandit agent (Lee, Liebana Garcia, Clopath & Dabney 2024, arXiv
2408.08446; methods/achna.py), each implemented as its paper states it:
- `epsilon_greedy`: sample-average values, a uniformly random arm with probability epsilon (Sutton & Barto 2018, 2.4).
- `boltzmann`: softmax over values at a fixed temperature (Sutton & Barto 2018, 2.8), constant step size.
- `ucb`: UCB1, value + c * sqrt(ln t / n_a) (Auer, Cesa-Bianchi & Fischer 2002; c = sqrt(2) for rewards in [0, 1]).
- `discounted_ucb` / `discounted_ucb_999`: D-UCB (Garivier & Moulines 2011): counts and reward sums discounted by
  gamma every step, value = discounted sum / discounted count, bonus c * sqrt(ln n_t / N_a) with n_t the total
  discounted count (the paper writes c = 2B sqrt(xi) for rewards bounded by B).
- `thompson`: Gaussian Thompson sampling (Agrawal & Goyal 2013): theta_a ~ N(sum_a / (n_a + 1), v / (n_a + 1)).
Every method first plays each arm once, in order (as the public bandit code does), then follows its rule.
Defaults follow the public code where it sets one (epsilon 0.05; Boltzmann temperature 0.25 and step 0.25; UCB
rho = c^2 = 1; D-UCB gamma 0.99 and 0.999). The public code's sample-average versions keep reward *sums* where the
papers use means (its epsilon-greedy and Thompson sampling take argmax over sums, its D-UCB discounts only the
chosen arm's count); these use the papers' definitions.

Seeds are a tensor axis: statistics are [S, arms] float64, random draws come from per-seed counter-based streams
and every seed draws the same number of numbers each step, so a seed plays identically alone or in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.registry import register_method
from cyclic_bench.rng import SeedRNG


class BanditMethod(Method):
    """Shared plumbing of bandit agents: discrete actions, each arm once first, per-seed statistics in `self.stats`.

    Subclasses implement `choose(envs) -> [S, envs]` (exploring choice), `greedy() -> [S]` and
    `learn(arm [S], reward [S], live [S])`, and keep every per-seed tensor they update in `self.stats`.
    """

    action_kinds = frozenset({"discrete"})
    uses_random_warmup = False

    def __init__(self, config, spec: MethodSpec):
        require(spec.action_dim >= 2, f"{type(self).__name__} needs at least 2 arms; the stream has {spec.action_dim}")
        super().__init__(config, spec)
        self.S, self.A = spec.n_seeds, spec.action_dim
        self.rng = SeedRNG(spec.seed_ids, stream=1, device=spec.device)
        self.stats: dict[str, torch.Tensor] = {"seen": torch.zeros(self.S, self.A, dtype=torch.bool, device=spec.device)}

    def zeros(self) -> torch.Tensor:
        """A fresh [S, arms] float64 statistic."""
        return torch.zeros(self.S, self.A, dtype=torch.float64, device=self.spec.device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        envs = obs.shape[1]
        if not explore:
            return self.greedy()[:, None].expand(-1, envs).clone()
        choice = self.choose(envs)  # drawn even while arms are unseen, so every seed consumes the same random numbers
        seen = self.stats["seen"]
        first_unseen = (~seen).to(torch.int64).argmax(dim=1, keepdim=True)
        return torch.where(seen.all(dim=1, keepdim=True), choice, first_unseen.expand(-1, envs))

    @torch.no_grad()
    def observe(self, t: Transition) -> None:
        for e in range(t.action.shape[1]):  # a seed's environments are learned from one after another
            arm, reward = t.action[:, e].long(), t.reward[:, e].to(torch.float64)
            self.learn(arm, reward, self.active)
            pulled = torch.nn.functional.one_hot(arm, self.A).bool() & self.active[:, None]
            self.stats["seen"] |= pulled

    def sample(self, probs: torch.Tensor, envs: int) -> torch.Tensor:
        """[S, envs] arms drawn from per-seed probabilities [S, arms] by inverse CDF."""
        u = self.rng.uniform(envs).to(torch.float64)
        cdf = probs.cumsum(dim=1)
        return (cdf[:, None, :] < u[..., None]).sum(dim=-1).clamp(max=self.A - 1)

    def random_arms(self, envs: int) -> torch.Tensor:
        return self.rng.randint(self.A, envs)

    def choose(self, envs: int) -> torch.Tensor:
        raise NotImplementedError

    def greedy(self) -> torch.Tensor:
        raise NotImplementedError

    def learn(self, arm: torch.Tensor, reward: torch.Tensor, live: torch.Tensor) -> None:
        raise NotImplementedError

    def update_arm(self, name: str, arm: torch.Tensor, live: torch.Tensor, new_value: torch.Tensor) -> None:
        """stats[name][s, arm[s]] = new_value[s] for live seeds."""
        stat = self.stats[name]
        rows = torch.arange(self.S, device=stat.device)
        stat[rows, arm] = torch.where(live, new_value.to(stat.dtype), stat[rows, arm])

    def pulled(self, name: str, arm: torch.Tensor) -> torch.Tensor:
        """[S]: stats[name] of each seed's pulled arm."""
        return self.stats[name].gather(1, arm[:, None]).squeeze(1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def learned(self) -> list[str]:
        """The statistics learned from rewards (checked for NaN and infinity); default every floating statistic."""
        return [name for name, value in self.stats.items() if value.is_floating_point()]

    def nonfinite_seeds(self) -> torch.Tensor:
        bad = torch.zeros_like(self.active)
        for name in self.learned():
            bad |= ~torch.isfinite(self.stats[name].reshape(self.S, -1)).all(dim=1)
        return bad

    def extra_state(self) -> dict:
        return {"stats": {k: v.clone() for k, v in self.stats.items()}, "rng": self.rng.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        for name, value in state["stats"].items():
            self.stats[name] = value.to(self.spec.device).clone()
        self.rng.load_state_dict(state["rng"])


def require_step_size(step_size: float) -> None:
    require(step_size >= 0, f"method.step_size={step_size} is not allowed: it must be >= 0 (0 = sample averages)")


class ValueEstimates(BanditMethod):
    """Per-arm value estimates: sample averages (step_size 0) or a constant step size (tracks changing arms)."""

    def __init__(self, config, spec: MethodSpec):
        super().__init__(config, spec)
        self.stats.update(value=self.zeros(), count=self.zeros())

    def learn(self, arm: torch.Tensor, reward: torch.Tensor, live: torch.Tensor) -> None:
        count = self.pulled("count", arm) + 1
        step = 1.0 / count if self.config.step_size == 0 else torch.full_like(count, self.config.step_size)
        value = self.pulled("value", arm)
        self.update_arm("count", arm, live, count)
        self.update_arm("value", arm, live, value + step * (reward - value))

    def greedy(self) -> torch.Tensor:
        return self.stats["value"].argmax(dim=1)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"value_max": self.stats["value"].max(dim=1).values.float()}


# ---- epsilon-greedy -------------------------------------------------------------------------------------------
@dataclass
class EpsilonGreedyConfig:
    name: str = "epsilon_greedy"  # registered method name
    epsilon: float = 0.05  # probability of a uniformly random arm
    step_size: float = 0.0  # 0 = sample averages; > 0 = constant step size

    def __post_init__(self) -> None:
        require(0 <= self.epsilon <= 1, f"method.epsilon={self.epsilon} is not allowed: it must lie in [0, 1]")
        require_step_size(self.step_size)


@register_method("epsilon_greedy")
class EpsilonGreedy(ValueEstimates):
    Config = EpsilonGreedyConfig

    def choose(self, envs: int) -> torch.Tensor:
        explore = self.rng.uniform(envs) < self.config.epsilon
        return torch.where(explore, self.random_arms(envs), self.greedy()[:, None])


# ---- Boltzmann ------------------------------------------------------------------------------------------------
@dataclass
class BoltzmannConfig:
    name: str = "boltzmann"  # registered method name
    temperature: float = 0.25  # softmax temperature (public code: 0.25)
    step_size: float = 0.25  # 0 = sample averages; > 0 = constant step size (public code: 0.25)

    def __post_init__(self) -> None:
        require(self.temperature > 0, f"method.temperature={self.temperature} is not allowed: it must be > 0")
        require_step_size(self.step_size)


@register_method("boltzmann")
class Boltzmann(ValueEstimates):
    Config = BoltzmannConfig

    def choose(self, envs: int) -> torch.Tensor:
        return self.sample(torch.softmax(self.stats["value"] / self.config.temperature, dim=1), envs)


# ---- UCB1 -----------------------------------------------------------------------------------------------------
@dataclass
class UCBConfig:
    name: str = "ucb"  # registered method name
    exploration: float = 1.0  # c in value + c * sqrt(ln t / n_a) (public code: rho = c^2 = 1)
    step_size: float = 0.0  # 0 = sample averages (UCB1); > 0 = constant step size

    def __post_init__(self) -> None:
        require(self.exploration >= 0, f"method.exploration={self.exploration} is not allowed: it must be >= 0")
        require_step_size(self.step_size)


@register_method("ucb")
class UCB(ValueEstimates):
    Config = UCBConfig

    def choose(self, envs: int) -> torch.Tensor:
        count = self.stats["count"].clamp(min=1.0)
        total = count.sum(dim=1, keepdim=True)
        bonus = self.config.exploration * torch.sqrt(torch.log(total) / count)
        return (self.stats["value"] + bonus).argmax(dim=1)[:, None].expand(-1, envs)


# ---- discounted UCB -------------------------------------------------------------------------------------------
@dataclass
class DiscountedUCBConfig:
    name: str = "discounted_ucb"  # registered method name
    gamma: float = 0.99  # discount of counts and reward sums per step
    exploration: float = 1.0  # c in value + c * sqrt(ln n_t / N_a) (Garivier & Moulines: c = 2B sqrt(xi))

    def __post_init__(self) -> None:
        require(0 < self.gamma <= 1, f"method.gamma={self.gamma} is not allowed: it must lie in (0, 1]")
        require(self.exploration >= 0, f"method.exploration={self.exploration} is not allowed: it must be >= 0")


@register_method("discounted_ucb_999", gamma=0.999)
@register_method("discounted_ucb")
class DiscountedUCB(BanditMethod):
    Config = DiscountedUCBConfig

    def __init__(self, config: DiscountedUCBConfig, spec: MethodSpec):
        super().__init__(config, spec)
        self.stats.update(count=self.zeros(), reward_sum=self.zeros())

    def learn(self, arm: torch.Tensor, reward: torch.Tensor, live: torch.Tensor) -> None:
        pulled = torch.nn.functional.one_hot(arm, self.A).to(torch.float64)
        keep = live[:, None]
        gamma = self.config.gamma
        self.stats["count"] = torch.where(keep, gamma * self.stats["count"] + pulled, self.stats["count"])
        self.stats["reward_sum"] = torch.where(keep, gamma * self.stats["reward_sum"] + pulled * reward[:, None], self.stats["reward_sum"])

    def values(self) -> torch.Tensor:
        return self.stats["reward_sum"] / self.stats["count"].clamp(min=1e-12)

    def greedy(self) -> torch.Tensor:
        return self.values().argmax(dim=1)

    def choose(self, envs: int) -> torch.Tensor:
        count = self.stats["count"].clamp(min=1e-12)
        total = count.sum(dim=1, keepdim=True).clamp(min=1.0)  # ln of less than one pull would make the bonus imaginary
        bonus = self.config.exploration * torch.sqrt(torch.log(total) / count)
        return (self.values() + bonus).argmax(dim=1)[:, None].expand(-1, envs)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"discounted_pulls": self.stats["count"].sum(dim=1).float()}


# ---- Gaussian Thompson sampling -------------------------------------------------------------------------------
@dataclass
class ThompsonConfig:
    name: str = "thompson"  # registered method name
    noise_variance: float = 1.0  # v: the posterior of arm a is N(sum_a / (n_a + 1), v / (n_a + 1)) (Agrawal & Goyal: 1)

    def __post_init__(self) -> None:
        require(self.noise_variance > 0, f"method.noise_variance={self.noise_variance} is not allowed: it must be > 0")


@register_method("thompson")
class GaussianThompson(BanditMethod):
    Config = ThompsonConfig

    def __init__(self, config: ThompsonConfig, spec: MethodSpec):
        super().__init__(config, spec)
        self.stats.update(count=self.zeros(), reward_sum=self.zeros())

    def learn(self, arm: torch.Tensor, reward: torch.Tensor, live: torch.Tensor) -> None:
        self.update_arm("count", arm, live, self.pulled("count", arm) + 1)
        self.update_arm("reward_sum", arm, live, self.pulled("reward_sum", arm) + reward)

    def posterior_mean(self) -> torch.Tensor:
        return self.stats["reward_sum"] / (self.stats["count"] + 1)

    def greedy(self) -> torch.Tensor:
        return self.posterior_mean().argmax(dim=1)

    def choose(self, envs: int) -> torch.Tensor:
        std = torch.sqrt(self.config.noise_variance / (self.stats["count"] + 1))
        draws = self.posterior_mean()[:, None, :] + std[:, None, :] * self.rng.normal(envs, self.A).to(torch.float64)
        return draws.argmax(dim=-1)
