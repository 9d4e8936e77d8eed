import math

import pytest
import torch
from cyclic_bench.methods.interventions.neuromodulated import SurpriseTracker
from helpers import SMALL, transitions
from method_checks import LEARNERS
from method_checks import make as make_pair

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.registry import learners_of
from cyclic_bench.run import train


def make(learner="td3", seed_ids=(0, 1), **overrides):
    return make_pair("neuromodulated", learner, seed_ids, **overrides)


def surprise(agent, recent: list[float]) -> torch.Tensor:
    """Set E = 1 and F = `recent` per seed; returns the surprise share g."""
    tracker = agent.intervention.surprise
    tracker.expected.copy_(torch.ones(len(recent)))
    tracker.recent.copy_(torch.tensor(recent))
    agent.intervention.modulate_exploration()
    return tracker.share


def track(errors: torch.Tensor, expected_rate: float = 1e-3, recent_rate: float = 5e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Feed squared TD errors [T, S]; returns the expected uncertainty E and the surprise share g after each, [T, S]."""
    tracker = SurpriseTracker(errors.shape[1], expected_rate, recent_rate, torch.device("cpu"))
    expected, share = [], []
    for e in errors:
        tracker.update(e, torch.ones(errors.shape[1], dtype=torch.bool))
        expected.append(tracker.expected.clone())
        share.append(tracker.share)
    return torch.stack(expected), torch.stack(share)


def test_the_averages_start_at_the_first_error_and_follow_their_rates():
    expected, share = track(torch.tensor([[2.0], [4.0]]), expected_rate=0.25, recent_rate=0.5)
    assert expected[:, 0].tolist() == [2.0, 2.5]
    assert share[:, 0].tolist() == [0.0, pytest.approx((3.0 - 2.5) / 3.0)]  # F = 3, E = 2.5: U / (U + E)


def test_a_jump_in_td_errors_raises_the_surprise_share_then_it_fades():
    g = torch.Generator().manual_seed(0)
    level = torch.cat([torch.ones(300), torch.full((900,), 10.0)])  # the task changes at update 300
    errors = level[:, None] * -torch.rand(1200, 4, generator=g).log()  # exponential noise around the level
    _, share = track(errors, expected_rate=1e-2, recent_rate=0.2)
    before, soon_after, much_later = share[250:300].mean(), share[305:330].mean(), share[1100:].mean()
    assert soon_after > 0.5 and soon_after > 5 * before
    assert much_later < 0.5 * soon_after  # the expected level caught up


def test_stationary_noise_raises_ach_not_na():
    g = torch.Generator().manual_seed(1)
    unit = -torch.rand(1000, 8, generator=g).log()  # exponential squared errors, mean 1
    expected, share = track(torch.cat([0.1 * unit, 10.0 * unit], dim=1), expected_rate=1e-2, recent_rate=0.2)
    quiet, noisy = slice(0, 8), slice(8, 16)
    assert expected[-1, noisy].mean() > 50 * expected[-1, quiet].mean()  # ACh: the expected level
    assert share[500:, noisy].mean() < 0.2  # NA stays low: recent errors are as large as expected
    torch.testing.assert_close(share[:, noisy], share[:, quiet])  # the share does not depend on the noise scale


@pytest.mark.parametrize("learner", LEARNERS)
def test_learning_rate_and_exploration_scale_follow_the_surprise_share_per_seed(learner):
    agent = make(learner, lr_gain=2.0, noise_gain=3.0)
    assert surprise(agent, [1.0, 4.0]).tolist() == [0.0, 0.75]  # seed 1 is surprised: U = 3, g = 0.75
    torch.testing.assert_close(agent.learner.exploration_scale, torch.tensor([1.0, 1 + 3 * 0.75]))
    for t in transitions(2, SMALL["batch_size"]):
        agent.observe(t)  # one update at the last transition sets the rates from the (updated) share
    share = agent.intervention.surprise.share
    for opt in agent.optimizers()[:2]:  # actor and critic (SAC's temperature keeps its own rate)
        torch.testing.assert_close(opt.lr, agent.config.lr * (1 + 2.0 * share))
    assert share[1] > share[0]
    torch.testing.assert_close(agent.learner.exploration_scale, 1 + 3.0 * share)


def test_on_td3_the_noise_of_training_actions_scales_per_seed():
    agent = make("td3", noise_gain=9.0)
    surprise(agent, [1.0, 1e6])  # seed 1: sigma is about 10x
    torch.testing.assert_close(agent.diagnostics()["exploration_noise"], 0.1 * agent.learner.exploration_scale)
    obs = torch.zeros(2, 200, 4)
    deviation = (agent.act(obs, explore=True) - agent.act(obs, explore=False)).std(dim=(1, 2))
    assert deviation[0] == pytest.approx(0.1, rel=0.15) and deviation[1] > 5 * deviation[0]


def test_on_sac_the_entropy_target_rises_with_surprise_and_the_temperature_follows():
    agent = make("sac", noise_gain=math.e - 1)
    surprise(agent, [1.0, 1e9])  # seed 1: g ~ 1, s ~ e, target -|A| + |A| = 0
    torch.testing.assert_close(agent.diagnostics()["target_entropy"], torch.tensor([-2.0, 0.0]), atol=1e-6, rtol=0)
    calm = make("sac")
    for a in (agent, calm):
        for t in transitions(2, 40):
            a.observe(t)
            if a is agent:
                surprise(agent, [1.0, 1e9])  # keep seed 1 surprised
    assert agent.learner.alpha()[1] > calm.learner.alpha()[1]  # a higher entropy target keeps the temperature up


def test_the_original_name_runs_on_td3_only():
    assert learners_of("neuromodulated_td3") == ["td3"] and learners_of("neuromodulated") == ["td3", "sac"]


def test_neuromodulated_td3_runs_the_smoke_cyclic_mujoco_stream(tmp_path):
    """One cycle (Hopper, then HalfCheetah) of the smoke stream; tests/methods/test_registry.py plays both cycles."""
    small = ["method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]", "method.batch_size=16", "protocol.cycles=1"]
    overrides = ["method=neuromodulated_td3", "protocol=cyclic_mujoco", "protocol.size=smoke", "seeds=2", "progress=false", *small]
    summary = train(compose_config(overrides), tmp_path)
    assert summary["failed_seeds"] == [] and set(summary["final_scores"]) == {"Hopper", "HalfCheetah"}
    assert all(math.isfinite(v) for scores in summary["final_scores"].values() for v in scores.values())
    names = {line.split(",")[4] for line in (tmp_path / "diagnostics.csv").read_text().splitlines()[1:]}
    assert {"expected_uncertainty", "surprise_share", "learning_rate", "exploration_noise"} <= names


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(expected_rate=0.0), "method.expected_rate=0.0 is not allowed"),
        (dict(recent_rate=1.5), "method.recent_rate=1.5 is not allowed"),
        (dict(expected_rate=0.1, recent_rate=0.01), "method.expected_rate=0.1 is not allowed: it must be below"),
        (dict(lr_gain=-1.0), "method.lr_gain=-1.0 is not allowed"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        make(**settings)
    with pytest.raises(ConfigError, match="method.base=sac is not allowed for method=neuromodulated_td3"):
        compose_config(["method=neuromodulated_td3", "method.base=sac"])
