import io
import math

import pytest
import torch
from cyclic_bench.methods.interventions.ne import erdos_renyi_densities, unmasked
from helpers import transitions
from method_checks import LEARNERS, assert_seed_independent
from method_checks import make as make_pair

from cyclic_bench.errors import ConfigError
from cyclic_bench.method import Transition
from cyclic_bench.plasticity import density, dormant_units
from cyclic_bench.registry import get_method

NETS = ("actor", "critic")
per_learner = pytest.mark.parametrize("learner", LEARNERS)


def make(learner="td3", seed_ids=(0, 1), **overrides):
    return make_pair("ne", learner, seed_ids, n_tasks=1, **{"topology_every": 10, **overrides})


def net(agent, name):
    return agent.learner.networks[name]


def fill(agent, count: int = 40) -> None:
    """Store random transitions without learning."""
    for t in transitions(agent.spec.n_seeds, count, seed=7):
        t.learn = False
        agent.observe(t)


def rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1, x.shape[-2] * x.shape[-1])


def masks(agent) -> dict[str, list[torch.Tensor]]:
    return {name: [layer.mask.bool().clone() for layer in net(agent, name).module.layers] for name in NETS}


def rewire(agent, update: int) -> tuple[dict, dict]:
    """One topology change at `update` on a fresh batch; returns the dense gradients and hidden outputs it used."""
    ne, batch = agent.intervention, agent.learner.sample()
    grads, hidden = ne.dense_gradients(batch), ne.hidden_activations(batch)
    for name, topology in ne.topologies.items():
        topology.rewire(grads[name], hidden[name], net(agent, name).optimizer, update, ne.horizon, agent.active, agent.config)
    return grads, hidden


def test_erdos_renyi_densities_hold_the_budget_and_make_overfull_layers_dense():
    shapes = [(4, 32), (32, 32), (32, 2)]
    d = erdos_renyi_densities(shapes, 0.2)
    sizes = [i * o for i, o in shapes]
    assert math.isclose(sum(x * n for x, n in zip(d, sizes, strict=True)), 0.2 * sum(sizes))
    ratios = [x / ((i + o) / (i * o)) for x, (i, o) in zip(d, shapes, strict=True)]
    assert max(ratios) - min(ratios) < 1e-9  # 1 - s_l proportional to (in + out) / (in * out)
    capped = erdos_renyi_densities([(100, 2), (100, 100)], 0.5)
    assert capped[0] == 1.0 and math.isclose(capped[1] * 10_000 + 200, 0.5 * 10_200)


@per_learner
def test_sparse_start_keeps_the_largest_weights_per_seed_and_member_and_targets_match(learner):
    agent = make(learner, (3, 4))
    dense = make_pair(learner, learner, (3, 4), n_tasks=1)  # the same seeds draw the same initial weights
    for name in NETS:
        online, reference, target = net(agent, name).module, net(dense, name).module, net(agent, name).target
        assert torch.allclose(density(online), torch.tensor(0.2), atol=0.005)
        for layer, ref in zip(online.layers, reference.layers, strict=True):
            assert torch.equal(layer.weight, ref.weight * layer.mask)  # kept weights untouched, the others 0
            magnitude, kept = rows(ref.weight).abs(), rows(layer.mask).bool()
            if not kept.all():
                smallest_kept = torch.where(kept, magnitude, math.inf).amin(dim=-1)
                largest_dropped = torch.where(kept, -math.inf, magnitude).amax(dim=-1)
                assert (smallest_kept >= largest_dropped).all()
        for tracked, weight in zip(target.parameters() if target is not None else (), online.parameters(), strict=False):
            assert torch.equal(tracked, weight)
    hidden_layer = agent.learner.actor.layers[1].mask[0].mean()
    assert hidden_layer < agent.learner.actor.layers[0].mask[0].mean()  # 32x32 gets a lower density than 4x32


