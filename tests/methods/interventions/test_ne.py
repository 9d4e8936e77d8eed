import math

import pytest
import torch
from cyclic_bench.methods.interventions.ne import DormantStallTrigger, NEConfig, active_fraction_gate, erdos_renyi_densities, unmasked
from helpers import transitions
from method_checks import LEARNERS, assert_round_trip, assert_seed_independent
from method_checks import make as make_pair

from cyclic_bench.cli import main
from cyclic_bench.errors import ConfigError
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.plasticity import density, dormant_units
from cyclic_bench.registry import get_method

NETS = ("critic", "actor")
per_learner = pytest.mark.parametrize("learner", LEARNERS)


def make(learner="td3", seed_ids=(0, 1), name="ne", **overrides):
    return make_pair(name, learner, seed_ids, n_tasks=1, **{"topology_every": 10, **overrides})


def public(seed_ids=(0, 1), **overrides):
    return make("td3", seed_ids, name="ne_public", **{"critic_hidden": [32, 32, 32], **overrides})


def net(agent, name):
    return agent.learner.networks[name]


def fill(agent, count: int = 40) -> None:
    """Store random transitions without learning."""
    for t in transitions(agent.spec.n_seeds, count, seed=7):
        t.learn = False
        agent.observe(t)


def rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1, x.shape[-2] * x.shape[-1])


def masks(agent) -> dict[str, dict[int, torch.Tensor]]:
    """Each network's sparse layers' masks as bool rows [S, M, N]."""
    return {name: {k: rows(t.layers[k].mask).bool().clone() for k in t.sparse} for name, t in agent.intervention.topologies.items()}


def path(initial: int, target: int, x: float) -> int:
    """The cosine schedule, written out: the integral of the paper's rate 1 + cos(pi x), scaled to the layer's room."""
    return initial + math.floor((target - initial) * (x + math.sin(math.pi * x) / math.pi))


def test_erdos_renyi_densities_hold_the_budget_and_make_overfull_layers_dense():
    shapes = [(4, 32), (32, 32), (32, 2)]
    d = erdos_renyi_densities(shapes, 0.2)
    sizes = [i * o for i, o in shapes]
    assert math.isclose(sum(x * n for x, n in zip(d, sizes, strict=True)), 0.2 * sum(sizes))
    ratios = [x / ((i + o) / (i * o)) for x, (i, o) in zip(d, shapes, strict=True)]
    assert max(ratios) - min(ratios) < 1e-9  # 1 - s_l proportional to (in + out) / (in * out)
    capped = erdos_renyi_densities([(100, 2), (100, 100)], 0.5)
    assert capped[0] == 1.0 and math.isclose(capped[1] * 10_000 + 200, 0.5 * 10_200)
    gains = erdos_renyi_densities([(32, 32), (32, 32)], 0.2, dense_entries=64)  # LayerNorm gains: dense, in the budget
    assert math.isclose(sum(x * 1024 for x in gains) + 64, 0.2 * (2048 + 64))
    tied = erdos_renyi_densities([(2, 2), (2, 2), (40, 40)], 0.3)  # the two densest layers are made dense together
    assert tied[:2] == [1.0, 1.0] and tied[2] < 1


@per_learner
def test_sparse_start_keeps_the_largest_weights_per_seed_and_member_and_targets_match(learner):
    agent = make(learner, (3, 4))
    dense = make_pair(learner, learner, (3, 4), n_tasks=1)  # the same seeds draw the same initial weights
    topologies = agent.intervention.topologies
    for name in NETS:
        online, reference, target = net(agent, name).module, net(dense, name).module, net(agent, name).target
        assert torch.allclose(density(online), torch.tensor(0.2), atol=0.005)
        assert topologies[name].sparse, name
        for k, (layer, ref) in enumerate(zip(online.layers, reference.layers, strict=True)):
            if k not in topologies[name].sparse:
                assert layer.mask is None and torch.equal(layer.weight, ref.weight)  # dense layers never change
                continue
            assert torch.equal(layer.weight, ref.weight * layer.mask)  # kept weights untouched, the others 0
            magnitude, kept = rows(ref.weight).abs(), rows(layer.mask).bool()
            smallest_kept = torch.where(kept, magnitude, math.inf).amin(dim=-1)
            largest_dropped = torch.where(kept, -math.inf, magnitude).amax(dim=-1)
            assert (smallest_kept >= largest_dropped).all()
        for tracked, weight in zip(target.parameters(), online.parameters(), strict=True) if target is not None else ():
            assert torch.equal(tracked, weight)


