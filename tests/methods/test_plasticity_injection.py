import pytest
import torch
from cyclic_bench.methods.plasticity_injection import PlasticityInjection, PlasticityInjectionConfig
from helpers import SMALL, transitions
from method_checks import assert_round_trip, assert_seed_independent, spec

from cyclic_bench.errors import ConfigError


def make(seed_ids=(0, 1), **overrides) -> PlasticityInjection:
    return PlasticityInjection(PlasticityInjectionConfig(**{**SMALL, "at_task_switch": False, **overrides}), spec(seed_ids))


def trained(steps: int = 25, **overrides) -> PlasticityInjection:
    agent = make(**overrides)
    for t in transitions(2, steps):
        agent.observe(t)
    return agent


def outputs(agent, batch) -> dict[str, torch.Tensor]:
    return {
        "actor": agent.actor(batch["obs"]),
        "actor_target": agent.actor_target(batch["obs"]),
        "critic": agent.q_values(agent.critic, batch["obs"], batch["action"]),
        "critic_target": agent.q_values(agent.critic_target, batch["obs"], batch["action"]),
    }


@pytest.mark.parametrize("head_layers", [1, 2])
def test_outputs_are_exactly_unchanged_at_injection(head_layers):
    agent = trained(head_layers=head_layers, critic_layer_norm=[0, 1])
    batch = agent.sample()
    with torch.no_grad():
        before = outputs(agent, batch)
        agent.inject()
        after = outputs(agent, batch)
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert len(agent.critic.injected) == 2 and agent.injections == 1


def snapshot(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module) -> list[bool]:
    return [not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True)]


def test_only_the_new_head_and_the_body_train_after_injection_with_a_fresh_optimizer():
    agent = trained()
    agent.inject()
    critic = agent.critic
    assert agent.critic_opt.steps.tolist() == [0.0, 0.0]
    trainable = {id(p) for p in agent.critic_opt.params}
    assert trainable == {id(p) for p in [*critic.base.layers[:2].parameters(), *critic.injected[0].parameters()]}
    old_head, fresh, frozen = snapshot(critic.base.layers[2]), snapshot(critic.injected[0]), snapshot(critic.injected[1])
    body = snapshot(critic.base.layers[:2])
    for t in transitions(2, 10, seed=1):
        agent.observe(t)
    assert not any(moved(old_head, critic.base.layers[2])) and not any(moved(frozen, critic.injected[1]))
    assert all(moved(fresh, critic.injected[0])) and all(moved(body, critic.base.layers[:2]))
    agent.inject()  # the head trained so far is frozen in turn; a new pair trains
    first = snapshot(critic.injected[0])
    newest = snapshot(critic.injected[2])
    for t in transitions(2, 10, seed=2):
        agent.observe(t)
    assert not any(moved(first, critic.injected[0])) and all(moved(newest, critic.injected[2]))


def test_injects_at_given_steps_and_at_task_switches_after_the_first():
    agent = make(inject_at=[10, 12], at_task_switch=True)
    agent.on_task_start(0)
    for t in transitions(2, 20):
        agent.observe(t)
    assert agent.injections == 2
    agent.on_task_start(1)
    assert agent.injections == 3 and len(agent.actor.injected) == 6


def test_diagnostics_see_the_same_hidden_layers_and_count_parameters_and_injections():
    agent = trained()
    before = agent.diagnostics()
    agent.inject()
    after = agent.diagnostics()
    assert before.keys() | {"injections"} == after.keys()
    assert after["injections"].tolist() == [1.0, 1.0]
    assert (after["critic_parameters"] - before["critic_parameters"]).tolist() == [2 * 2 * 33] * 2  # two heads of 32+1 per critic
    assert (after["critic_distance_from_init"] >= before["critic_distance_from_init"]).all()


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="head_layers"):
        make(head_layers=4)


def test_a_seed_trains_the_same_alone_and_inside_a_batch(cpu_threads):
    alone, _ = assert_seed_independent(lambda seeds: make(seeds, at_task_switch=True), switches=(25, 45))
    assert alone.injections == 2


def test_state_round_trip_rebuilds_the_injected_heads():
    assert_round_trip(lambda seeds: make(seeds, at_task_switch=True), switches=(20, 40))