@per_learner
def test_growth_adds_exactly_the_scheduled_connections_with_the_largest_dense_gradients(learner):
    agent = make(learner, (0, 1, 2), prune=False, review=False)
    fill(agent)
    actor = agent.learner.actor
    with torch.no_grad():  # the unmasked forward equals the masked one: masked weights are exactly 0
        obs = torch.randn(3, 5, 4)
        masked_out = actor(obs)
        with unmasked(actor):
            assert torch.equal(actor(obs), masked_out)
    before = masks(agent)
    grads, _ = rewire(agent, update=100)
    zeta, grew_somewhere = 0.5 / 2 * (1 + math.cos(math.pi * 100 / agent.intervention.horizon)), False
    for name, topology in agent.intervention.topologies.items():
        online = net(agent, name).module
        for k in topology.sparse_layers():
            old, new = rows(before[name][k]), rows(online.layers[k].mask.bool())
            grown, score = new & ~old, rows(grads[name][k]).abs()
            scheduled = math.ceil(zeta * (topology.target_counts[k] - topology.initial_counts[k]))
            assert (grown.sum(dim=-1) == scheduled).all(), (name, k)
            grew_somewhere |= scheduled > 0
            assert not (old & ~new).any()  # nothing pruned
            weakest_grown = torch.where(grown, score, math.inf).amin(dim=-1)
            strongest_left = torch.where(new, -math.inf, score).amax(dim=-1)
            assert (weakest_grown >= strongest_left).all()
            assert (score[~old] > 0).any()  # the gradient is dense: not zero where the mask is
            weight, (m, v) = rows(online.layers[k].weight), net(agent, name).optimizer.moments(online.layers[k].weight)
            assert (weight[grown] == 0).all() and (rows(m)[grown] == 0).all() and (rows(v)[grown] == 0).all()
    assert grew_somewhere


@per_learner
def test_pruning_removes_only_connections_of_dormant_units_and_fewer_than_grown(learner):
    agent = make(learner, (0, 1), review=False)
    fill(agent)
    critic = agent.learner.critic
    with torch.no_grad():
        critic.layers[0].bias[0, 0, :, 3] = -100.0  # seed 0, first twin: hidden unit 3 never fires
    before = masks(agent)
    _, hidden = rewire(agent, update=50)
    dormant = [dormant_units(h, agent.config.dormant_tau) for h in hidden["critic"]]
    assert dormant[0][0, 0, 3] and not dormant[0][1, 0, 3]
    for k in agent.intervention.topologies["critic"].sparse_layers():
        touches = torch.zeros_like(before["critic"][k])
        if k > 0:
            touches |= dormant[k - 1].unsqueeze(-1)
        if k < len(dormant):
            touches |= dormant[k].unsqueeze(-2)
        old, new = rows(before["critic"][k]), rows(critic.layers[k].mask.bool())
        pruned, grown = old & ~new, new & ~old
        assert not (pruned & ~rows(touches)).any()
        assert (pruned.sum(dim=-1) < grown.sum(dim=-1)).all()
    outgoing = before["critic"][1][0, 0, 3]  # the dead unit's outgoing connections (layer 1's target is not dense)
    assert outgoing.any() and not (outgoing & critic.layers[1].mask[0, 0, 3].bool()).any()
    assert agent.intervention.topologies["critic"].pruned[0] > 0


@per_learner
def test_growth_stops_at_the_target_density_then_density_stays_constant_and_masked_weights_stay_zero(learner):
    agent = make(learner, (0, 1), topology_every=5, review=False)
    data = list(transitions(2, 120))
    for t in data[:60]:
        agent.observe(t)
    topologies = agent.intervention.topologies
    for topology in topologies.values():
        assert not topology.growing.any()
        for k in topology.sparse_layers():
            assert (rows(topology.layers[k].mask).sum(dim=-1) == topology.target_counts[k]).all()
    swapped = {name: topology.grown.clone() for name, topology in topologies.items()}
    fixed = {name: density(net(agent, name).module) for name in NETS}
    for t in data[60:]:
        agent.observe(t)
    for name, topology in topologies.items():
        online, target, optimizer = net(agent, name).module, net(agent, name).target, net(agent, name).optimizer
        assert torch.equal(density(online), fixed[name])
        assert (topology.grown > swapped[name]).all()  # prune-and-regrow goes on at constant density
        assert any((layer.mask == 0).any() for layer in online.layers)
        for k, layer in enumerate(online.layers):
            off = layer.mask == 0  # masked weights stay exactly 0, online and target, with zero Adam moments
            assert not layer.weight[off].any() and (target is None or not target.layers[k].weight[off].any())
            assert not any(moment[off].any() for moment in optimizer.moments(layer.weight))


@per_learner
def test_ablations_switch_off_their_mechanism(learner):
    for name, setting in (("ne_no_growth", "grow"), ("ne_no_prune", "prune"), ("ne_no_review", "review")):
        assert getattr(get_method(name, learner)[1](), setting) is False
    frozen, unpruned = make(learner, grow=False), make(learner, prune=False)
    for agent in (frozen, unpruned):
        for t in transitions(2, 50):
            agent.observe(t)
    for name in NETS:
        assert (frozen.intervention.topologies[name].grown == 0).all() and (density(net(frozen, name).module) <= 0.2005).all()
        topology = unpruned.intervention.topologies[name]
        assert (topology.pruned == 0).all() and (topology.grown > 0).all()
    with pytest.raises(ConfigError, match="target_density"):
        make(learner, initial_density=0.8, target_density=0.5)


