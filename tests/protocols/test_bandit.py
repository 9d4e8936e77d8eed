import csv

import numpy as np
import pytest
from cyclic_bench.methods.bandit_baselines import EpsilonGreedy
from cyclic_bench.protocols.bandit import SIZES, BanditConfig, build, resolve, switch_schedule

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.errors import ConfigError
from cyclic_bench.run import train

INFO = {"regret", "regret_after_switch", "context_change", "oracle", "chosen", "uniform"}


def pool_for(seeds, **overrides):
    settings = resolve(BanditConfig(size="smoke", **overrides))
    pool = build(BanditConfig(size="smoke", **overrides)).tasks[0].make_pool(seeds)
    pool.reset()
    return pool, settings


def play(pool, steps, policy):
    """Step `pool` with `policy(pool) -> arms [N]`; returns {name: [steps, N]} of reward and every info."""
    out = {name: [] for name in [*INFO, "reward"]}
    for _ in range(steps):
        result = pool.step(policy(pool))
        out["reward"].append(result.reward)
        for name in INFO:
            out[name].append(result.info[name])
    return {name: np.array(values) for name, values in out.items()}


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_builds_a_one_task_discrete_stream_scored_on_its_training_window(size):
    stream = build(BanditConfig(size=size))
    (task,) = stream.tasks
    s = SIZES[size]
    assert stream.action_kind == "discrete" and task.action_dim == s["n_arms"] and task.obs_dim == 1
    assert stream.cycles == 1 and stream.eval_episodes == 0 and stream.warmup_steps == 0 and task.online_score is not None
    assert stream.total_steps == s["blocks"] * s["switch_every"] and stream.total_steps % stream.eval_every == 0


def test_full_is_the_public_config():
    s = SIZES["full"]
    assert (s["n_arms"], s["blocks"], s["switch_every"], s["switch_probability"]) == (5, 16, 500, 0.4)
    assert s["mean_range"] == [-5.0, 5.0] and s["std_range"] == [0.001, 2.0] and s["n_contexts"] >= s["blocks"]


def test_pool_shapes_and_it_never_ends():
    pool, settings = pool_for([1, 2, 3])
    assert pool.reset().shape == (3, 1)
    result = pool.step(np.array([0, 4, 2]))
    assert result.obs.shape == result.final_obs.shape == (3, 1) and result.reward.shape == (3,)
    assert set(result.info) == INFO and all(v.shape == (3,) for v in result.info.values())
    assert pool.means.shape == pool.stds.shape == (3, settings["n_contexts"], settings["n_arms"])
    assert ((pool.means >= -5) & (pool.means < 5)).all() and ((pool.stds >= 0.001) & (pool.stds < 2)).all()
    record = play(pool, 300, lambda p: np.zeros(3, int))
    assert np.isfinite(record["reward"]).all()
    assert not any(pool.step(np.zeros(3, int)).terminated.any() for _ in range(5))


def test_contexts_change_exactly_on_each_seeds_schedule():
    seeds, blocks = [3, 4, 5, 6], 12
    pool, s = pool_for(seeds, blocks=blocks, n_contexts=blocks)
    means_before = []
    record = {"context_change": []}
    for _ in range(blocks * s["switch_every"]):
        means_before.append(pool.arm_means().copy())
        record["context_change"].append(pool.step(np.zeros(len(seeds), int)).info["context_change"])
    changes, means = np.array(record["context_change"]), np.array(means_before)
    for i, seed in enumerate(seeds):
        expected = [b * s["switch_every"] for b in switch_schedule(seed, blocks, s["switch_probability"])]
        assert np.flatnonzero(changes[:, i]).tolist() == expected
        moved = [t for t in range(1, len(means)) if not np.array_equal(means[t, i], means[t - 1, i])]
        assert moved == expected  # the arms change at the scheduled steps and nowhere else
    assert len({tuple(switch_schedule(seed, blocks, 0.4)) for seed in seeds}) > 1  # seeds have their own schedules


def test_switch_probability_sets_the_share_of_blocks_that_change():
    share = np.mean([len(switch_schedule(seed, 21, 0.4)) / 20 for seed in range(500)])
    assert share == pytest.approx(0.4, abs=0.02)  # 10,000 draws: standard error 0.005
    assert switch_schedule(1, 21, 0.0) == [] and switch_schedule(1, 21, 1.0) == list(range(1, 21))


def test_the_oracle_has_zero_regret_and_scores_one():
    pool, s = pool_for([1, 2, 3], switch_probability=1.0)  # every block is a new context
    record = play(pool, 4 * s["switch_every"], lambda p: p.arm_means().argmax(axis=1))
    assert (record["regret"] == 0).all() and (record["regret_after_switch"] == 0).all()
    assert record["context_change"].sum(axis=0).tolist() == [3, 3, 3]
    task = build(BanditConfig(size="smoke")).tasks[0]
    assert np.allclose(task.online_score({name: values.mean(axis=0) for name, values in record.items()}), 1.0)


def test_a_uniform_policy_has_its_expected_regret_and_scores_zero():
    rng = np.random.default_rng(0)
    pool, s = pool_for(list(range(20)), blocks=40)
    record = play(pool, 40 * s["switch_every"], lambda p: rng.integers(0, s["n_arms"], size=p.n))
    expected = record["oracle"] - record["uniform"]  # E[regret | context] of a uniformly random arm
    standard_error = record["regret"].std() / np.sqrt(record["regret"].size)
    assert record["regret"].mean() == pytest.approx(expected.mean(), abs=4 * standard_error)
    task = build(BanditConfig(size="smoke")).tasks[0]
    scores = task.online_score({name: values.mean(axis=0) for name, values in record.items()})
    assert abs(scores.mean()) < 0.05
    assert record["reward"].mean() == pytest.approx(record["chosen"].mean(), abs=0.05)  # the noise has mean 0


