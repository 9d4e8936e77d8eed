import copy
import math

import pytest
import torch
from cyclic_bench.methods.achna import AChNA

from cyclic_bench.errors import ConfigError
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import get_method

ALL = torch.tensor([True])


def agent(name: str = "achna", seeds: int = 1, arms: int = 3, **settings) -> AChNA:
    cls, config_cls = get_method(name)
    return cls(config_cls(**settings), MethodSpec(1, arms, "discrete", tuple(range(seeds)), 1, 10_000, torch.device("cpu")))


def set_state(a: AChNA, q, s, squared_error) -> None:
    a.stats["q"] = torch.tensor(q, dtype=torch.float64)
    a.stats["s"] = torch.tensor(s, dtype=torch.float64)
    a.stats["squared_error"] = torch.tensor(squared_error, dtype=torch.float64)
    a.stats["seen"][:] = True


def pull(a: AChNA, arm: int, reward: float) -> None:
    a.learn(torch.tensor([arm]), torch.tensor([reward], dtype=torch.float64), ALL)


def test_the_registered_agents_carry_the_public_config():
    """config.yaml of branch run_mode: "Doya Dayu (RI Temperature, LR)", "Operation Test", "Constant LR / Temp"."""
    shared = dict(n_ensemble=20, q_init_scale=0.01, s_init_scale=0.5, ri_step=0.1, ri_multiple=0.1, ri_init_scale=10.0)
    expected = {
        "achna": dict(learning_rate_rule="reliability", temperature_rule="reliability", mask_probability=0.5),
        "achna_ratio": dict(
            learning_rate_rule="ratio", temperature_rule="reliability", mask_probability=0.5, ratio_denominator="epistemic"
        ),
        "achna_constant": dict(
            learning_rate_rule="constant",
            temperature_rule="constant",
            mask_probability=1.0,
            constant_learning_rate=0.1,
            constant_temperature=0.1,
        ),
    }
    for name, settings in expected.items():
        config = get_method(name)[1]()
        assert {key: getattr(config, key) for key in {**shared, **settings}} == {**shared, **settings}, name


def test_one_pull_moves_mean_second_moment_and_reliability_by_the_sgd_steps():
    a = agent(arms=2, n_ensemble=2, mask_probability=1.0)
    set_state(a, [[[1.0, 3.0], [0.0, 0.0]]], [[[2.0, 10.0], [0.0, 0.0]]], [4.0])
    lr = 0.1 * math.sqrt(4.0)  # RI_frac before the pull
    pull(a, 0, 5.0)
    delta = [5.0 - 1.0, 5.0 - 3.0]
    assert a.stats["q"][0, 0].tolist() == pytest.approx([1.0 + lr * delta[0], 3.0 + lr * delta[1]])  # Q += lr (r - Q)
    assert a.stats["s"][0, 0].tolist() == pytest.approx([2.0 + 2 * lr * (25 - 2.0), 10.0 + 2 * lr * (25 - 10.0)])  # S += 2 lr (r^2 - S)
    assert a.stats["q"][0, 1].tolist() == [0.0, 0.0]  # the other arm is untouched
    expected_error = 4.0 + 0.1 * ((delta[0] ** 2 + delta[1] ** 2) / 2 - 4.0)  # E += 0.1 (mean_i delta_i^2 - E)
    assert a.stats["squared_error"].item() == pytest.approx(expected_error)
    assert a.learning_rate().item() == pytest.approx(0.1 * math.sqrt(expected_error))
    assert a.temperature().item() == a.learning_rate().item()  # the same RI_frac drives both


def test_masked_members_keep_their_estimates_but_their_errors_count_in_the_reliability():
    a = agent(seeds=1, arms=2, n_ensemble=20, mask_probability=0.5)
    set_state(a, [[[0.0] * 20, [0.0] * 20]], [[[1.0] * 20, [1.0] * 20]], [1.0])
    mask = copy.deepcopy(a.rng).uniform(20)[0] < 0.5  # the draw learn() is about to make
    assert 0 < mask.sum() < 20
    pull(a, 1, 2.0)
    moved = a.stats["q"][0, 1] != 0.0
    assert torch.equal(moved, mask)
    assert a.stats["q"][0, 1][mask].tolist() == pytest.approx([0.1 * 2.0] * int(mask.sum()))
    assert a.stats["squared_error"].item() == pytest.approx(1.0 + 0.1 * (4.0 - 1.0))  # every member's delta^2 = 4


def test_the_ratio_rule_divides_by_the_root_of_the_ensemble_spread_or_of_the_second_moment():
    q = [[[1.0, 3.0], [0.0, 2.0]]]  # Var_i Q: 1 and 1
    s = [[[4.0, 12.0], [2.0, 6.0]]]  # mean_i S: 8 and 4
    ratio, second_moment = (
        agent("achna_ratio", arms=2, n_ensemble=2),
        agent("achna_ratio", arms=2, n_ensemble=2, ratio_denominator="second_moment"),
    )
    for a in (ratio, second_moment):
        set_state(a, q, s, [9.0])
    ri_frac = 0.1 * 3.0
    assert ratio.learning_rate().item() == pytest.approx(ri_frac / (ri_frac + math.sqrt(1.0)))
    assert second_moment.learning_rate().item() == pytest.approx(ri_frac / (ri_frac + math.sqrt(6.0)))
    assert ratio.temperature().item() == pytest.approx(ri_frac)


