import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS
from method_checks import make as make_pair
from method_checks import trained as trained_pair

from cyclic_bench.errors import ConfigError

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def trained(learner, **overrides):
    return trained_pair(make_pair("cbp", learner, **overrides), steps=20)


def test_replaces_the_lowest_utility_mature_units(learner):
    eta, rate = 0.9, 0.01
    agent = trained(learner, utility_decay=eta, replacement_rate=rate, maturity_threshold=5)
    cbp, actor = agent.intervention, agent.learner.networks["actor"]
    obs = agent.learner.sample()["obs"]
    stats, layer, following = cbp.stats["actor"][0], actor.module.layers[0], actor.module.layers[1]
    g = torch.Generator().manual_seed(0)
    stats["utility"] = torch.rand(2, 32, generator=g) + 1.0
    stats["utility"][:, :2] = 0.0  # the two least useful units are too young to go
    stats["age"] = torch.full((2, 32), 10.0)
    stats["age"][:, :2] = 3.0
    stats["pending"] = torch.tensor([0.9, 1.75])  # plus 30 mature x 0.01 = 0.3: seed 0 owes 1 unit, seed 1 owes 2
    for moment in [*actor.optimizer.exp_avg, *actor.optimizer.exp_avg_sq]:
        moment.fill_(1.0)
    hidden = []
    actor.module(obs, hidden=hidden)
    contribution = hidden[0].abs().mean(dim=1) * following.weight.detach().abs().sum(dim=-1)  # the paper's utility, by hand
    utility = eta * stats["utility"] + (1 - eta) * contribution
    corrected = utility / (1 - eta**11)
    corrected[:, :2] = torch.inf
    expected = torch.zeros(2, 32, dtype=torch.bool)
    expected[0, corrected[0].argmin()] = True
    expected[1, corrected[1].topk(2, largest=False).indices] = True
    w_in = layer.weight.detach().clone()

    cbp.generate_and_test("actor", actor.module, actor.optimizer, obs)

    assert torch.equal((layer.weight.detach() != w_in).any(dim=1), expected)
    assert (following.weight.detach()[expected] == 0).all()
    first_moment = actor.optimizer.moments(layer.weight)[0]
    assert (first_moment.transpose(1, 2)[expected] == 0).all()
    assert (first_moment.transpose(1, 2)[~expected] == 1).all()
    assert (stats["utility"][expected] == 0).all() and (stats["age"][expected] == 0).all()
    assert (stats["age"][~expected] > 3).all()  # the young units aged by one and stayed
    torch.testing.assert_close(stats["pending"], torch.tensor([0.2, 0.05]))
    assert cbp.replaced["actor"].tolist() == [1.0, 2.0]


def test_fractional_replacements_accumulate_per_seed_and_twin_critic(learner):
    agent = trained(learner, replacement_rate=0.25 / 32, maturity_threshold=0)  # every unit mature: a quarter of a unit per step
    cbp, critic = agent.intervention, agent.learner.networks["critic"]
    critic_input = critic.inputs(agent.learner.sample())
    for stats in cbp.stats["critic"]:
        stats["pending"] = torch.tensor([[0.0, 0.5], [0.25, 0.0]])
    counts = []
    for _ in range(4):
        before = cbp.replaced["critic"].clone()
        cbp.generate_and_test("critic", critic.module, critic.optimizer, critic_input)
        counts.append((cbp.replaced["critic"] - before).tolist())
    # a unit in each of the two hidden layers when due: seed 0's second critic at step 2 and its first at step 4;
    # seed 1's first critic at step 3 and its second at step 4
    assert counts == [[0, 0], [2, 0], [0, 2], [2, 2]]


def test_an_inactive_seed_keeps_its_units_and_statistics(learner):
    agent = trained(learner, replacement_rate=0.5, maturity_threshold=0)
    cbp, critic = agent.intervention, agent.learner.critic
    agent.deactivate(torch.tensor([True, False]))
    weights = [p.detach()[0].clone() for p in critic.parameters()]
    ages = [s["age"][0].clone() for s in cbp.stats["critic"]]
    for t in transitions(2, 5, seed=2):
        agent.observe(t)
    assert all(torch.equal(w, p[0]) for w, p in zip(weights, critic.parameters(), strict=True))
    assert all(torch.equal(a, s["age"][0]) for a, s in zip(ages, cbp.stats["critic"], strict=True))
    assert cbp.replaced["critic"][1] > 0


def test_bad_settings_are_refused(learner):
    with pytest.raises(ConfigError, match="replacement_rate"):
        make_pair("cbp", learner, replacement_rate=2.0)
    with pytest.raises(ConfigError, match="method.activation=crelu is not allowed with cbp"):
        make_pair("cbp", learner, activation="crelu")
