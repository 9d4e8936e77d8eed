import copy

import pytest
import torch
from cyclic_bench.methods.interventions.shrink_perturb import PERTURB_STREAM
from helpers import transitions
from method_checks import LEARNERS, assert_seed_independent, make, trained

from cyclic_bench.errors import ConfigError
from cyclic_bench.rng import SeedRNG

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def twin_rng(agent) -> SeedRNG:
    """An independent copy of the agent's noise stream at its current position."""
    rng = SeedRNG((0, 1), stream=PERTURB_STREAM)
    rng.load_state_dict(agent.intervention.perturb_rng.state_dict())
    return rng


def test_interpolates_toward_a_fresh_initialisation_and_moves_targets_alike(learner):
    agent = trained(make("shrink_perturb", learner, every=0, shrink=0.7, perturb=0.3), steps=25)
    rng = twin_rng(agent)
    fresh = {}
    for name, net in agent.learner.networks.items():  # the actor's draw comes first, then the critic's
        fresh[name] = copy.deepcopy(net.module)
        fresh[name].reset_parameters(rng)
    before = {name: [p.detach().clone() for p in module.parameters()] for name, module in agent.modules().items()}
    agent.intervention.shrink_and_perturb()
    for name, noise_net in fresh.items():
        for key in (name, f"{name}_target"):
            if key not in before:
                continue  # SAC's actor keeps no target
            for old, new, noise in zip(before[key], agent.modules()[key].parameters(), noise_net.parameters(), strict=True):
                torch.testing.assert_close(new, 0.7 * old + 0.3 * noise, rtol=0, atol=1e-7)
    assert agent.intervention.applied.tolist() == [1.0, 1.0]


def test_gaussian_noise_is_the_papers_form(learner):
    agent = trained(make("shrink_perturb", learner, every=0, shrink=0.5, perturb=0.01, noise="gaussian"), steps=25)
    rng = twin_rng(agent)
    actor = agent.learner.actor
    before = [p.detach().clone() for p in actor.parameters()]
    agent.intervention.shrink_and_perturb()
    for old, new in zip(before, actor.parameters(), strict=True):
        torch.testing.assert_close(new, 0.5 * old + 0.01 * rng.normal(*old.shape[1:]), rtol=0, atol=1e-7)


def test_schedule_every_updates_and_at_task_switches(learner, monkeypatch):
    agent = make("shrink_perturb", learner, every=7, at_task_switch=True)
    calls = []
    monkeypatch.setattr(agent.intervention, "shrink_and_perturb", lambda: calls.append(agent.learner.updates))
    agent.on_task_start(0)  # nothing learned yet: nothing to shrink
    for t in transitions(2, 40):
        agent.observe(t)
    agent.on_task_start(1)
    assert calls == [7, 14, 21, 25]


def test_an_inactive_seed_is_left_alone(learner):
    agent = trained(make("shrink_perturb", learner, every=0), steps=25)
    agent.deactivate(torch.tensor([True, False]))
    target = agent.learner.networks["critic"].target
    before = [p.detach().clone() for p in target.parameters()]
    agent.intervention.shrink_and_perturb()
    after = list(target.parameters())
    assert all(torch.equal(b[0], a[0]) and not torch.equal(b[1], a[1]) for b, a in zip(before, after, strict=True))
    assert agent.intervention.applied.tolist() == [0.0, 1.0]


def test_bad_settings_are_refused(learner):
    with pytest.raises(ConfigError, match="method.noise"):
        make("shrink_perturb", learner, noise="uniform")


def test_a_seed_draws_the_same_gaussian_noise_alone_and_inside_a_batch(learner, cpu_threads):
    """The "init" noise is checked for every pair in test_registry.py."""
    make_one = lambda seeds: make("shrink_perturb", learner, seeds, every=9, noise="gaussian", shrink=0.9, perturb=0.05)  # noqa: E731
    alone, _ = assert_seed_independent(make_one)
    assert alone.intervention.applied[0] > 0
