import torch
from cyclic_bench.methods.layer_norm import LayerNormConfig, LayerNormTD3
from cyclic_bench.methods.nap import NaP, NaPConfig
from helpers import SMALL, transitions
from method_checks import assert_round_trip, assert_seed_independent, spec


def make(seed_ids=(0, 1), **overrides) -> NaP:
    return NaP(NaPConfig(**{**SMALL, **overrides}), spec(seed_ids))


def norms(agent) -> list[torch.Tensor]:
    """Every weight matrix's norm, per seed (and twin critic), actor then critic."""
    return [layer.weight.detach().norm(dim=(-2, -1)) for net in (agent.actor, agent.critic) for layer in net.layers]


def test_weight_norms_stay_at_their_initial_values_while_the_weights_move():
    agent = make(lr=1e-2)  # a large rate, so that plain training would move the norms a lot
    initial, weights = norms(agent), [p.detach().clone() for p in agent.critic.parameters()]
    for t in transitions(2, 40):
        agent.observe(t)
    assert agent.updates > 20
    for before, after in zip(initial, norms(agent), strict=True):
        torch.testing.assert_close(after, before, rtol=1e-5, atol=0)
    assert all(not torch.equal(a, b) for a, b in zip(weights, agent.critic.parameters(), strict=True))
    assert all(len(net.norms) == 2 for net in (agent.actor, agent.critic))  # NaP = LayerNorm + projection


def test_without_projection_the_norms_drift():
    agent = LayerNormTD3(LayerNormConfig(**SMALL, lr=1e-2), spec((0, 1)))
    initial = norms(agent)
    for t in transitions(2, 40):
        agent.observe(t)
    assert max(((after - before).abs() / before).max().item() for before, after in zip(initial, norms(agent), strict=True)) > 0.01


def test_an_inactive_seed_is_not_projected():
    agent = make()
    for t in transitions(2, 20):
        agent.observe(t)
    agent.deactivate(torch.tensor([False, True]))
    frozen = [p.detach()[1].clone() for p in agent.critic.parameters()]
    for t in transitions(2, 10, seed=1):
        agent.observe(t)
    assert all(torch.equal(f, p[1]) for f, p in zip(frozen, agent.critic.parameters(), strict=True))


def test_a_seed_trains_the_same_alone_and_inside_a_batch(cpu_threads):
    assert_seed_independent(lambda seeds: make(seeds))


def test_state_round_trip_continues_identically():
    assert_round_trip(lambda seeds: make(seeds))
