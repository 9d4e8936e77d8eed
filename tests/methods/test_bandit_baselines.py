import io
import math

import pytest
import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.registry import get_method, method_names
from cyclic_bench.run import train

BANDIT_METHODS = [name for name in method_names() if "discrete" in get_method(name)[0].action_kinds]


def bandit_spec(seed_ids, arms: int = 3) -> MethodSpec:
    return MethodSpec(1, arms, "discrete", tuple(seed_ids), 1, 10_000, torch.device("cpu"))


def make(name: str, seed_ids=(0, 1), arms: int = 3, **settings) -> Method:
    cls, config_cls = get_method(name)
    return cls(config_cls(**settings), bandit_spec(seed_ids, arms))


def step(agent: Method, reward_of) -> torch.Tensor:
    """One act/observe round; `reward_of(arms [S]) -> rewards [S]`; returns the arms played."""
    obs = torch.zeros(agent.S, 1, 1)
    arms = agent.act(obs, explore=True)
    reward = reward_of(arms[:, 0]).to(torch.float32)[:, None]
    done = torch.zeros(agent.S, 1, dtype=torch.bool)
    agent.observe(Transition(obs, arms, reward, obs, done, done, learn=True))
    return arms[:, 0]


def gaussian_arms(means, stds, seed: int = 0):
    """reward_of for fixed Gaussian arms shared by every seed, with its own torch generator."""
    g = torch.Generator().manual_seed(seed)
    means, stds = torch.tensor(means), torch.tensor(stds)
    return lambda arms: means[arms] + stds[arms] * torch.randn(len(arms), generator=g)


@pytest.mark.parametrize("name", BANDIT_METHODS)
def test_every_bandit_method_is_discrete_without_random_warmup_and_plays_each_arm_first(name):
    cls, _ = get_method(name)
    assert cls.action_kinds == frozenset({"discrete"}) and not cls.uses_random_warmup
    agent = make(name, arms=4)
    reward_of = gaussian_arms([0.0, 1.0, 2.0, 3.0], [0.1] * 4)
    assert [step(agent, reward_of).tolist() for _ in range(4)] == [[0, 0], [1, 1], [2, 2], [3, 3]]


@pytest.mark.parametrize("name", BANDIT_METHODS)
def test_every_bandit_method_finds_the_best_of_well_separated_arms(name):
    agent = make(name, seed_ids=range(8))
    reward_of = gaussian_arms([0.0, 2.0, 1.0], [0.2, 0.2, 0.2])
    arms = torch.stack([step(agent, reward_of) for _ in range(400)])
    assert (arms[-100:] == 1).float().mean() > 0.6  # 1/3 at random; a low fixed temperature can lock a seed onto arm 2
    assert (agent.act(torch.zeros(8, 1, 1), explore=False) == 1).float().mean() > 0.6


@pytest.mark.parametrize("name", BANDIT_METHODS)
def test_a_seed_plays_the_same_alone_and_inside_a_batch(name):
    batch, alone = make(name, seed_ids=(4, 5, 6)), make(name, seed_ids=(5,))
    per_seed = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 2.0], [0.3, 0.2, 0.1]])
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        noise = torch.randn(3, 3, generator=g)
        a = step(batch, lambda arms, noise=noise: per_seed[torch.arange(3), arms] + noise[torch.arange(3), arms])
        b = step(alone, lambda arms, noise=noise: per_seed[1, arms] + noise[1, arms])
        assert a[1] == b[0]
    for key, value in alone.stats.items():
        assert torch.equal(value[0], batch.stats[key][1]), key
    for key, value in alone.diagnostics().items():
        torch.testing.assert_close(value[0], batch.diagnostics()[key][1], equal_nan=True)


@pytest.mark.parametrize("name", BANDIT_METHODS)
def test_a_checkpoint_loses_nothing(name):
    first = make(name)
    reward_of = gaussian_arms([0.0, 1.0, 0.5], [1.0, 1.0, 1.0], seed=3)
    for _ in range(40):
        step(first, reward_of)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(name)
    second.load_state_dict(torch.load(buffer, weights_only=False))
    for _ in range(40):
        rewards = reward_of(torch.arange(3))  # both agents see the same reward for the same arm
        assert torch.equal(step(first, lambda arms, r=rewards: r[arms]), step(second, lambda arms, r=rewards: r[arms]))
    for key, value in first.stats.items():
        assert torch.equal(value, second.stats[key]), key


@pytest.mark.parametrize("name", BANDIT_METHODS)
def test_every_bandit_method_runs_the_smoke_bandit_stream(tmp_path, name):
    summary = train(compose_config([f"method={name}", "protocol=bandit", "protocol.size=smoke", "seeds=2", "progress=false"]), tmp_path)
    assert summary["failed_seeds"] == [] and set(summary["final_scores"]) == {"bandit"}
    assert all(math.isfinite(v) for v in summary["final_scores"]["bandit"].values())