@per_learner
def test_growth_follows_the_cosine_schedule_prunes_the_public_count_and_first_reaches_the_target_at_the_end_of_the_span(
    learner, cpu_threads
):
    span = 300  # updates; the stream below has about 640
    agent = make(learner, (0, 1), growth_updates=span, review=False)
    ne = agent.intervention
    before, first_at_target, growth_steps, pruned_somewhere, last = masks(agent), {}, 0, False, dict(ne.own_updates)
    for t in transitions(2, 660):
        agent.observe(t)
        changed = [n for n in NETS if ne.own_updates[n] != last[n] and ne.own_updates[n] % ne.config.topology_every == 0]
        last, u = dict(ne.own_updates), agent.learner.updates
        for name in changed:
            topology, now = ne.topologies[name], masks(agent)[name]
            at_target = all((topology.active(k) == topology.target_counts[k]).all() for k in topology.sparse)
            if at_target and name not in first_at_target:
                first_at_target[name] = u
            for k in topology.sparse:
                old, new = before[name][k], now[k]
                grown, pruned = (new & ~old).sum(dim=-1), (old & ~new).sum(dim=-1)
                if u <= span:  # growth steps: on the path, at the public count
                    growth_steps += 1
                    size = old.shape[-1]
                    scheduled = path(topology.initial_counts[k], topology.target_counts[k], u / span)
                    assert (new.sum(dim=-1) == scheduled).all(), (name, k, u)
                    prunable = torch.minimum(torch.floor(0.4 * old.sum(dim=-1).double()).long(), torch.tensor(size - scheduled))
                    assert torch.equal(pruned, torch.minimum(torch.floor(0.4 * grown.double()).long(), prunable)), (name, k, u)
                    assert ((pruned < grown) | (grown == 0) & (pruned == 0)).all()
                    pruned_somewhere |= bool((pruned > 0).any())
            before[name] = now
    assert first_at_target == {"critic": span, "actor": span}  # not one topology change earlier, nor later
    assert growth_steps > 30 and pruned_somewhere
    for name in NETS:  # and from then on at constant density, the target's
        assert torch.allclose(density(net(agent, name).module), torch.tensor(0.75), atol=0.01)


