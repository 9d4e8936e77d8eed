import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS
from method_checks import make as make_pair

from cyclic_bench.errors import ConfigError

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def make(learner, seed_ids=(0, 1), **overrides):
    return make_pair("plasticity_injection", learner, seed_ids, **{"at_task_switch": False, **overrides})


def trained(learner, steps: int = 25, **overrides):
    agent = make(learner, **overrides)
    for t in transitions(2, steps):
        agent.observe(t)
    return agent


def outputs(agent, batch) -> dict[str, torch.Tensor]:
    """Every online and target network's output on its inputs."""
    out = {}
    for name, net in agent.learner.networks.items():
        out[name] = net.module(net.inputs(batch))
        if net.target is not None:
            out[f"{name}_target"] = net.target(net.inputs(batch))
    return out


@pytest.mark.parametrize("head_layers", [1, 2])
def test_outputs_are_exactly_unchanged_at_injection(learner, head_layers):
    agent = trained(learner, head_layers=head_layers, critic_layer_norm=[0, 1])
    batch = agent.learner.sample()
    with torch.no_grad():
        before = outputs(agent, batch)
        agent.intervention.inject()
        after = outputs(agent, batch)
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert len(agent.learner.critic.injected) == 2 and agent.intervention.injections == 1


def snapshot(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module) -> list[bool]:
    return [not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True)]


def test_only_the_new_head_and_the_body_train_after_injection_with_a_fresh_optimizer(learner):
    agent = trained(learner)
    agent.intervention.inject()
    critic_net = agent.learner.networks["critic"]
    critic = critic_net.module
    assert critic_net.optimizer.steps.tolist() == [0.0, 0.0]
    trainable = {id(p) for p in critic_net.optimizer.params}
    assert trainable == {id(p) for p in [*critic.base.layers[:2].parameters(), *critic.injected[0].parameters()]}
    old_head, fresh, frozen = snapshot(critic.base.layers[2]), snapshot(critic.injected[0]), snapshot(critic.injected[1])
    body = snapshot(critic.base.layers[:2])
    for t in transitions(2, 10, seed=1):
        agent.observe(t)
    assert not any(moved(old_head, critic.base.layers[2])) and not any(moved(frozen, critic.injected[1]))
    assert all(moved(fresh, critic.injected[0])) and all(moved(body, critic.base.layers[:2]))
    agent.intervention.inject()  # the head trained so far is frozen in turn; a new pair trains
    first = snapshot(critic.injected[0])
    newest = snapshot(critic.injected[2])
    for t in transitions(2, 10, seed=2):
        agent.observe(t)
    assert not any(moved(first, critic.injected[0])) and all(moved(newest, critic.injected[2]))


def test_injects_at_given_steps_and_at_task_switches_after_the_first(learner):
    agent = make(learner, inject_at=[10, 12], at_task_switch=True)
    agent.on_task_start(0)
    for t in transitions(2, 20):
        agent.observe(t)
    assert agent.intervention.injections == 2
    agent.on_task_start(1)
    assert agent.intervention.injections == 3 and len(agent.learner.actor.injected) == 6


def test_diagnostics_see_the_same_hidden_layers_and_count_parameters_and_injections(learner):
    agent = trained(learner)
    before = agent.diagnostics()
    agent.intervention.inject()
    after = agent.diagnostics()
    assert before.keys() == after.keys()
    assert after["injections"].tolist() == [1.0, 1.0] and before["injections"].tolist() == [0.0, 0.0]
    assert (after["critic_parameters"] - before["critic_parameters"]).tolist() == [2 * 2 * 33] * 2  # two heads of 32+1 per critic
    assert (after["critic_distance_from_init"] >= before["critic_distance_from_init"]).all()


def test_bad_settings_are_refused(learner):
    with pytest.raises(ConfigError, match="head_layers"):
        make(learner, head_layers=4)