def test_the_policy_is_a_softmax_of_the_softmax_of_the_means():
    a = agent(arms=3, n_ensemble=2)
    set_state(a, [[[0.0, 0.0], [1.0, 1.0], [1.5, 2.5]]], [[[1.0] * 2] * 3], [4.0])  # Qbar = 0, 1, 2; T = 0.2
    inner = [math.exp(v) / sum(math.exp(w) for w in (0, 1, 2)) for v in (0, 1, 2)]
    outer = [math.exp(p / 0.2) / sum(math.exp(w / 0.2) for w in inner) for p in inner]
    assert a.policy()[0].tolist() == pytest.approx(outer)
    assert outer[2] < 0.9  # a single softmax at T = 0.2 would give the best arm 0.993
    many = agent(seeds=4000, arms=3, n_ensemble=2)
    set_state(many, [[[0.0, 0.0], [1.0, 1.0], [1.5, 2.5]]] * 4000, [[[1.0] * 2] * 3] * 4000, [4.0] * 4000)
    shares = torch.bincount(many.choose(1)[:, 0], minlength=3) / 4000
    assert shares.tolist() == pytest.approx(outer, abs=0.03)


def round_robin(a: AChNA, blocks, std: float, steps: int) -> dict[str, torch.Tensor]:
    """Pull the arms in turn, `steps` pulls per block of arm means, rewards mean + std * N(0, 1) (one generator).
    Returns the history [pulls, S] of the learning rate and the temperature after each pull."""
    g = torch.Generator().manual_seed(0)
    rows, t = torch.arange(a.S), 0
    history = {"learning_rate": [], "temperature": []}
    for means in blocks:
        means = torch.as_tensor(means, dtype=torch.float32).expand(a.S, a.A)
        for _ in range(steps):
            arm = torch.full((a.S,), t % a.A)
            reward = means[rows, arm] + std * torch.randn(a.S, generator=g)
            obs, done = torch.zeros(a.S, 1, 1), torch.zeros(a.S, 1, dtype=torch.bool)
            a.observe(Transition(obs, arm[:, None], reward[:, None], obs, done, done, learn=True))
            history["learning_rate"].append(a.learning_rate())
            history["temperature"].append(a.temperature())
            t += 1
    return {name: torch.stack(values) for name, values in history.items()}


BEFORE, AFTER, LATE = slice(250, 300), slice(300, 315), slice(550, 600)  # a context switch at pull 300


@pytest.mark.parametrize("std", [0.1, 0.5])
def test_a_context_switch_raises_the_learning_rate_and_temperature_which_fall_back_in_the_new_context(std):
    history = round_robin(agent(seeds=16), [[0.0, 1.0, 2.0], [3.0, -2.0, 0.0]], std, steps=300)
    for name in ("learning_rate", "temperature"):
        value = history[name].mean(dim=1)
        assert value[AFTER].mean() > 2.5 * value[BEFORE].mean(), name  # surprise: errors of several units
        assert value[LATE].mean() < 1.2 * value[BEFORE].mean(), name  # back to the level the noise sets


def test_without_a_switch_the_learning_rate_stays_at_the_level_of_the_reward_noise():
    quiet, noisy = (round_robin(agent(seeds=16), [[0.0, 1.0, 2.0]] * 2, std, steps=300)["learning_rate"].mean(dim=1) for std in (0.1, 2.0))
    assert noisy[AFTER].max() < 1.5 * noisy[BEFORE].mean()  # no surprise at pull 300
    assert noisy[LATE].mean() > 5 * quiet[LATE].mean()  # RI tracks the noise: sqrt(E) ~ std
    assert noisy[LATE].mean() == pytest.approx(0.1 * 2.0, rel=0.25)


def test_the_constant_agent_keeps_its_rate_and_temperature_and_moves_every_member():
    a = agent("achna_constant", seeds=2)
    initial_spread = a.epistemic()
    round_robin(a, [[0.0, 1.0, 2.0]], 1.0, steps=30)  # 10 pulls per arm
    assert (a.learning_rate() == 0.1).all() and (a.temperature() == 0.1).all()
    torch.testing.assert_close(a.epistemic(), initial_spread * 0.9**20)  # each pull shrinks every member's offset by 0.9


def test_diagnostics_report_the_rates_the_reliability_and_both_uncertainties_per_seed():
    a = agent(seeds=2, arms=3)
    round_robin(a, [[0.0, 1.0, 2.0]], 1.0, steps=12)
    diagnostics = a.diagnostics()
    assert set(diagnostics) == {"learning_rate", "temperature", "reliability_index", "expected_uncertainty", "unexpected_uncertainty"}
    assert all(value.shape == (2,) and torch.isfinite(value).all() for value in diagnostics.values())
    torch.testing.assert_close(diagnostics["learning_rate"], (0.1 * a.stats["squared_error"].sqrt()).float())
    torch.testing.assert_close(diagnostics["reliability_index"], a.stats["squared_error"].sqrt().float())
    torch.testing.assert_close(diagnostics["unexpected_uncertainty"], a.stats["q"].var(dim=2, unbiased=False).mean(dim=1).float())


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(n_ensemble=1), "method.n_ensemble=1 is not allowed"),
        (dict(mask_probability=0.0), "method.mask_probability=0.0 is not allowed"),
        (
            dict(learning_rate_rule="adaptive"),
            "method.learning_rate_rule=adaptive is not allowed: it must be one of reliability, ratio, constant",
        ),
        (dict(temperature_rule="ratio"), "method.temperature_rule=ratio is not allowed"),
        (dict(ratio_denominator="mean"), "method.ratio_denominator=mean is not allowed"),
        (dict(ri_step=0.0), "method.ri_step=0.0 is not allowed"),
        (dict(ri_multiple=-0.1), "method.ri_multiple=-0.1 is not allowed"),
        (dict(constant_temperature=0.0), "method.constant_temperature=0.0 is not allowed"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        get_method("achna")[1](**settings)