@per_learner
def test_growth_picks_the_largest_dense_gradients_and_prunes_dormant_units_connections_first(learner):
    agent = make(learner, (0, 1), review=False, growth_updates=40)
    ne, critic = agent.intervention, net(agent, "critic")
    fill(agent)
    with torch.no_grad():  # the unmasked forward equals the masked one: masked weights are exactly 0
        actor, obs = agent.learner.actor, torch.randn(2, 5, 4)
        with unmasked(actor):
            raw = actor(obs)
        assert torch.equal(actor(obs), raw)
        critic.module.layers[0].bias[0, 0, :, 3] = -100.0  # seed 0, first twin: hidden unit 3 never fires
    agent.learner.updates = 10  # a quarter of the span: a large growth step
    before, batch = masks(agent), agent.learner.sample()
    weights = {k: rows(critic.module.layers[k].weight).clone() for k in ne.topologies["critic"].sparse}
    counter = ne.topology_rng.state_dict()["counter"].clone()
    grads, hidden = ne.dense_gradients(batch, NETS), ne.hidden_activations(batch)
    ne.topology_rng.load_state_dict({"counter": counter})  # the step below draws the same target noise
    ne.topology_step(batch, ["critic"])
    dormant = [dormant_units(h, 0.0) for h in hidden["critic"]]
    assert dormant[0][0, 0, 3] and not dormant[0][1, 0, 3]
    topology = ne.topologies["critic"]
    for k in topology.sparse:
        layer = critic.module.layers[k]
        old, new = before["critic"][k], rows(layer.mask).bool()
        grown, pruned, score = new & ~old, old & ~new, rows(grads["critic"][k]).abs()
        assert grown.any() and pruned.any()
        weakest_grown = torch.where(grown, score, math.inf).amin(dim=-1)
        strongest_left = torch.where(new | old, -math.inf, score).amax(dim=-1)
        assert (weakest_grown >= strongest_left).all()  # RigL: the largest dense-gradient magnitudes among inactive ones
        first = topology.dormant_connections(k, dormant)
        kept_dormant = (old & ~pruned & first).any(dim=-1)
        pruned_other = (pruned & ~first).any(dim=-1)
        assert not (kept_dormant & pruned_other).any()  # dormant units' connections go first
        magnitude = weights[k].abs()
        largest_pruned = torch.where(pruned & ~first, magnitude, -math.inf).amax(dim=-1)
        smallest_kept = torch.where(old & ~pruned & ~first, magnitude, math.inf).amin(dim=-1)
        assert (largest_pruned <= smallest_kept).all()  # then the smallest |w|
        m, v = critic.optimizer.moments(layer.weight)
        for tensor in (rows(layer.weight), rows(m), rows(v)):
            assert (tensor[grown] == 0).all() and (tensor[pruned] == 0).all()  # new and gone: weight 0, moments 0
    outgoing = before["critic"][1][0, 0, 3 * 32 : 4 * 32]  # the dead unit's outgoing connections, all pruned
    assert outgoing.any() and not rows(critic.module.layers[1].mask).bool()[0, 0, 3 * 32 : 4 * 32].any()


@per_learner
def test_after_the_span_density_stays_constant_while_connections_are_swapped_and_masked_weights_stay_zero(learner):
    agent = make(learner, (0, 1), topology_every=5, growth_updates=40, review=False)
    topologies = agent.intervention.topologies
    data = list(transitions(2, 200))
    for t in data[:100]:
        agent.observe(t)
    for topology in topologies.values():
        assert not topology.growing.any()
        for k in topology.sparse:
            assert (topology.active(k) == topology.target_counts[k]).all()
    swapped = {name: (t.grown.clone(), t.pruned.clone()) for name, t in topologies.items()}
    fixed = {name: density(net(agent, name).module) for name in NETS}
    for t in data[100:]:
        agent.observe(t)
    for name, topology in topologies.items():
        online, target, optimizer = net(agent, name).module, net(agent, name).target, net(agent, name).optimizer
        assert torch.equal(density(online), fixed[name])
        grown, pruned = topology.grown - swapped[name][0], topology.pruned - swapped[name][1]
        assert (grown > 0).all() and torch.equal(grown, pruned)  # prune-and-regrow goes on, as many in as out
        masked = 0
        for k in topology.sparse:
            layer = online.layers[k]
            off = layer.mask == 0  # masked weights stay exactly 0, online and target, with zero Adam moments
            assert not layer.weight[off].any() and (target is None or not target.layers[k].weight[off].any())
            assert not any(moment[off].any() for moment in optimizer.moments(layer.weight))
            masked += int(off.sum())
        assert masked > 0


