import pytest
import torch
from cyclic_bench.methods.cbp import CBPConfig, ContinualBackprop
from helpers import SMALL, transitions
from method_checks import assert_round_trip, assert_seed_independent, spec

from cyclic_bench.errors import ConfigError


def make(seed_ids=(0, 1), **overrides) -> ContinualBackprop:
    return ContinualBackprop(CBPConfig(**{**SMALL, **overrides}), spec(seed_ids))


def trained(**overrides) -> ContinualBackprop:
    agent = make(**overrides)
    for t in transitions(2, 20):
        agent.observe(t)
    return agent


def test_replaces_the_lowest_utility_mature_units():
    eta, rate = 0.9, 0.01
    agent = trained(utility_decay=eta, replacement_rate=rate, maturity_threshold=5)
    obs = agent.sample()["obs"]
    stats, layer, following = agent.stats["actor"][0], agent.actor.layers[0], agent.actor.layers[1]
    g = torch.Generator().manual_seed(0)
    stats["utility"] = torch.rand(2, 32, generator=g) + 1.0
    stats["utility"][:, :2] = 0.0  # the two least useful units are too young to go
    stats["age"] = torch.full((2, 32), 10.0)
    stats["age"][:, :2] = 3.0
    stats["pending"] = torch.tensor([0.9, 1.75])  # plus 30 mature x 0.01 = 0.3: seed 0 owes 1 unit, seed 1 owes 2
    for moment in [*agent.actor_opt.exp_avg, *agent.actor_opt.exp_avg_sq]:
        moment.fill_(1.0)
    hidden = []
    agent.actor(obs, hidden=hidden)
    contribution = hidden[0].abs().mean(dim=1) * following.weight.detach().abs().sum(dim=-1)  # the paper's utility, by hand
    utility = eta * stats["utility"] + (1 - eta) * contribution
    corrected = utility / (1 - eta**11)
    corrected[:, :2] = torch.inf
    expected = torch.zeros(2, 32, dtype=torch.bool)
    expected[0, corrected[0].argmin()] = True
    expected[1, corrected[1].topk(2, largest=False).indices] = True
    w_in = layer.weight.detach().clone()

    agent.generate_and_test("actor", agent.actor, agent.actor_opt, obs)

    assert torch.equal((layer.weight.detach() != w_in).any(dim=1), expected)
    assert (following.weight.detach()[expected] == 0).all()
    index = [i for i, p in enumerate(agent.actor_opt.params) if p is layer.weight][0]
    assert (agent.actor_opt.exp_avg[index].transpose(1, 2)[expected] == 0).all()
    assert (agent.actor_opt.exp_avg[index].transpose(1, 2)[~expected] == 1).all()
    assert (stats["utility"][expected] == 0).all() and (stats["age"][expected] == 0).all()
    assert (stats["age"][~expected] > 3).all()  # the young units aged by one and stayed
    torch.testing.assert_close(stats["pending"], torch.tensor([0.2, 0.05]))
    assert agent.replaced["actor"].tolist() == [1.0, 2.0]


def test_fractional_replacements_accumulate_per_seed_and_twin_critic():
    agent = trained(replacement_rate=0.25 / 32, maturity_threshold=0)  # every unit mature: a quarter of a unit per step
    batch = agent.sample()
    critic_input = torch.cat([batch["obs"], batch["action"]], dim=-1).unsqueeze(1).expand(-1, 2, -1, -1)
    for stats in agent.stats["critic"]:
        stats["pending"] = torch.tensor([[0.0, 0.5], [0.25, 0.0]])
    counts = []
    for _ in range(4):
        before = agent.replaced["critic"].clone()
        agent.generate_and_test("critic", agent.critic, agent.critic_opt, critic_input)
        counts.append((agent.replaced["critic"] - before).tolist())
    # a unit in each of the two hidden layers when due: seed 0's second critic at step 2 and its first at step 4;
    # seed 1's first critic at step 3 and its second at step 4
    assert counts == [[0, 0], [2, 0], [0, 2], [2, 2]]


def test_an_inactive_seed_keeps_its_units_and_statistics():
    agent = trained(replacement_rate=0.5, maturity_threshold=0)
    agent.deactivate(torch.tensor([True, False]))
    weights = [p.detach()[0].clone() for p in agent.critic.parameters()]
    ages = [s["age"][0].clone() for s in agent.stats["critic"]]
    for t in transitions(2, 5, seed=2):
        agent.observe(t)
    assert all(torch.equal(w, p[0]) for w, p in zip(weights, agent.critic.parameters(), strict=True))
    assert all(torch.equal(a, s["age"][0]) for a, s in zip(ages, agent.stats["critic"], strict=True))
    assert agent.replaced["critic"][1] > 0


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="replacement_rate"):
        make(replacement_rate=2.0)


def test_a_seed_replaces_the_same_units_alone_and_inside_a_batch(cpu_threads):
    alone, batch = assert_seed_independent(lambda seeds: make(seeds, replacement_rate=0.02, maturity_threshold=5))
    assert alone.replaced["critic"][0] > 0 and alone.replaced["actor"][0] > 0
    assert torch.equal(alone.replaced["critic"][0], batch.replaced["critic"][1])


def test_state_round_trip_keeps_utilities_ages_and_pending_fractions():
    assert_round_trip(lambda seeds: make(seeds, replacement_rate=0.02, maturity_threshold=5))
