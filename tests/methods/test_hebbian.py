import csv
import io

import pytest
import torch
from cyclic_bench.methods.hebbian import RULES, HebbianConfig, HebbianES
from helpers import spec_for, toy_stream

from cyclic_bench.errors import ConfigError
from cyclic_bench.events import zero_fraction
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.results import RunDir
from cyclic_bench.rng import SeedRNG
from cyclic_bench.trainer import Engine, EngineOptions


def make(seed_ids=(0,), obs_dim=3, action_dim=2, cls=HebbianES, **overrides):
    spec = MethodSpec(obs_dim, action_dim, "continuous", tuple(seed_ids), 1, 10_000, torch.device("cpu"))
    settings = dict(population=4, hidden=[5, 4])
    settings.update(overrides)
    return cls(cls.Config(**settings), spec)


def step(agent, obs, reward, terminated=None, truncated=None):
    """One engine iteration: act, then observe; episodes start again where they ended."""
    S, P = reward.shape
    action = agent.act(obs, explore=True)
    none = torch.zeros(S, P, dtype=torch.bool)
    terminated = none if terminated is None else terminated
    truncated = none if truncated is None else truncated
    agent.observe(Transition(obs, action, reward, obs, terminated, truncated, learn=True))
    if (terminated | truncated).any():
        agent.on_episode_start(terminated | truncated, explore=True)
    return action


def hand_update(w, coefficients, terms, pre, post):
    """The rule written synapse by synapse: w[j][i] += eta * (A pre_i post_j + B pre_i + C post_j + D)."""
    new = [row[:] for row in w]
    for j in range(len(w)):
        for i in range(len(w[0])):
            c = {name: coefficients[k][j][i] for k, name in enumerate(terms)}
            dw = c["A"] * pre[i] * post[j] + c.get("B", 0) * pre[i] + c.get("C", 0) * post[j] + c.get("D", 0)
            new[j][i] = w[j][i] + c.get("eta", 1.0) * dw
    return new


@pytest.mark.parametrize("rule", list(RULES))
def test_the_rule_updates_every_synapse_as_computed_by_hand(rule):
    agent = make(obs_dim=2, action_dim=1, hidden=[3], population=2, rule=rule)
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    before = [w[0, 1].tolist() for w in agent.plastic]
    obs = torch.tensor([[[0.3, -0.7], [0.5, 0.9]]])
    action = agent.act(obs, explore=True)
    hidden = torch.tanh(torch.tensor(before[0]) @ obs[0, 1])
    torch.testing.assert_close(action[0, 1], torch.tanh(torch.tensor(before[1]) @ hidden))
    terms = RULES[rule]
    for layer, (w, pre, post) in enumerate(zip(before, [obs[0, 1], hidden], [hidden, action[0, 1]], strict=True)):
        coefficients = agent.per_layer(agent.genomes)[layer][0, 1].tolist()
        expected = hand_update(w, coefficients, terms, pre.tolist(), post.tolist())
        torch.testing.assert_close(agent.plastic[layer][0, 1], torch.tensor(expected))


def test_weight_normalisation_divides_each_layer_by_its_largest_magnitude():
    agent = make(normalise_weights=True)
    agent.on_episode_start(torch.ones(1, 4, dtype=torch.bool), explore=True)
    agent.act(torch.randn(1, 4, 3), explore=True)
    for w in agent.plastic:
        torch.testing.assert_close(w.abs().amax(dim=(-2, -1)), torch.ones(1, 4))


def test_weights_start_uniform_every_episode_and_members_draw_their_own():
    agent = make(population=6, hidden=[64, 64], init_weight=0.1)
    agent.on_episode_start(torch.ones(1, 6, dtype=torch.bool), explore=True)
    first = [w.clone() for w in agent.plastic]
    assert all(w.abs().max() <= 0.1 and w.std() > 0.05 for w in first)
    assert not torch.equal(first[1][0, 0], first[1][0, 1])
    agent.on_episode_start(torch.tensor([[True, False, False, False, False, False]]), explore=True)
    assert not torch.equal(agent.plastic[1][0, 0], first[1][0, 0]) and torch.equal(agent.plastic[1][0, 1:], first[1][0, 1:])