@per_learner
def test_ablations_switch_off_their_mechanism(learner):
    for name, setting in (("ne_no_growth", "grow"), ("ne_no_prune", "prune"), ("ne_no_review", "review")):
        assert getattr(get_method(name, learner)[1](), setting) is False
    frozen, unpruned = make(learner, grow=False, growth_updates=30), make(learner, prune=False, growth_updates=30)
    quiet = make(learner, review=False)
    for agent in (frozen, unpruned, quiet):
        for t in transitions(2, 80):
            agent.observe(t)
    for name in NETS:
        still, unpruned_topology = frozen.intervention.topologies[name], unpruned.intervention.topologies[name]
        assert (still.grown == 0).all() and (still.pruned == 0).all()
        assert torch.allclose(density(net(frozen, name).module), torch.tensor(0.2), atol=0.005)
        assert (unpruned_topology.pruned == 0).all() and (unpruned_topology.grown > 0).all()
    assert quiet.diagnostics()["review_batches"].eq(0).all()


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(initial_density=0.8, target_density=0.5), "target_density"),
        (dict(growth_schedule="linear"), "growth_schedule='linear'"),
        (dict(review_gate="always"), "review_gate"),
        (dict(prune_ratio=1.0), "prune_ratio"),
        (dict(growth_fraction=0.0), "growth_fraction"),
        (dict(review_window=0), "review_window"),
    ],
)
def test_bad_settings_are_refused_when_the_config_is_made(overrides, match):
    with pytest.raises(ConfigError, match=match):
        NEConfig(**overrides)


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
    assert agent.diagnostics()["review_batches"].tolist() == [1.0, 0.0]


def test_the_dormant_stall_trigger_turns_on_and_off_exactly_as_its_rule_says():
    trigger = DormantStallTrigger(n_seeds=1, window=2, threshold=0.5, device=torch.device("cpu"))
    ratios = [0.5, 0.4, 0.2, 0.1, 0.08, 0.07, 0.07, 0.3, 0.3, 0.3]
    # r_k = |d_k - d_{k-2}| / 2 from k = 2: 0.15, 0.15, 0.06, 0.015, 0.005, 0.115, 0.115, 0; fastest 0.15, threshold 0.075
    expected = [False, False, False, False, True, True, True, False, False, True]
    assert [bool(trigger.measure(torch.tensor([d]))[0]) for d in ratios] == expected
    assert float(trigger.rate[0]) == 0.0 and math.isclose(float(trigger.fastest[0]), 0.15, rel_tol=1e-6)
    still = DormantStallTrigger(n_seeds=1, window=2, threshold=0.5, device=torch.device("cpu"))
    assert not any(bool(still.measure(torch.tensor([0.1]))[0]) for _ in range(6))  # a ratio that never moved has not stalled


def test_the_public_gate_reviews_below_the_awaken_level_with_its_logistic_probability():
    active = torch.tensor([0.45, 0.39, 0.39, 0.1, 0.1, 0.0])
    coin = torch.tensor([0.99, 0.60, 0.30, 0.55, 0.45, 0.474])
    gate = 1 / (1 + 0.9 * torch.exp(0.4 - active))  # 0.44 at a = 0.39, 0.45 at 0.1, 0.43 at 0
    assert active_fraction_gate(active, coin, 0.4, 0.9).tolist() == [False, True, False, True, False, True]
    below = active < 0.4
    assert ((1 - gate[below]) > 0.47).all() and ((1 - gate[below]) < 0.58).all()  # the review probability