def test_a_failed_seed_stops_learning():
    agent = make("epsilon_greedy")
    agent.deactivate(torch.tensor([False, True]))
    for _ in range(5):
        step(agent, lambda arms: torch.ones(2))
    assert agent.stats["count"][1].sum() == 0 and agent.stats["count"][0].sum() == 5


def test_epsilon_greedy_explores_with_probability_epsilon():
    greedy, uniform = make("epsilon_greedy", seed_ids=range(50), epsilon=0.0), make("epsilon_greedy", seed_ids=range(50), epsilon=1.0)
    reward_of = gaussian_arms([0.0, 1.0, 0.5], [0.01] * 3)
    greedy_arms = torch.stack([step(greedy, reward_of) for _ in range(40)])[3:]
    uniform_arms = torch.stack([step(uniform, reward_of) for _ in range(40)])[3:]
    assert (greedy_arms == 1).all()
    shares = torch.bincount(uniform_arms.flatten(), minlength=3) / uniform_arms.numel()
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.04)


def test_sample_averages_and_constant_step_sizes():
    averaging, constant = (
        make("epsilon_greedy", seed_ids=(0,), epsilon=0.0),
        make("epsilon_greedy", seed_ids=(0,), epsilon=0.0, step_size=0.5),
    )
    for reward in (4.0, 2.0, 0.0):
        for agent in (averaging, constant):
            agent.learn(torch.tensor([0]), torch.tensor([reward], dtype=torch.float64), torch.tensor([True]))
    assert averaging.stats["value"][0, 0] == 2.0 and constant.stats["value"][0, 0] == 1.0  # 0 -> 2 -> 2 -> 1
    assert averaging.stats["count"][0, 0] == 3


def test_ucb_adds_the_ucb1_bonus():
    agent = make("ucb", seed_ids=(0,), exploration=2.0)
    agent.stats["seen"][:] = True
    agent.stats["value"][0] = torch.tensor([1.0, 0.9, 0.0], dtype=torch.float64)
    agent.stats["count"][0] = torch.tensor([100.0, 4.0, 1.0], dtype=torch.float64)
    total = math.log(105)
    scores = [1.0 + 2 * math.sqrt(total / 100), 0.9 + 2 * math.sqrt(total / 4), 2 * math.sqrt(total / 1)]
    assert agent.choose(1).item() == max(range(3), key=scores.__getitem__) == 2


def test_discounted_ucb_discounts_every_arm_every_step():
    agent = make("discounted_ucb", seed_ids=(0,), arms=2, gamma=0.5)
    for arm, reward in ((0, 4.0), (1, 1.0), (0, 2.0)):
        agent.learn(torch.tensor([arm]), torch.tensor([reward], dtype=torch.float64), torch.tensor([True]))
    assert agent.stats["count"][0].tolist() == [0.25 + 1, 0.5]
    assert agent.stats["reward_sum"][0].tolist() == [4 * 0.25 + 2, 1 * 0.5]
    assert agent.values()[0, 0].item() == pytest.approx(3.0 / 1.25)
    assert get_method("discounted_ucb_999")[1]().gamma == 0.999


def test_thompson_samples_around_the_posterior_mean():
    agent = make("thompson", seed_ids=range(400), arms=2, noise_variance=1.0)
    agent.stats["seen"][:] = True
    agent.stats["count"][:] = torch.tensor([3.0, 3.0], dtype=torch.float64)
    agent.stats["reward_sum"][:] = torch.tensor([4.0, 4.4], dtype=torch.float64)  # posterior means 1.0 and 1.1, std 0.5 each
    share = (agent.choose(1) == 1).float().mean().item()
    expected = 0.5 * (1 + math.erf(0.1 / (math.sqrt(0.5) * math.sqrt(2))))  # P(N(0.1, 0.5) > 0)
    assert share == pytest.approx(expected, abs=0.07)


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("epsilon_greedy", dict(epsilon=1.5), "method.epsilon=1.5 is not allowed"),
        ("epsilon_greedy", dict(step_size=-0.1), "method.step_size=-0.1 is not allowed"),
        ("boltzmann", dict(temperature=0.0), "method.temperature=0.0 is not allowed"),
        ("ucb", dict(exploration=-1.0), "method.exploration=-1.0 is not allowed"),
        ("discounted_ucb", dict(gamma=0.0), "method.gamma=0.0 is not allowed"),
        ("thompson", dict(noise_variance=0.0), "method.noise_variance=0.0 is not allowed"),
    ],
)
def test_bad_settings_are_refused_in_one_line(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        make(name, **settings)


def test_a_bandit_method_is_refused_on_a_continuous_stream():
    from cyclic_bench.config import plan_run

    with pytest.raises(
        ConfigError, match="method='ucb' cannot play cyclic_mujoco-smoke: it has continuous actions; the method supports discrete"
    ):
        plan_run(compose_config(["method=ucb", "protocol=cyclic_mujoco", "protocol.size=smoke"]))
