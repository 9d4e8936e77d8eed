import io
import math

import pytest
import torch
from cyclic_bench.methods.ne import NE, NEConfig, erdos_renyi_densities, unmasked
from cyclic_bench.methods.td3 import TD3, TD3Config
from helpers import SMALL, transitions

from cyclic_bench.errors import ConfigError
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.plasticity import density, dormant_units
from cyclic_bench.registry import get_method

NETS = ("actor", "critic")


def spec(seed_ids) -> MethodSpec:
    return MethodSpec(
        obs_dim=4, action_dim=2, action_kind="continuous", seed_ids=tuple(seed_ids), n_tasks=1, total_steps=500, device=torch.device("cpu")
    )


def make(seed_ids=(0, 1), **overrides) -> NE:
    return NE(NEConfig(**{**SMALL, "topology_every": 10, **overrides}), spec(seed_ids))


def fill(agent: NE, count: int = 40) -> None:
    """Store random transitions without learning."""
    for t in transitions(agent.spec.n_seeds, count, seed=7):
        t.learn = False
        agent.observe(t)


def rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1, x.shape[-2] * x.shape[-1])


def masks(agent: NE) -> dict[str, list[torch.Tensor]]:
    return {name: [layer.mask.bool().clone() for layer in getattr(agent, name).layers] for name in NETS}


def rewire(agent: NE, update: int) -> tuple[dict, dict]:
    """One topology change at `update` on a fresh batch; returns the dense gradients and hidden outputs it used."""
    batch = agent.sample()
    grads, hidden = agent.dense_gradients(batch), agent.hidden_activations(batch)
    for name, topology in agent.topologies.items():
        optimizer = {"actor": agent.actor_opt, "critic": agent.critic_opt}[name]
        topology.rewire(grads[name], hidden[name], optimizer, update, agent.horizon, agent.active, agent.config)
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


def test_sparse_start_keeps_the_largest_weights_per_seed_and_member_and_targets_match():
    agent = make((3, 4))
    dense = TD3(TD3Config(**SMALL), spec((3, 4)))  # the same seeds draw the same initial weights
    for name in NETS:
        net, reference, target = getattr(agent, name), getattr(dense, name), getattr(agent, f"{name}_target")
        assert torch.allclose(density(net), torch.tensor(0.2), atol=0.005)
        for layer, ref in zip(net.layers, reference.layers, strict=True):
            assert torch.equal(layer.weight, ref.weight * layer.mask)  # kept weights untouched, the others 0
            magnitude, kept = rows(ref.weight).abs(), rows(layer.mask).bool()
            if not kept.all():
                smallest_kept = torch.where(kept, magnitude, math.inf).amin(dim=-1)
                largest_dropped = torch.where(kept, -math.inf, magnitude).amax(dim=-1)
                assert (smallest_kept >= largest_dropped).all()
        for tracked, online in zip(target.parameters(), net.parameters(), strict=True):
            assert torch.equal(tracked, online)
    hidden_layer = agent.actor.layers[1].mask[0].mean()
    assert hidden_layer < agent.actor.layers[0].mask[0].mean()  # 32x32 gets a lower density than 4x32


