import pytest
import torch
from cyclic_bench.methods.achna_jan2023 import AChNAJan2023, AChNAJan2023Config

from cyclic_bench.errors import ConfigError
from cyclic_bench.method import MethodSpec, Transition


def agent(seeds: int = 1, arms: int = 2, **settings) -> AChNAJan2023:
    spec = MethodSpec(1, arms, "discrete", tuple(range(seeds)), 1, 10_000, torch.device("cpu"))
    return AChNAJan2023(AChNAJan2023Config(**settings), spec)


def set_ensemble(a: AChNAJan2023, q, s) -> None:
    a.stats["q"] = torch.tensor(q, dtype=torch.float64)
    a.stats["s"] = torch.tensor(s, dtype=torch.float64)
    a.stats["seen"][:] = True


def test_uncertainties_and_the_learning_rate_follow_their_definitions():
    a = agent(arms=3, n_ensemble=4)
    q = [[[1.0, 3.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0], [10.0, 10.0, 10.0, 10.0]]]
    s = [[[8.0, 8.0, 8.0, 8.0], [0.0, 0.0, 0.0, 0.0], [500.0, 500.0, 500.0, 500.0]]]
    set_ensemble(a, q, s)
    assert a.epistemic().tolist() == [[1.0, 0.0, 0.0]]  # population variance of the members' means
    assert a.aleatoric().tolist() == [[8.0 - 4.0, 0.0, 100.0]]  # mean S - (mean Q)^2, clipped to [0, 100]
    assert a.learning_rates().tolist() == [[1.0 / (1.0 + 4.0), 0.0, 0.0]]  # epi / (epi + ale); 0 where both vanish
    set_ensemble(a, [[[1.0, 3.0, 1.0, 3.0], [-1.0, 1.0, -1.0, 1.0], [0.0] * 4]], [[[3.0] * 4, [1.0] * 4, [0.0] * 4]])
    assert a.aleatoric()[0, :2].tolist() == [0.0, 1.0]  # mean S below (mean Q)^2 clips at 0
    assert a.learning_rates()[0, :2].tolist() == [1.0, 0.5]  # more epistemic, less aleatoric: faster learning


def test_the_temperature_is_policy_weighted_epistemic_minus_its_running_minimum():
    a = agent(arms=2, n_ensemble=2, temperature_floor=1e-4)
    weights = torch.softmax(torch.tensor([0.0, 1.0], dtype=torch.float64), dim=0)

    def spread(first: float, second: float) -> float:
        set_ensemble(a, [[[-first, first], [1 - second, 1 + second]]], [[[1.0, 1.0], [2.0, 2.0]]])
        a.update_temperature(torch.tensor([True]))
        return float(weights[0] * first**2 + weights[1] * second**2)

    low = spread(0.5, 0.5)
    assert a.stats["temperature"].item() == pytest.approx(1e-4)  # a new minimum: tau sits at the floor
    high = spread(1.0, 2.0)
    assert a.stats["temperature"].item() == pytest.approx(high - (low - 1e-4))  # surprise above the lowest seen
    assert a.policy_weighted_epistemic().item() == pytest.approx(high)
    spread(0.1, 0.1)
    assert a.stats["temperature"].item() == pytest.approx(1e-4)


def test_the_temperature_waits_until_every_arm_was_pulled():
    a = agent(arms=3)
    a.stats["seen"][0, :2] = True
    a.update_temperature(torch.tensor([True]))
    assert torch.isnan(a.stats["temperature"]).all() and torch.isinf(a.stats["running_min"]).all()


