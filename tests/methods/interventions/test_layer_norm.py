import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS, make

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def test_every_hidden_layer_of_actor_critic_and_targets_is_normalised_and_trained(learner):
    agent = make("layer_norm", learner)
    modules = agent.modules()
    for name in ("actor", "critic", "critic_target", *(["actor_target"] if learner == "td3" else [])):
        assert sorted(modules[name].norms.keys()) == ["0", "1"], name
    assert agent.learner.critic.norms["0"].weight.shape == (2, 2, 1, 32)  # per seed and per twin critic
    for net in agent.learner.networks.values():
        assert len(net.optimizer.params) == len(list(net.module.parameters()))
    gains = agent.learner.critic.norms["1"].weight.detach().clone()
    for t in transitions(2, 30):
        agent.observe(t)
    assert not torch.equal(gains, agent.learner.critic.norms["1"].weight)


def test_linear_layers_start_as_the_plain_learners_and_the_actor_becomes_scale_invariant(learner):
    agent, plain = make("layer_norm", learner), make(learner, learner)
    actor = agent.learner.actor
    for a, b in zip(actor.layers.parameters(), plain.learner.actor.layers.parameters(), strict=True):
        assert torch.equal(a, b)
    obs = torch.randn(2, 8, 4)
    before = actor(obs)
    with torch.no_grad():  # LayerNorm right after the first layer: its scale no longer matters
        actor.layers[0].weight.mul_(10.0)
        actor.layers[0].bias.mul_(10.0)
    torch.testing.assert_close(actor(obs), before, rtol=1e-4, atol=1e-5)


def test_norms_can_be_left_out_of_the_actor(learner):
    agent = make("layer_norm", learner, actor_norm=False)
    assert len(agent.learner.actor.norms) == 0 and len(agent.learner.critic.norms) == 2