def test_growth_adds_exactly_the_scheduled_connections_with_the_largest_dense_gradients():
    agent = make((0, 1, 2), prune=False, review=False)
    fill(agent)
    with torch.no_grad():  # the unmasked forward equals the masked one: masked weights are exactly 0
        obs = torch.randn(3, 5, 4)
        masked_out = agent.actor(obs)
        with unmasked(agent.actor):
            assert torch.equal(agent.actor(obs), masked_out)
    before = masks(agent)
    grads, _ = rewire(agent, update=100)
    zeta, grew_somewhere = 0.5 / 2 * (1 + math.cos(math.pi * 100 / agent.horizon)), False
    for name, topology in agent.topologies.items():
        net = getattr(agent, name)
        for k in topology.sparse_layers():
            old, new = rows(before[name][k]), rows(net.layers[k].mask.bool())
            grown, score = new & ~old, rows(grads[name][k]).abs()
            scheduled = math.ceil(zeta * (topology.target_counts[k] - topology.initial_counts[k]))
            assert (grown.sum(dim=-1) == scheduled).all(), (name, k)
            grew_somewhere |= scheduled > 0
            assert not (old & ~new).any()  # nothing pruned
            weakest_grown = torch.where(grown, score, math.inf).amin(dim=-1)
            strongest_left = torch.where(new, -math.inf, score).amax(dim=-1)
            assert (weakest_grown >= strongest_left).all()
            assert (score[~old] > 0).any()  # the gradient is dense: not zero where the mask is
            weight, (m, v) = rows(net.layers[k].weight), getattr(agent, f"{name}_opt").moments(net.layers[k].weight)
            assert (weight[grown] == 0).all() and (rows(m)[grown] == 0).all() and (rows(v)[grown] == 0).all()
    assert grew_somewhere


def test_pruning_removes_only_connections_of_dormant_units_and_fewer_than_grown():
    agent = make((0, 1), review=False)
    fill(agent)
    with torch.no_grad():
        agent.critic.layers[0].bias[0, 0, :, 3] = -100.0  # seed 0, first twin: hidden unit 3 never fires
    before = masks(agent)
    _, hidden = rewire(agent, update=50)
    dormant = [dormant_units(h, agent.config.dormant_tau) for h in hidden["critic"]]
    assert dormant[0][0, 0, 3] and not dormant[0][1, 0, 3]
    for k in agent.topologies["critic"].sparse_layers():
        touches = torch.zeros_like(before["critic"][k])
        if k > 0:
            touches |= dormant[k - 1].unsqueeze(-1)
        if k < len(dormant):
            touches |= dormant[k].unsqueeze(-2)
        old, new = rows(before["critic"][k]), rows(agent.critic.layers[k].mask.bool())
        pruned, grown = old & ~new, new & ~old
        assert not (pruned & ~rows(touches)).any()
        assert (pruned.sum(dim=-1) < grown.sum(dim=-1)).all()
    outgoing = before["critic"][1][0, 0, 3]  # the dead unit's outgoing connections (layer 1's target is not dense)
    assert outgoing.any() and not (outgoing & agent.critic.layers[1].mask[0, 0, 3].bool()).any()
    assert agent.topologies["critic"].pruned[0] > 0


def test_growth_stops_at_the_target_density_then_density_stays_constant_and_masked_weights_stay_zero():
    agent = make((0, 1), topology_every=5, review=False)
    data = list(transitions(2, 120))
    for t in data[:60]:
        agent.observe(t)
    for topology in agent.topologies.values():
        assert not topology.growing.any()
        for k in topology.sparse_layers():
            assert (rows(topology.layers[k].mask).sum(dim=-1) == topology.target_counts[k]).all()
    swapped = {name: topology.grown.clone() for name, topology in agent.topologies.items()}
    fixed = {name: density(getattr(agent, name)) for name in NETS}
    for t in data[60:]:
        agent.observe(t)
    for name, topology in agent.topologies.items():
        assert torch.equal(density(getattr(agent, name)), fixed[name])
        assert (topology.grown > swapped[name]).all()  # prune-and-regrow goes on at constant density
        optimizer = getattr(agent, f"{name}_opt")
        assert any((layer.mask == 0).any() for layer in getattr(agent, name).layers)
        for layer, tracked in zip(getattr(agent, name).layers, getattr(agent, f"{name}_target").layers, strict=True):
            off = layer.mask == 0  # masked weights stay exactly 0, online and target, with zero Adam moments
            assert not layer.weight[off].any() and not tracked.weight[off].any()
            assert not any(moment[off].any() for moment in optimizer.moments(layer.weight))