def test_review_batches_come_from_the_oldest_slice_of_each_seeds_own_buffer():
    agent = make("td3", (0, 1))
    for i in range(100):  # obs[0] = arrival order, so a batch shows where it was drawn from
        obs = torch.full((2, 1, 4), float(i))
        flag = torch.zeros(2, 1, dtype=torch.bool)
        agent.observe(Transition(obs, torch.zeros(2, 1, 2), torch.zeros(2, 1), obs, flag, flag, learn=False))
    agent.intervention.review_plan[0] = True  # seed 0 reviews, seed 1 does not
    for _ in range(5):
        drawn = agent.learner.sample(agent.intervention.sample_positions)["obs"][..., 0]
        assert drawn[0].max() < 30  # oldest 30% of 100
        assert drawn[1].max() >= 30


def test_review_turns_on_when_the_dormant_ratio_stops_changing_and_off_when_it_moves():
    ne = make("td3", (0, 1)).intervention
    settling = [0.5, 0.3, 0.2, 0.15, 0.13, 0.12, 0.12, 0.12]
    speeding = [0.5, 0.49, 0.47, 0.43, 0.35, 0.2, 0.0, 0.4]
    for a, b in zip(settling, speeding, strict=True):
        ne.track_dormant(torch.tensor([a, b]))
    assert ne.reviewing.tolist() == [True, False]
    ne.track_dormant(torch.tensor([0.6, 0.4]))  # seed 0's dormant ratio jumps
    assert not ne.reviewing[0]


@per_learner
def test_a_seed_trains_and_rewires_the_same_alone_and_inside_a_batch(learner, cpu_threads):
    make_one = lambda seeds: make(learner, seeds, review_threshold=10.0)  # noqa: E731  review on from the 3rd topology change
    alone, batch = assert_seed_independent(make_one, steps=70)
    assert batch.learner.updates == alone.learner.updates > 50
    assert batch.intervention.reviewing[1] and batch.intervention.review_plan[1].any()
    for name in NETS:
        for a, b in zip(net(alone, name).module.layers, net(batch, name).module.layers, strict=True):
            assert torch.equal(a.mask[0], b.mask[1])
        assert alone.intervention.topologies[name].grown[0] == batch.intervention.topologies[name].grown[1]
    assert torch.equal(alone.intervention.review_plan[0], batch.intervention.review_plan[1])


@per_learner
def test_checkpoint_round_trip_restores_masks_and_the_review_state(learner):
    """Continuing bit for bit after a checkpoint is checked for every pair in test_registry.py."""
    first = make(learner, (0, 1), review_threshold=10.0)
    for t in transitions(2, 45):
        first.observe(t)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(learner, (0, 1), review_threshold=10.0)
    second.load_state_dict(torch.load(buffer, weights_only=False))
    for name in NETS:
        for a, b in zip(net(first, name).module.layers, net(second, name).module.layers, strict=True):
            assert torch.equal(a.mask, b.mask)
    assert torch.equal(first.intervention.review_plan, second.intervention.review_plan)
    assert first.intervention.measurements == second.intervention.measurements
    diagnostics = second.diagnostics()
    assert {"actor_density", "critic_grown", "critic_pruned", "critic_growing", "review"} <= set(diagnostics)


@per_learner
def test_combines_with_layer_norm_and_crelu_through_the_learners_settings(learner):
    agent = make(learner, activation="crelu", actor_layer_norm=[0, 1], critic_layer_norm=[0], topology_every=5)
    critic = agent.learner.critic
    assert critic.layers[1].in_features == 2 * 32 and list(critic.norms) == ["0"]
    fill(agent)
    with torch.no_grad():  # seed 0, first twin: unit 5 of the second hidden layer outputs 0, so relu(x) and relu(-x) are both dormant
        critic.layers[1].weight[0, 0, :, 5] = 0.0
        critic.layers[1].bias[0, 0, :, 5] = 0.0
    before = masks(agent)
    _, hidden = rewire(agent, update=5)
    dormant = dormant_units(hidden["critic"][1], agent.config.dormant_tau)
    assert hidden["critic"][1].shape[-1] == 64 and dormant[0, 0, [5, 37]].all()
    incoming = before["critic"][1][0, 0, :, 5]  # the second layer's connections into unit 5
    assert incoming.any() and not (incoming & critic.layers[1].mask[0, 0, :, 5].bool()).any()  # all pruned
    for t in transitions(2, 30, seed=2):
        agent.observe(t)
    assert torch.isfinite(agent.diagnostics()["critic_density"]).all()
