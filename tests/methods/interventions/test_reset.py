import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS, make

from cyclic_bench.registry import get_method

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def test_periodic_reset_refreshes_networks_and_optimizers_and_keeps_the_buffer(learner):
    agent = make("reset", learner, reset_every=30)
    data = list(transitions(2, 30))
    for t in data[:29]:
        agent.observe(t)
    before = {name: snapshot(net.module) for name, net in agent.learner.networks.items()}
    agent.observe(data[29])
    assert agent.intervention.resets == 1 and agent.learner.replay.size == 30
    for name, net in agent.learner.networks.items():
        assert all(not torch.equal(a, b) for a, b in zip(before[name], net.module.parameters(), strict=True) if a.dim() > 2), name
        assert net.optimizer.steps.tolist() == [0.0, 0.0]
        if net.target is not None:
            assert all(torch.equal(a, b) for a, b in zip(net.module.parameters(), net.target.parameters(), strict=True))


def test_last_layer_variant_keeps_the_other_layers(learner):
    agent = make("reset", learner, reset_every=10, layers="last")
    for t in transitions(2, 9):
        agent.observe(t)
    critic = agent.learner.critic
    before = snapshot(critic)
    agent.intervention.reset_networks()
    after = list(critic.parameters())
    assert torch.equal(before[0], after[0])  # first layer weight untouched
    assert not torch.equal(before[-2], after[-2])  # output layer weight fresh


def test_reset_at_task_switch_skips_the_first_task(learner):
    cls, config_cls = get_method("reset_switch", learner)
    assert config_cls().at_task_switch and config_cls().reset_every == 0 and config_cls().base == learner
    agent = make("reset_switch", learner)
    agent.on_task_start(0)
    assert agent.intervention.resets == 0
    for t in transitions(2, 5):
        agent.observe(t)
    agent.on_task_start(1)
    assert agent.intervention.resets == 1


def test_an_inactive_seed_keeps_its_weights(learner):
    agent = make("reset", learner, reset_every=0)
    for t in transitions(2, 20):
        agent.observe(t)
    agent.deactivate(torch.tensor([True, False]))
    actor = agent.learner.actor
    before = snapshot(actor)
    agent.intervention.reset_networks()
    assert all(torch.equal(b[0], a[0]) and not torch.equal(b[1], a[1]) for b, a in zip(before, actor.parameters(), strict=True))