def test_ablations_switch_off_their_mechanism():
    assert get_method("ne_no_growth")[1]().grow is False and get_method("ne_no_prune")[1]().prune is False
    assert get_method("ne_no_review")[1]().review is False
    frozen, unpruned = make(grow=False), make(prune=False)
    for agent in (frozen, unpruned):
        for t in transitions(2, 50):
            agent.observe(t)
    for name in NETS:
        assert (frozen.topologies[name].grown == 0).all() and (density(getattr(frozen, name)) <= 0.2005).all()
        assert (unpruned.topologies[name].pruned == 0).all() and (unpruned.topologies[name].grown > 0).all()
    with pytest.raises(ConfigError, match="target_density"):
        make(initial_density=0.8, target_density=0.5)


def test_review_batches_come_from_the_oldest_slice_of_each_seeds_own_buffer():
    agent = make((0, 1))
    for i in range(100):  # obs[0] = arrival order, so a batch shows where it was drawn from
        obs = torch.full((2, 1, 4), float(i))
        flag = torch.zeros(2, 1, dtype=torch.bool)
        agent.observe(Transition(obs, torch.zeros(2, 1, 2), torch.zeros(2, 1), obs, flag, flag, learn=False))
    agent.review_plan[0] = True  # seed 0 reviews, seed 1 does not
    for _ in range(5):
        drawn = agent.sample()["obs"][..., 0]
        assert drawn[0].max() < 30  # oldest 30% of 100
        assert drawn[1].max() >= 30


def test_review_turns_on_when_the_dormant_ratio_stops_changing_and_off_when_it_moves():
    agent = make((0, 1))
    settling = [0.5, 0.3, 0.2, 0.15, 0.13, 0.12, 0.12, 0.12]
    speeding = [0.5, 0.49, 0.47, 0.43, 0.35, 0.2, 0.0, 0.4]
    for a, b in zip(settling, speeding, strict=True):
        agent.track_dormant(torch.tensor([a, b]))
    assert agent.reviewing.tolist() == [True, False]
    agent.track_dormant(torch.tensor([0.6, 0.4]))  # seed 0's dormant ratio jumps
    assert not agent.reviewing[0]


def test_a_seed_trains_and_rewires_the_same_alone_and_inside_a_batch(cpu_threads):
    overrides = dict(review_threshold=10.0)  # review on from the third topology change, so review batches are drawn
    batch, alone = make((4, 5, 6), **overrides), make((5,), **overrides)
    data = list(transitions(3, 70))
    for t in data:
        batch.observe(t)
        alone.observe(Transition(**{k: (v[1:2] if isinstance(v, torch.Tensor) else v) for k, v in vars(t).items()}))
    assert batch.updates == alone.updates > 50 and batch.reviewing[1] and batch.review_plan[1].any()
    for name in NETS:
        for a, b in zip(getattr(alone, name).layers, getattr(batch, name).layers, strict=True):
            assert torch.equal(a.mask[0], b.mask[1])
        for a, b in zip(alone.modules()[name].parameters(), batch.modules()[name].parameters(), strict=True):
            torch.testing.assert_close(a[0], b[1], rtol=1e-5, atol=1e-6)
        assert alone.topologies[name].grown[0] == batch.topologies[name].grown[1]
    assert torch.equal(alone.review_plan[0], batch.review_plan[1])


def test_checkpoint_round_trip_continues_identically():
    first = make((0, 1), review_threshold=10.0)
    data = list(transitions(2, 80))
    for t in data[:45]:
        first.observe(t)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make((0, 1), review_threshold=10.0)
    second.load_state_dict(torch.load(buffer))
    for t in data[45:]:
        first.observe(t)
        second.observe(t)
    for name in NETS:
        for a, b in zip(first.modules()[name].parameters(), second.modules()[name].parameters(), strict=True):
            assert torch.equal(a, b)
        for a, b in zip(getattr(first, name).layers, getattr(second, name).layers, strict=True):
            assert torch.equal(a.mask, b.mask)
        assert torch.equal(first.topologies[name].grown, second.topologies[name].grown)
    assert torch.equal(first.review_plan, second.review_plan) and first.measurements == second.measurements
    diagnostics = second.diagnostics()
    assert {"actor_density", "critic_grown", "critic_pruned", "critic_growing", "review"} <= set(diagnostics)
