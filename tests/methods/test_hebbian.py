import csv
import io
import math

import pytest
import torch
from cyclic_bench.methods.hebbian import RULES, HebbianConfig, HebbianES
from helpers import assert_same_rows, run_killed_at, spec_for, toy_stream

from cyclic_bench.errors import ConfigError
from cyclic_bench.events import zero_fraction
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import get_method
from cyclic_bench.results import RunDir
from cyclic_bench.rng import SeedRNG
from cyclic_bench.trainer import Engine, EngineOptions


def make(seed_ids=(0,), obs_dim=3, action_dim=2, cls=HebbianES, **overrides):
    spec = MethodSpec(obs_dim, action_dim, "continuous", tuple(seed_ids), 1, 10_000, torch.device("cpu"))
    settings = dict(population=4, hidden=[5, 4], generation_steps=7)
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


def test_a_generation_is_a_window_of_steps_and_fitness_is_the_return_per_episode_played():
    agent = make(population=2, generation_steps=5)
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    obs, genome = torch.zeros(1, 2, 3), agent.genomes.clone()
    # member 0: episodes end at steps 2 and 5 (two episodes in the window); member 1: one episode, still running at step 5
    ends = {2: [True, False], 5: [True, False]}
    for t in range(1, 6):
        before = [w.clone() for w in agent.plastic]
        step(agent, obs, torch.full((1, 2), float(t)), terminated=torch.tensor([ends.get(t, [False, False])]))
        assert agent.es.generation.item() == (1 if t == 5 else 0)
    assert agent.last_returns.tolist() == [[15 / 2, 15.0]] and agent.last_episodes.tolist() == [[2.0, 1.0]]
    assert not torch.equal(agent.genomes, genome)
    assert agent.episodes.tolist() == [[3, 2]]  # member 0 drew at steps 0, 2, 5; member 1 at 0 and at the new generation
    assert not torch.equal(agent.plastic[0][0, 1], before[0][0, 1])  # its running episode goes on with fresh weights
    assert agent.scored_steps.item() == agent.steps == 10
    for _ in range(5):  # the next window: both members' episodes run through it
        step(agent, obs, torch.ones(1, 2))
    assert agent.es.generation.item() == 2 and agent.last_returns.tolist() == [[5.0, 5.0]]


def test_summed_fitness_is_the_windows_reward():
    agent = make(population=2, generation_steps=4, fitness="summed")
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    for t in range(4):
        step(agent, torch.zeros(1, 2, 3), torch.tensor([[1.0, 2.0]]), terminated=torch.tensor([[t == 1, False]]))
    assert agent.last_returns.tolist() == [[4.0, 8.0]] and agent.last_episodes.tolist() == [[2.0, 1.0]]


def test_a_window_cut_short_by_the_end_of_the_stream_closes_with_the_steps_it_has():
    spec = MethodSpec(3, 2, "continuous", (0,), 1, 2 * 7, torch.device("cpu"))  # 7 iterations of 2 members
    agent = HebbianES(HebbianConfig(population=2, hidden=[4], generation_steps=5), spec)
    agent.on_episode_start(torch.ones(1, 2, dtype=torch.bool), explore=True)
    for _ in range(7):
        step(agent, torch.zeros(1, 2, 3), torch.ones(1, 2))
    assert agent.es.generation.item() == 2 and agent.last_returns.tolist() == [[2.0, 2.0]]
    assert agent.diagnostics()["fitness_step_fraction"].item() == 1.0


def run_toy(tmp_path, visible=True, population=4, seeds=(0, 1), generation_steps=7, cls=HebbianES, **settings):
    """The toy stream: 7-step episodes (a position beyond 5 terminates), 28 steps per member per visit, 2 tasks x 2 cycles."""
    stream = toy_stream(steps_per_task=28 * population, eval_every=14 * population, cycles=2, boundaries_visible=visible)
    config = cls.Config(population=population, hidden=[8, 8], generation_steps=generation_steps, **settings)
    method = cls(config, spec_for(stream, seeds))
    Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()
    return stream, method