def test_regret_after_switch_counts_the_first_steps_of_a_new_context_only():
    pool, s = pool_for([8], switch_probability=1.0)
    record = play(pool, 3 * s["switch_every"], lambda p: np.array([0]))
    after = s["after_switch_steps"]
    window = np.zeros(3 * s["switch_every"], bool)
    for start in (s["switch_every"], 2 * s["switch_every"]):  # the first block is not a switch
        window[start : start + after] = True
    assert np.array_equal(record["regret_after_switch"][:, 0], np.where(window, record["regret"][:, 0], 0.0))


def test_a_seed_plays_the_same_alone_and_inside_a_batch():
    alone, _ = pool_for([7])
    batch, _ = pool_for([3, 7, 9])
    arms = np.random.default_rng(1).integers(0, 5, size=(120, 3))
    for step in range(120):
        a = alone.step(arms[step, 1:2])
        b = batch.step(arms[step])
        assert a.reward[0] == b.reward[1] and all(a.info[k][0] == b.info[k][1] for k in INFO)


def test_stepping_some_environments_leaves_the_others_untouched():
    pool, _ = pool_for([1, 2])
    result = pool.step(np.array([1, 1]), which=np.array([True, False]))
    assert pool.t.tolist() == [1, 0] and result.reward[1] == 0 and all(v[1] == 0 for v in result.info.values())


def test_snapshots_are_exact():
    pool, s = pool_for([11, 12])
    play(pool, 37, lambda p: np.array([2, 3]))
    copy, _ = pool_for([11, 12])
    copy.set_state(pool.get_state())
    arms = np.random.default_rng(2).integers(0, 5, size=(3 * s["switch_every"], 2))
    for step in range(len(arms)):
        a, b = pool.step(arms[step]), copy.step(arms[step])
        assert np.array_equal(a.reward, b.reward) and all(np.array_equal(a.info[k], b.info[k]) for k in INFO)
    other, _ = pool_for([13, 14])
    with pytest.raises(ConfigError, match="other environment seeds"):
        other.set_state(pool.get_state())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_arms=1), "n_arms=1 is not allowed: a bandit needs at least 2 arms"),
        (dict(switch_probability=1.5), r"switch_probability=1.5 is not allowed"),
        (dict(after_switch_steps=0), "after_switch_steps=0 is not allowed"),
        (dict(blocks=0), "blocks=0 is not allowed"),
        (dict(std_range=[0.0, 1.0]), "standard deviations must be > 0"),
        (dict(mean_range=[1.0, 1.0]), r"mean_range=\[1.0, 1.0\] is not allowed"),
        (dict(size="huge"), "protocol.size='huge' is not a size of bandit"),
        (dict(eval_every=7), "eval_every=7 is not allowed"),
    ],
)
def test_bad_values_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(BanditConfig(**{"size": "smoke", **overrides}))


def test_td3_is_refused_on_the_bandit():
    with pytest.raises(ConfigError, match="method='td3' cannot play bandit-smoke: it has discrete actions"):
        plan_run(compose_config(["method=td3", "protocol=bandit", "protocol.size=smoke"]))


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


SMOKE_RUN = ["method=epsilon_greedy", "protocol=bandit", "protocol.size=smoke", "seeds=2", "progress=false", "device=cpu"]


def test_a_run_writes_online_quantities_and_scores_each_window(tmp_path):
    summary = train(compose_config(SMOKE_RUN), tmp_path)
    online, evaluations = read(tmp_path / "online.csv"), read(tmp_path / "evaluations.csv")
    assert {r["name"] for r in online} == INFO | {"reward"}
    assert sorted({int(r["step"]) for r in evaluations}) == [25, 50, 75, 100] and len(evaluations) == 8
    for row in evaluations:
        means = {r["name"]: float(r["value"]) for r in online if r["seed"] == row["seed"] and r["step"] == row["step"]}
        assert float(row["score"]) == pytest.approx((means["chosen"] - means["uniform"]) / (means["oracle"] - means["uniform"]))
        assert float(row["return"]) == pytest.approx(means["reward"])
        assert means["regret"] == pytest.approx(means["oracle"] - means["chosen"])
    assert set(summary["final_scores"]) == {"bandit"} and summary["failed_seeds"] == []


def test_a_killed_run_resumes_to_the_same_rows(tmp_path, monkeypatch):
    train(compose_config(SMOKE_RUN), tmp_path / "whole")
    calls = {"n": 0}
    original = EpsilonGreedy.observe

    def dies_at_step_60(self, t):
        calls["n"] += 1
        if calls["n"] == 60:
            raise KeyboardInterrupt  # the last checkpoint is the one at step 50
        original(self, t)

    monkeypatch.setattr(EpsilonGreedy, "observe", dies_at_step_60)
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(SMOKE_RUN), tmp_path / "killed")
    monkeypatch.setattr(EpsilonGreedy, "observe", original)
    train(compose_config(SMOKE_RUN), tmp_path / "killed")
    for table in ("online.csv", "evaluations.csv", "diagnostics.csv"):
        assert read(tmp_path / "killed" / table) == read(tmp_path / "whole" / table), table
