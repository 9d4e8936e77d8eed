import torch
from cyclic_bench.methods.layer_norm import LayerNormConfig, LayerNormTD3
from cyclic_bench.methods.td3 import TD3, TD3Config
from helpers import SMALL, transitions
from method_checks import assert_round_trip, assert_seed_independent, spec


def make(seed_ids=(0, 1), **overrides) -> LayerNormTD3:
    return LayerNormTD3(LayerNormConfig(**{**SMALL, **overrides}), spec(seed_ids))


def test_every_hidden_layer_of_actor_critic_and_targets_is_normalised_and_trained():
    agent = make()
    for net in (agent.actor, agent.critic, agent.actor_target, agent.critic_target):
        assert sorted(net.norms.keys()) == ["0", "1"]
    assert agent.critic.norms["0"].weight.shape == (2, 2, 1, 32)  # per seed and per twin critic
    for net, opt in ((agent.actor, agent.actor_opt), (agent.critic, agent.critic_opt)):
        assert len(opt.params) == len(list(net.parameters()))
    gains = agent.critic.norms["1"].weight.detach().clone()
    for t in transitions(2, 30):
        agent.observe(t)
    assert not torch.equal(gains, agent.critic.norms["1"].weight)


def test_linear_layers_start_as_td3s_and_the_actor_becomes_scale_invariant():
    agent, plain = make(), TD3(TD3Config(**SMALL), spec((0, 1)))
    for a, b in zip(agent.actor.layers.parameters(), plain.actor.layers.parameters(), strict=True):
        assert torch.equal(a, b)
    obs = torch.randn(2, 8, 4)
    before = agent.actor(obs)
    with torch.no_grad():  # LayerNorm right after the first layer: its scale no longer matters
        agent.actor.layers[0].weight.mul_(10.0)
        agent.actor.layers[0].bias.mul_(10.0)
    torch.testing.assert_close(agent.actor(obs), before, rtol=1e-4, atol=1e-5)


def test_norms_can_be_left_out_of_the_actor():
    agent = make(actor_norm=False)
    assert len(agent.actor.norms) == 0 and len(agent.critic.norms) == 2


def test_a_seed_trains_the_same_alone_and_inside_a_batch(cpu_threads):
    assert_seed_independent(lambda seeds: make(seeds))


def test_state_round_trip_continues_identically():
    assert_round_trip(lambda seeds: make(seeds))