def test_ne_public_builds_the_public_networks_and_configuration_on_td3_only():
    cheetah = MethodSpec(17, 6, "continuous", (0,), 1, 10_000, torch.device("cpu"))  # HalfCheetah's sizes
    method_cls, config_cls = get_method("ne_public")
    agent = method_cls(config_cls(), cheetah)
    critic, actor = agent.learner.critic, agent.learner.actor
    assert [(layer.in_features, layer.out_features) for layer in critic.layers] == [(23, 256), (256, 256), (256, 256), (256, 1)]
    assert list(critic.norms) == ["2"] and critic.norms["2"].weight.shape == (1, 2, 1, 256)  # before the third ReLU
    assert [(layer.in_features, layer.out_features) for layer in actor.layers] == [(17, 256), (256, 256), (256, 6)]
    assert not actor.norms
    critic_topology, actor_topology = agent.intervention.topologies["critic"], agent.intervention.topologies["actor"]
    assert critic_topology.sparse == [0, 1, 2] and actor_topology.sparse == [1]  # Erdos-Renyi at 0.2 makes the others dense
    for topology in (critic_topology, actor_topology):  # the public budget: LayerNorm gains count as dense weights
        assert abs(float(topology.density()[0]) - 0.2) < 1e-3
        dense = sum(n for k, n in enumerate(topology.sizes) if k not in topology.sparse) + topology.gains
        used = sum(topology.initial_counts[k] for k in topology.sparse) + dense
        assert abs(used - 0.2 * (sum(topology.sizes) + topology.gains)) < len(topology.sparse)
    shares = [
        critic_topology.initial_counts[k] / critic_topology.sizes[k] / ((23 + 256) / (23 * 256) if k == 0 else 512 / 65536)
        for k in critic_topology.sparse
    ]
    assert max(shares) - min(shares) < 1e-3  # one epsilon for every sparse layer
    config = agent.config
    assert (config.growth_schedule, config.review_gate, config.prune_order) == ("constant", "active_fraction", "magnitude")
    assert (config.halve_batch_below, config.restart_adam_steps, config.regrow_pruned, config.constant_growth) == (0.36, True, True, 0.008)
    td3 = get_method("td3")[1]()
    assert td3.critic_hidden == [256, 256] and td3.critic_layer_norm == []  # other methods keep TD3's networks
    assert get_method("ne")[1]().critic_hidden == [256, 256] and get_method("ne", "sac")[1]().critic_hidden == [256, 256]
    with pytest.raises(ConfigError, match="method.base=sac is not allowed for method=ne_public; it runs on: td3"):
        get_method("ne_public", "sac")


def test_ne_public_grows_at_the_constant_pace_restarts_adam_steps_and_halves_batches():
    agent = public(halve_batch_below=1.0, review_active_below=1.0)  # halve always, gate open
    ne, learner = agent.intervention, agent.learner
    fill(agent)
    drawn = learner.sample(ne.sample_positions)["obs"]
    assert torch.equal(drawn[:, :8], drawn[:, 8:])  # the first half, each transition twice
    agent.diagnostics()  # closes the window
    for _ in range(40):
        learner.sample(ne.sample_positions)
    gate = 1 / (1 + 0.9 * torch.exp(1.0 - ne.critic_activity))
    share = agent.diagnostics()["review_batches"]
    assert ((share - (1 - gate)).abs() < 0.25).all() and (share > 0).all()  # about the gate's review probability
    topology, optimizer = ne.topologies["critic"], net(agent, "critic").optimizer
    before = {k: topology.active(k) for k in topology.sparse}
    optimizer.sparse_group.steps.fill_(7.0)
    learner.updates = 10
    ne.topology_step(learner.sample(), ["critic"])
    assert (optimizer.sparse_group.steps == 0).all() and (optimizer.groups[1].steps == 0).all()  # both were 0 or restarted
    grew = 0
    for k in topology.sparse:  # floor(0.008 x (0.8 N - initial)) grown, floor(0.4 x that) pruned, in every layer
        grown = int(0.008 * (topology.sizes[k] * 0.8 - topology.initial_counts[k]))
        assert (topology.active(k) - before[k] == grown - int(0.4 * grown)).all(), k
        grew += grown
    assert grew > 0