@pytest.mark.parametrize("cls_name", ["hebbian", "static_es"])
def test_every_charged_step_scores_a_member_and_generations_are_the_budget_over_p_times_l(tmp_path, cls_name):
    """Windows of 10 steps per member against visits of 28: windows straddle task switches and go on across them."""
    stream, method = run_toy(tmp_path, generation_steps=10, cls=get_method(cls_name)[0])
    P, L = 4, 10
    assert method.steps == stream.total_steps == 112 * P  # every member's every step counted, nothing else
    assert method.es.generation.tolist() == [math.ceil(stream.total_steps / (P * L))] * 2  # 11 windows and the cut last one
    assert method.diagnostics()["fitness_step_fraction"].tolist() == [1.0, 1.0]
    with open(tmp_path / "diagnostics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] in ("generations", "fitness_step_fraction") and r["seed"] == "0"]
    at = {(int(r["step"]), r["name"]): float(r["value"]) for r in rows}
    assert at[(14 * P, "generations")] == 1 and at[(14 * P, "fitness_step_fraction")] == pytest.approx(10 / 14)
    assert at[(28 * P, "generations")] == 2 and at[(28 * P, "fitness_step_fraction")] == pytest.approx(20 / 28)
    assert at[(42 * P, "generations")] == 4  # the third window spanned the switch at 28 and closed at 30, in the next task
    assert at[(stream.total_steps, "fitness_step_fraction")] == 1.0 >= 0.95


def test_aligned_windows_score_each_episode_once_and_hidden_boundaries_change_nothing(tmp_path):
    _, visible = run_toy(tmp_path / "visible", visible=True)
    _, hidden = run_toy(tmp_path / "hidden", visible=False)
    assert visible.es.generation.tolist() == [16, 16] and torch.equal(visible.es.centre, hidden.es.centre)
    assert visible.last_episodes.eq(1).all()  # windows of 7 steps over 7-step episodes: one episode each, its return
    with open(tmp_path / "visible" / "evaluations.csv") as a, open(tmp_path / "hidden" / "evaluations.csv") as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b))


def test_a_killed_run_resumes_mid_window_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    run_toy(tmp_path / "full", generation_steps=10)

    # one step after an evaluation (and checkpoint), five steps into a window
    run_killed_at(4 * 15, lambda: run_toy(tmp_path / "killed", generation_steps=10), monkeypatch)
    run_toy(tmp_path / "killed", generation_steps=10)
    assert_same_rows(tmp_path / "killed", tmp_path / "full")


def test_a_seed_plays_the_same_alone_and_inside_a_batch():
    """Seeds' episodes end at different steps, so their members play different numbers of episodes per window."""
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
    assert batch.es.generation.tolist() == [60 // 7] * 3 and alone.es.generation.item() == 60 // 7
    torch.testing.assert_close(batch.es.centre[1], alone.es.centre[0], rtol=1e-5, atol=1e-6)
    for w, v in zip(batch.plastic, alone.plastic, strict=True):
        torch.testing.assert_close(w[1], v[0], rtol=1e-5, atol=1e-6)
    mine, theirs = alone.diagnostics(), batch.diagnostics()
    for name, value in mine.items():
        torch.testing.assert_close(value[0], theirs[name][1], rtol=1e-5, atol=1e-6, equal_nan=True, msg=name)


@pytest.mark.parametrize("cls_name", ["hebbian", "static_es"])
def test_a_checkpoint_loses_nothing(cls_name):
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
    config = HebbianConfig(population=20, hidden=[8, 8], generation_steps=7, sigma=0.5, sigma_decay=1.0)
    method = HebbianES(config, spec_for(stream, (0, 1)))
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
        ({"generation_steps": 0}, "generation_steps=0"),
        ({"fitness": "best"}, "fitness='best'"),
    ],
)
def test_bad_settings_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=f"^method.{message} is not allowed: "):
        make(**overrides)
