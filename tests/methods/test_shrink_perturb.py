import copy

import pytest
import torch
from cyclic_bench.methods.shrink_perturb import PERTURB_STREAM, ShrinkPerturb, ShrinkPerturbConfig
from helpers import SMALL, transitions
from method_checks import assert_round_trip, assert_seed_independent, spec

from cyclic_bench.errors import ConfigError
from cyclic_bench.rng import SeedRNG


def make(seed_ids=(0, 1), **overrides) -> ShrinkPerturb:
    return ShrinkPerturb(ShrinkPerturbConfig(**{**SMALL, **overrides}), spec(seed_ids))


def trained(**overrides) -> ShrinkPerturb:
    agent = make(**overrides)
    for t in transitions(2, 25):
        agent.observe(t)
    return agent


def twin_rng(agent) -> SeedRNG:
    """An independent copy of the agent's noise stream at its current position."""
    rng = SeedRNG((0, 1), stream=PERTURB_STREAM)
    rng.load_state_dict(agent.perturb_rng.state_dict())
    return rng


def test_interpolates_toward_a_fresh_initialisation_and_moves_targets_alike():
    agent = trained(every=0, shrink=0.7, perturb=0.3)
    rng = twin_rng(agent)
    actor_fresh, critic_fresh = copy.deepcopy(agent.actor), copy.deepcopy(agent.critic)
    actor_fresh.reset_parameters(rng)  # the actor's draw comes first, then the critic's
    critic_fresh.reset_parameters(rng)
    online = {name: [p.detach().clone() for p in net.parameters()] for name, net in agent.modules().items()}
    agent.shrink_and_perturb()
    for name, noise_net in (("actor", actor_fresh), ("critic", critic_fresh)):
        for key in (name, f"{name}_target"):
            for before, after, noise in zip(online[key], agent.modules()[key].parameters(), noise_net.parameters(), strict=True):
                torch.testing.assert_close(after, 0.7 * before + 0.3 * noise, rtol=0, atol=1e-7)
    assert agent.applied.tolist() == [1.0, 1.0]


def test_gaussian_noise_is_the_papers_form():
    agent = trained(every=0, shrink=0.5, perturb=0.01, noise="gaussian")
    rng = twin_rng(agent)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.shrink_and_perturb()
    for old, new in zip(before, agent.actor.parameters(), strict=True):
        torch.testing.assert_close(new, 0.5 * old + 0.01 * rng.normal(*old.shape[1:]), rtol=0, atol=1e-7)


def test_schedule_every_updates_and_at_task_switches(monkeypatch):
    agent = make(every=7, at_task_switch=True)
    calls = []
    monkeypatch.setattr(agent, "shrink_and_perturb", lambda: calls.append(agent.updates))
    agent.on_task_start(0)  # nothing learned yet: nothing to shrink
    for t in transitions(2, 40):
        agent.observe(t)
    agent.on_task_start(1)
    assert calls == [7, 14, 21, 25]


def test_an_inactive_seed_is_left_alone():
    agent = trained(every=0)
    agent.deactivate(torch.tensor([True, False]))
    before = [p.detach().clone() for p in agent.critic_target.parameters()]
    agent.shrink_and_perturb()
    after = list(agent.critic_target.parameters())
    assert all(torch.equal(b[0], a[0]) and not torch.equal(b[1], a[1]) for b, a in zip(before, after, strict=True))
    assert agent.applied.tolist() == [0.0, 1.0]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="method.noise"):
        make(noise="uniform")


def test_a_seed_trains_the_same_alone_and_inside_a_batch(cpu_threads):
    for noise in ("init", "gaussian"):
        alone, _ = assert_seed_independent(lambda seeds, noise=noise: make(seeds, every=9, noise=noise, shrink=0.9, perturb=0.05))
        assert alone.applied[0] > 0


def test_state_round_trip_continues_identically():
    assert_round_trip(lambda seeds: make(seeds, every=9, noise="gaussian"), switches=(40,))