@per_learner
def test_a_seed_trains_and_rewires_the_same_alone_and_inside_a_batch(learner, cpu_threads):
    overrides = dict(topology_every=5, review_window=2, review_threshold=10.0, growth_updates=30)  # review on early
    alone, batch = assert_seed_independent(lambda seeds: make(learner, seeds, **overrides))
    ne = batch.intervention
    assert ne.trigger.on[1] and ne.topologies["critic"].grown[1] > 0 and not ne.topologies["critic"].growing[1]
    for name in NETS:
        for a, b in zip(net(alone, name).module.layers, net(batch, name).module.layers, strict=True):
            assert (a.mask is None and b.mask is None) or torch.equal(a.mask[0], b.mask[1])
    assert torch.equal(alone.intervention.review_plan[0], ne.review_plan[1])


def test_the_public_configuration_keeps_a_seed_the_same_alone_and_inside_a_batch_and_resumes_exactly(cpu_threads):
    settings = dict(topology_every=5, review_active_below=1.0)  # the gate always open
    assert_seed_independent(lambda seeds: public(seeds, **settings))
    assert_round_trip(lambda seeds: public(seeds, topology_every=5))


@per_learner
def test_checkpoint_round_trip_continues_identically(learner):
    assert_round_trip(lambda seeds: make(learner, seeds, topology_every=5, review_window=2, review_threshold=10.0, growth_updates=30))


@per_learner
def test_diagnostics_count_connections_and_review_batches_since_the_last_evaluation(learner):
    agent = make(learner, (0, 1), topology_every=5, review_window=2, review_threshold=10.0, growth_updates=60)
    topologies = agent.intervention.topologies
    data = list(transitions(2, 120))
    for t in data[:50]:
        agent.observe(t)
    first = agent.diagnostics()
    totals = {name: (t.grown.clone(), t.pruned.clone()) for name, t in topologies.items()}
    for t in data[50:]:
        agent.observe(t)
    second = agent.diagnostics()
    for name, topology in topologies.items():
        assert torch.equal(first[f"{name}_grown"], totals[name][0]) and (first[f"{name}_grown"] > 0).all()
        assert torch.equal(second[f"{name}_grown"], topology.grown - totals[name][0])
        assert torch.equal(second[f"{name}_pruned"], topology.pruned - totals[name][1])
    assert ((second["review_batches"] > 0) & (second["review_batches"] < 1)).all()  # about half the batches once review is on
    assert {"actor_density", "critic_density", "review", "review_signal", "review_threshold", "critic_growing"} <= set(second)


@per_learner
def test_combines_with_layer_norm_and_crelu_through_the_learners_settings(learner):
    agent = make(learner, activation="crelu", actor_layer_norm=[0, 1], critic_layer_norm=[0], review=False, growth_updates=40)
    ne, critic = agent.intervention, net(agent, "critic")
    assert critic.module.layers[1].in_features == 2 * 32 and list(critic.module.norms) == ["0"]
    fill(agent)
    with torch.no_grad():  # seed 0, first twin: unit 5 of the second hidden layer outputs 0, so relu(x) and relu(-x) are both dormant
        critic.module.layers[1].weight[0, 0, :, 5] = 0.0
        critic.module.layers[1].bias[0, 0, :, 5] = 0.0
    agent.learner.updates = 10  # a quarter of the span: a large growth step
    before, batch = masks(agent), agent.learner.sample()
    hidden = ne.hidden_activations(batch)
    ne.topology_step(batch, ["critic"])
    dormant = dormant_units(hidden["critic"][1], ne.config.dormant_tau)
    assert hidden["critic"][1].shape[-1] == 64 and dormant[0, 0, [5, 37]].all()
    incoming = before["critic"][1][0, 0].view(64, 32)[:, 5]  # the second layer's connections into unit 5
    kept = rows(critic.module.layers[1].mask).bool()[0, 0].view(64, 32)[:, 5]
    assert incoming.any() and not (incoming & kept).any()  # all pruned: the unit's connections go first
    for t in transitions(2, 30, seed=2):
        agent.observe(t)
    assert torch.isfinite(agent.diagnostics()["critic_density"]).all()


def test_the_command_line_lists_ne_public(capsys):
    assert main(["list"]) == 0
    assert "ne_public" in capsys.readouterr().out