def test_members_play_antithetic_genomes_and_evaluation_plays_the_centre():
    agent = make()
    centre = agent.es.centre[:, None]
    torch.testing.assert_close((agent.genomes[:, 0::2] + agent.genomes[:, 1::2]) / 2, centre.expand(1, 2, -1))
    agent.on_episode_start(torch.ones(1, 3, dtype=torch.bool), explore=False)
    start = [w.clone() for w in agent.eval_weights]
    obs = torch.randn(1, 3, 3)
    agent.act(obs, explore=False)
    post, pre = torch.tanh(torch.einsum("seoi,sei->seo", start[0], obs))[..., :, None], obs[..., None, :]
    A, B, C, D, eta = agent.per_layer(centre)[0].unbind(2)
    torch.testing.assert_close(agent.eval_weights[0] - start[0], eta * (A * post * pre + B * pre + C * post + D))


def test_fitness_is_the_first_complete_episode_started_with_the_genome_and_early_finishers_wait():
    agent = make(population=2)
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    obs, genome = torch.zeros(1, 2, 3), agent.genomes.clone()
    # member 0: scores 1..2, replays 3..4 and 5..7 unscored, scores 8..9; member 1: scores 1..5 and 6..8
    ends = {2: [True, False], 4: [True, False], 5: [False, True], 7: [True, False], 8: [False, True], 9: [True, False]}
    for t in range(1, 11):
        step(agent, obs, torch.full((1, 2), float(t)), terminated=torch.tensor([ends.get(t, [False, False])]))
        if t == 5:  # every member has a fitness; the generation closes at the next step
            assert agent.es.generation.item() == 0 and agent.fitness.tolist() == [[1 + 2, 1 + 2 + 3 + 4 + 5]]
        if t == 6:  # member 1 started its episode with the new genome; member 0 was one step into its episode
            assert agent.es.generation.item() == 1 and not torch.equal(agent.genomes, genome)
            assert agent.last_returns.tolist() == [[3.0, 15.0]] and agent.counts.tolist() == [[False, True]]
        if t == 7:
            assert not agent.scored[0, 0]  # that episode (5..7) began with the old genome: not counted
    assert agent.es.generation.item() == 2 and agent.last_returns.tolist() == [[8 + 9, 6 + 7 + 8]]
    assert agent.used_steps.item() == (2 + 5) + (2 + 3) and agent.steps.item() == 20


def test_a_task_switch_drops_cut_episodes_and_discards_an_unfinished_generation():
    agent = make(population=2)
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    obs = torch.zeros(1, 2, 3)
    step(agent, obs, torch.ones(1, 2), terminated=torch.tensor([[True, False]]))
    step(agent, obs, torch.ones(1, 2), truncated=torch.tensor([[True, True]]))  # the visit's last step
    agent.on_task_start(1)
    assert agent.es.generation.item() == 0 and not agent.scored.any()
    step(agent, obs, torch.ones(1, 2), terminated=torch.tensor([[True, True]]))
    step(agent, obs, torch.ones(1, 2))
    assert agent.es.generation.item() == 1 and agent.last_returns.tolist() == [[1.0, 1.0]]


def test_a_generation_completed_by_terminations_survives_the_switch():
    agent = make(population=2)
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    step(agent, torch.zeros(1, 2, 3), torch.ones(1, 2), terminated=torch.tensor([[True, True]]))  # on the visit's last step
    agent.on_task_start(1)
    assert agent.es.generation.item() == 1


def run_toy(tmp_path, visible=True, population=4, seeds=(0, 1)):
    """The toy stream: 7-step episodes that never terminate, 28 steps per member per visit, 2 tasks x 2 cycles."""
    stream = toy_stream(steps_per_task=28 * population, eval_every=14 * population, cycles=2, boundaries_visible=visible)
    method = HebbianES(HebbianConfig(population=population, hidden=[8, 8]), spec_for(stream, seeds))
    Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()
    return stream, method


@pytest.mark.parametrize("visible, generations", [(True, 3 * 4), (False, 4 * 4 - 1)])
def test_budget_accounting_is_exact_on_the_engine(tmp_path, visible, generations):
    stream, method = run_toy(tmp_path, visible)
    assert method.steps.tolist() == [stream.total_steps] * 2  # every member's every step counted, nothing else
    # Visible: each visit's 4th episode ends on its last step, where a time limit and a switch look alike: dropped.
    # Hidden: it counts, and closes at the next visit's first step; the stream's very last one never closes.
    assert method.es.generation.tolist() == [generations] * 2
    assert method.used_steps.tolist() == [generations * 7 * 4] * 2
    assert torch.equal(method.diagnostics()["fitness_step_fraction"], method.used_steps / stream.total_steps)


