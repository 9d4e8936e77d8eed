import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS, make

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def norms(agent) -> list[torch.Tensor]:
    """Every weight matrix's norm, per seed (and twin critic), actor then critic."""
    return [layer.weight.detach().norm(dim=(-2, -1)) for net in agent.learner.networks.values() for layer in net.module.layers]


def test_weight_norms_stay_at_their_initial_values_while_the_weights_move(learner):
    agent = make("nap", learner, lr=1e-2)  # a large rate, so that plain training would move the norms a lot
    initial, weights = norms(agent), [p.detach().clone() for p in agent.learner.critic.parameters()]
    for t in transitions(2, 40):
        agent.observe(t)
    assert agent.learner.updates > 20
    for before, after in zip(initial, norms(agent), strict=True):
        torch.testing.assert_close(after, before, rtol=1e-5, atol=0)
    assert all(not torch.equal(a, b) for a, b in zip(weights, agent.learner.critic.parameters(), strict=True))
    assert all(len(net.module.norms) == 2 for net in agent.learner.networks.values())  # NaP = LayerNorm + projection


def test_without_projection_the_norms_drift(learner):
    agent = make("layer_norm", learner, lr=1e-2)
    initial = norms(agent)
    for t in transitions(2, 40):
        agent.observe(t)
    assert max(((after - before).abs() / before).max().item() for before, after in zip(initial, norms(agent), strict=True)) > 0.01


def test_an_inactive_seed_is_not_projected(learner):
    agent = make("nap", learner)
    for t in transitions(2, 20):
        agent.observe(t)
    agent.deactivate(torch.tensor([False, True]))
    critic = agent.learner.critic
    frozen = [p.detach()[1].clone() for p in critic.parameters()]
    for t in transitions(2, 10, seed=1):
        agent.observe(t)
    assert all(torch.equal(f, p[1]) for f, p in zip(frozen, critic.parameters(), strict=True))
