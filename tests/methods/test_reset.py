import torch
from cyclic_bench.methods.reset import Reset, ResetConfig
from helpers import SMALL, transitions

from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import get_method


def make(**overrides) -> Reset:
    spec = MethodSpec(
        obs_dim=4, action_dim=2, action_kind="continuous", seed_ids=(0, 1), n_tasks=2, total_steps=500, device=torch.device("cpu")
    )
    return Reset(ResetConfig(**{**SMALL, **overrides}), spec)


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def test_periodic_reset_refreshes_networks_and_optimizers_and_keeps_the_buffer():
    agent = make(reset_every=30)
    data = list(transitions(2, 30))
    for t in data[:29]:
        agent.observe(t)
    before = snapshot(agent.actor)
    agent.observe(data[29])
    assert agent.resets == 1 and agent.replay.size == 30
    assert all(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True) if a.dim() > 2)
    assert agent.actor_opt.steps.tolist() == [0.0, 0.0]
    assert all(torch.equal(a, b) for a, b in zip(agent.actor.parameters(), agent.actor_target.parameters(), strict=True))


def test_last_layer_variant_keeps_the_other_layers():
    agent = make(reset_every=10, layers="last")
    for t in transitions(2, 9):
        agent.observe(t)
    before = snapshot(agent.critic)
    agent.reset_networks()
    after = list(agent.critic.parameters())
    assert torch.equal(before[0], after[0])  # first layer weight untouched
    assert not torch.equal(before[-2], after[-2])  # output layer weight fresh


def test_reset_at_task_switch_skips_the_first_task():
    cls, config_cls = get_method("reset_switch")
    assert cls is Reset and config_cls().at_task_switch and config_cls().reset_every == 0
    agent = make(reset_every=0, at_task_switch=True)
    agent.on_task_start(0)
    assert agent.resets == 0
    for t in transitions(2, 5):
        agent.observe(t)
    agent.on_task_start(1)
    assert agent.resets == 1