def test_a_seed_plays_the_same_alone_and_inside_a_batch():
    """Seeds' episodes end at different steps, so they close generations at different times."""
    batch, alone = make((4, 5, 6)), make((5,))
    assert torch.equal(batch.es.centre[1], alone.es.centre[0])
    g = torch.Generator().manual_seed(0)
    batch.on_episode_start(torch.ones(3, 4, dtype=torch.bool), explore=True)
    alone.on_episode_start(torch.ones(1, 4, dtype=torch.bool), explore=True)
    for _ in range(60):
        obs, reward = torch.randn(3, 4, 3, generator=g), torch.randn(3, 4, generator=g)
        done = torch.rand(3, 4, generator=g) < 0.3
        a = step(batch, obs, reward, terminated=done)
        b = step(alone, obs[1:2], reward[1:2], terminated=done[1:2])
        torch.testing.assert_close(a[1], b[0], rtol=1e-5, atol=1e-6)
    assert alone.es.generation.item() >= 3 and batch.es.generation.tolist() != [alone.es.generation.item()] * 3
    torch.testing.assert_close(batch.es.centre[1], alone.es.centre[0], rtol=1e-5, atol=1e-6)
    for w, v in zip(batch.plastic, alone.plastic, strict=True):
        torch.testing.assert_close(w[1], v[0], rtol=1e-5, atol=1e-6)
    mine, theirs = alone.diagnostics(), batch.diagnostics()
    for name, value in mine.items():
        torch.testing.assert_close(value[0], theirs[name][1], rtol=1e-5, atol=1e-6, equal_nan=True, msg=name)


@pytest.mark.parametrize("cls_name", ["hebbian", "static_es"])
def test_a_checkpoint_loses_nothing(cls_name):
    from cyclic_bench.registry import get_method

    cls = get_method(cls_name)[0]
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, generator=g), torch.rand(2, 4, generator=g) < 0.3) for _ in range(50)]
    first = make((0, 1), cls=cls)
    first.on_episode_start(torch.ones(2, 4, dtype=torch.bool), explore=True)
    for obs, reward, done in data[:30]:
        step(first, obs, reward, terminated=done)
    zero_fraction(first.policy_weights(), 1 / 3, SeedRNG([0, 1], stream=9))  # damage is part of the state too
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make((0, 1), cls=cls)
    second.load_state_dict(torch.load(buffer, weights_only=False))
    for obs, reward, done in data[30:]:
        assert torch.equal(step(first, obs, reward, terminated=done), step(second, obs, reward, terminated=done))
    assert first.es.generation.min() >= 2
    for a, b in zip(first.policy_weights(), second.policy_weights(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(first.genomes, second.genomes) and torch.equal(first.es.centre, second.es.centre)
    mine, theirs = first.diagnostics(), second.diagnostics()
    for name, value in mine.items():
        torch.testing.assert_close(value, theirs[name], rtol=0, atol=0, equal_nan=True, msg=name)


def test_zeroing_weights_hits_the_live_weights_and_plasticity_regrows_them():
    agent = make(population=2, hidden=[16, 16])
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    zeroed = zero_fraction(agent.policy_weights(), 1 / 3, SeedRNG([0], stream=9))
    n = sum(w[0].numel() for w in agent.plastic)
    assert zeroed.item() == round(n / 3) == sum(int((w == 0).sum()) for w in agent.plastic)
    agent.act(torch.randn(1, 2, 3), explore=True)
    assert sum(int((w == 0).sum()) for w in agent.plastic) == 0  # the D term (and the others) move every synapse


def test_hebbian_es_learns_the_toy_task_for_every_seed(tmp_path):
    """Reward = action[0] - |position|: evolution must find a rule whose random network pushes action[0] up."""
    stream = toy_stream(tasks=toy_stream().tasks[:1], steps_per_task=20 * 7 * 40, eval_every=20 * 7 * 40, cycles=1, eval_episodes=20)
    method = HebbianES(HebbianConfig(population=20, hidden=[8, 8], sigma=0.5, sigma_decay=1.0), spec_for(stream, (0, 1)))
    Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()
    with open(tmp_path / "evaluations.csv") as f:
        returns = {(row["seed"], int(row["step"])): float(row["return"]) for row in csv.DictReader(f)}
    for seed in ("0", "1"):  # a random network scores about -3.5 (its offset costs 7 |offset|); pushing right earns up to +7
        assert returns[(seed, stream.total_steps)] > returns[(seed, 0)] + 2.0, returns


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rule": "XYZ"}, "rule='XYZ'"),
        ({"population": 3}, "population=3"),
        ({"population": 0}, "population=0"),
        ({"sigma_decay": 1.5}, "sigma_decay=1.5"),
        ({"init_weight": -1.0}, "init_weight=-1.0"),
        ({"probe_steps": 0}, "probe_steps=0"),
    ],
)
def test_bad_settings_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make(**overrides)