def round_robin(a: AChNAJan2023, blocks, std, steps: int) -> dict[str, torch.Tensor]:
    """Feed arms in turn with Gaussian rewards; `blocks` lists per-seed arm means [S, arms] (or [arms]), each for `steps`
    steps; `std` is per seed [S] (or one number). Returns the history [blocks * steps, S] of each modulated quantity."""
    g = torch.Generator().manual_seed(0)
    S, rows = a.S, torch.arange(a.S)
    std = torch.as_tensor(std, dtype=torch.float32).expand(S)
    history = {name: [] for name in ("learning_rate", "temperature", "expected_uncertainty")}
    t = 0
    for means in blocks:
        means = torch.as_tensor(means, dtype=torch.float32).expand(S, a.A)
        for _ in range(steps):
            arm = torch.full((S,), t % a.A)
            reward = means[rows, arm] + std * torch.randn(S, generator=g)
            obs, done = torch.zeros(S, 1, 1), torch.zeros(S, 1, dtype=torch.bool)
            a.observe(Transition(obs, arm[:, None], reward[:, None], obs, done, done, learn=True))
            history["learning_rate"].append(a.learning_rates().mean(dim=1))
            history["temperature"].append(a.stats["temperature"].clone())
            history["expected_uncertainty"].append(a.aleatoric().mean(dim=1))
            t += 1
    return {name: torch.stack(values) for name, values in history.items()}


BEFORE, AFTER = slice(140, 200), slice(210, 260)  # a context switch at step 200
QUIET, SWITCHED = [0.0, 1.0, 2.0], [3.0, -2.0, 0.0]


@pytest.fixture(scope="module")
def histories():
    """16 seeds each (one batch; seeds are independent): a switch at noise 0.5, no switch at noise 0.1 and at 2.0."""
    groups = {"switch": (SWITCHED, 0.5), "quiet": (QUIET, 0.1), "noisy": (QUIET, 2.0)}
    second = torch.tensor([means for means, _ in groups.values()]).repeat_interleave(16, dim=0)
    std = torch.tensor([noise for _, noise in groups.values()]).repeat_interleave(16)
    history = round_robin(agent(seeds=48, arms=3), [QUIET, second], std, steps=200)
    return {name: {k: v[:, 16 * i : 16 * (i + 1)] for k, v in history.items()} for i, name in enumerate(groups)}


def test_a_context_switch_raises_na(histories):
    tau = histories["switch"]["temperature"]
    assert tau[AFTER].mean() > 5 * tau[BEFORE].mean()


def test_stationary_noise_raises_ach_not_na(histories):
    quiet, noisy, switch = histories["quiet"], histories["noisy"], histories["switch"]
    assert noisy["expected_uncertainty"][AFTER].mean() > 20 * quiet["expected_uncertainty"][AFTER].mean()  # 400x the variance
    assert noisy["temperature"][AFTER].mean() <= 1.5 * noisy["temperature"][BEFORE].mean()  # no rise without a change
    assert noisy["temperature"][AFTER].mean() < switch["temperature"][AFTER].mean()  # 16x the noise, still below a switch


def test_this_learning_rate_does_not_rise_at_a_switch(histories):
    """A finding about this instance: the moment-based aleatoric estimate (mean S - mean Q^2) absorbs the shift of the
    mean while the slow members spread only slowly, so alpha = epi / (epi + ale) falls after a switch."""
    switch = histories["switch"]
    assert switch["expected_uncertainty"][AFTER].mean() > 1.2 * switch["expected_uncertainty"][BEFORE].mean()
    assert switch["learning_rate"][AFTER].mean() < switch["learning_rate"][BEFORE].mean()


def test_diagnostics_name_the_neuromodulators():
    a = agent(seeds=2, arms=3)
    round_robin(a, [QUIET], 1.0, steps=12)
    diagnostics = a.diagnostics()
    assert set(diagnostics) == {"expected_uncertainty", "unexpected_uncertainty", "learning_rate", "temperature"}
    assert all(value.shape == (2,) and torch.isfinite(value).all() for value in diagnostics.values())


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(n_ensemble=1), "method.n_ensemble=1 is not allowed"),
        (dict(mask_probability=0.0), "method.mask_probability=0.0 is not allowed"),
        (dict(lr_noise=-1.0), "method.lr_noise=-1.0 is not allowed"),
        (dict(temperature_floor=0.0), "method.temperature_floor=0.0 is not allowed"),
        (dict(q_init_scale=-0.5), "method.q_init_scale=-0.5 is not allowed"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        AChNAJan2023Config(**settings)
