import pytest
import torch
from method_checks import LEARNERS, make, trained

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.plasticity import active_fraction, dormant_ratio

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def test_every_hidden_layer_hands_on_relu_of_x_and_of_minus_x(learner):
    agent = make("crelu", learner)
    assert agent.config.activation == "crelu"
    for net in agent.learner.networks.values():
        layers = net.module.layers
        assert [layer.out_features for layer in layers[:-1]] == [32, 32]  # units as configured
        assert [layer.in_features for layer in layers[1:]] == [64, 64]  # twice the features into the next layer
    actor, obs = agent.learner.actor, torch.randn(2, 9, 4)
    hidden = []
    actor(obs, hidden=hidden)
    pre = actor.layers[0](obs)
    torch.testing.assert_close(hidden[0], torch.cat([pre.relu(), (-pre).relu()], dim=-1))


def test_every_unit_keeps_one_half_active_so_none_is_dormant(learner):
    agent = trained(make("crelu", learner), steps=30)
    critic = agent.learner.networks["critic"]
    hidden = []
    critic.module(critic.inputs(agent.learner.sample()), hidden=hidden)
    for h in hidden:
        units = h.shape[-1] // 2
        either = (h[..., :units] > 0) | (h[..., units:] > 0)  # per sample: relu(x) or relu(-x) fires unless x == 0
        assert either.all()
    torch.testing.assert_close(active_fraction(hidden), torch.full((2,), 0.5))
    assert (dormant_ratio(hidden, 0.0) < 0.5).all()


def test_crelu_with_relu_is_refused_and_other_methods_take_it_by_setting(learner):
    with pytest.raises(ConfigError, match="method.activation=relu is not allowed for crelu"):
        make("crelu", learner, activation="relu")
    config = compose_config(["method=plasticity_injection", f"method.base={learner}", "method.activation=crelu"])
    assert config.method.activation == "crelu"
    agent = make("plasticity_injection", learner, activation="crelu", at_task_switch=False)
    batch = trained(agent, steps=20).learner.sample()
    critic = agent.learner.networks["critic"]
    with torch.no_grad():
        before = critic.module(critic.inputs(batch))
        agent.intervention.inject()
        torch.testing.assert_close(critic.module(critic.inputs(batch)), before, rtol=0, atol=0)
