"""Cyclic DMC: real dm_control tasks, flattening order, adapters, switch points, action repeat, snapshots, errors, TD3.

Only cheap domains are simulated here (walker, cheetah, hopper, finger, reacher, quadruped); dog's names are checked
without loading it.
"""

import math

import numpy as np
import pytest
import torch
from cyclic_bench.protocols.cyclic_dmc import SIZES, STREAMS, CyclicDMCConfig, build
from helpers import SMALL, Recorder, run_killed_at, spec_for

from cyclic_bench.cli import compose_config
from cyclic_bench.dmc import DMCPool, describe, load, split_task_name
from cyclic_bench.errors import ConfigError
from cyclic_bench.results import RunDir
from cyclic_bench.run import train
from cyclic_bench.stream import ActionAdapter, ObservationAdapter
from cyclic_bench.trainer import Engine, EngineOptions

CROSS_BODY_SIZES = {"cheetah-run": (17, 6), "walker-walk": (24, 6), "hopper-hop": (15, 4), "finger-spin": (9, 2)}


def small_stream(**overrides):
    """The cross-body stream, tiny: 8-step visits, 4-step agent episodes (8 control steps, action repeat 2)."""
    settings = dict(size="smoke", stream="cross_body", steps_per_task=8, eval_every=4, warmup_steps=0, episode_length=8, action_repeat=2)
    return build(CyclicDMCConfig(**{**settings, **overrides}))


def test_every_stream_names_real_dm_control_tasks():
    for names in STREAMS.values():
        for name in names:
            split_task_name(name)  # raises for a domain or task dm_control lacks
    stream = build(CyclicDMCConfig(size="smoke", stream="cross_body"))
    assert {t.name: (t.obs_dim, t.action_dim) for t in stream.tasks} == CROSS_BODY_SIZES
    assert (stream.obs_dim, stream.action_dim) == (24, 6)
    for task in stream.tasks:
        assert task.normalize(task.random_return) == 0 and task.normalize(50.0) == 1 and "maximum return" in task.reference_source


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_builds_a_valid_stream(size):
    stream = build(CyclicDMCConfig(size=size, stream="walker"))
    assert [t.name for t in stream.tasks] == ["walker-stand", "walker-walk", "walker-run"]
    assert stream.steps_per_task % stream.eval_every == 0 and stream.warmup_steps < stream.steps_per_task
    assert stream.name == f"cyclic_dmc-walker-{size}"


def test_observations_are_flattened_in_the_declared_key_order():
    spec = describe("walker", "walk")
    assert spec.observation_keys == ("orientations", "height", "velocity") and spec.observation_sizes == (14, 1, 9)
    pool = DMCPool("walker", "walk", [5])
    raw = load("walker", "walk", seed=5).reset().observation
    expected = np.concatenate([raw["orientations"], [raw["height"]], raw["velocity"]]).astype(np.float32)
    obs = pool.reset()
    assert obs.dtype == np.float32 and np.array_equal(obs[0], expected)


def test_environments_compile_a_tiny_skybox_and_leave_the_suite_unchanged():
    assert load("walker", "walk", seed=0).physics.model.ntexdata < 1_000_000  # the suite's skybox alone is 11.5 MB
    from dm_control.suite import common  # imported by load()

    assert b'width="800" height="800"' in common.ASSETS["./common/skybox.xml"]


def test_cross_body_shapes_through_the_adapters():
    stream = small_stream(task_aware=True)
    adapt = ObservationAdapter(stream)
    assert stream.obs_dim == 24 + 4
    for j, task in enumerate(stream.tasks):
        pool = task.make_pool([1, 2])
        obs = pool.reset()
        assert obs.shape == (2, task.obs_dim)
        adapted = adapt(obs, j)
        assert adapted.shape == (2, 28)
        assert np.array_equal(adapted[:, : task.obs_dim], obs) and not adapted[:, task.obs_dim : 24].any()
        assert adapted[:, 24:].tolist() == [[float(k == j) for k in range(4)]] * 2
        actions = ActionAdapter(task)(np.full((2, stream.action_dim), 0.5, np.float32))
        assert actions.shape == (2, task.action_dim)
        assert pool.step(actions).obs.shape == (2, task.obs_dim)


def test_actions_are_rescaled_to_the_task_bounds():
    task = build(CyclicDMCConfig(size="smoke", tasks=["quadruped-walk"])).tasks[0]
    assert max(task.action_high) == pytest.approx(1.1) and min(task.action_low) == pytest.approx(-1.0)
    mapped = ActionAdapter(task)(np.ones((1, 12), np.float32))
    assert np.allclose(mapped[0], task.action_high)


def test_action_repeat_holds_the_action_and_sums_the_rewards():
    once, twice = (
        DMCPool("cheetah", "run", [4], action_repeat=1, episode_length=6),
        DMCPool("cheetah", "run", [4], action_repeat=2, episode_length=6),
    )
    once.reset(), twice.reset()
    rng = np.random.default_rng(0)
    for step in range(3):
        action = rng.uniform(-1, 1, (1, 6))
        first, second, held = once.step(action), once.step(action), twice.step(action)
        assert np.array_equal(held.final_obs, second.final_obs)
        assert held.reward[0] == pytest.approx(first.reward[0] + second.reward[0], rel=1e-6)
        assert bool(held.truncated[0]) == (step == 2) == bool(second.truncated[0])  # 6 control steps = 3 agent steps
        assert not held.terminated.any()


@pytest.mark.parametrize("domain,task", [("walker", "walk"), ("reacher", "easy")])  # reacher re-draws its target in the model
def test_pool_snapshots_are_exact(domain, task):
    pool, copy = (
        DMCPool(domain, task, [3, 4], action_repeat=2, episode_length=40),
        DMCPool(domain, task, [9, 8], action_repeat=2, episode_length=40),
    )
    pool.reset(), copy.reset()
    rng = np.random.default_rng(1)
    for _ in range(7):
        pool.step(rng.uniform(-1, 1, (2, pool.spec.action_dim)))
    copy.set_state(pool.get_state())
    for _ in range(30):  # crosses the 20-step episode end, so the reset's random state is exercised too
        action = rng.uniform(-1, 1, (2, pool.spec.action_dim))
        a, b = pool.step(action), copy.step(action)
        for field in ("obs", "final_obs", "reward", "truncated"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field


class StateDependent(Recorder):
    """Acts with a function of the observation, so any difference in the environments shows in the transitions."""

    def act(self, obs, explore):
        super().act(obs, explore)
        return torch.tanh(obs[..., : self.spec.action_dim] * 3.0)


def run_engine(run_dir, stream, seeds=(0, 1)):
    method = StateDependent(None, spec_for(stream, seeds))
    Engine(stream, method, RunDir(run_dir), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()
    return method


def test_switch_points_are_exact_and_episodes_truncate_at_the_repeat_scaled_limit(tmp_path):
    stream = small_stream(cycles=2)
    method = run_engine(tmp_path, stream)
    assert len(method.transitions) == stream.total_steps == 8 * 4 * 2
    assert method.task_starts == [(8 * i, i % 4) for i in range(8)]
    for i, t in enumerate(method.transitions):
        task = stream.tasks[stream.position(i)[1]]
        assert t.obs.shape == (2, 1, 24) and not t.next_obs[..., task.obs_dim :].any()
        assert not t.terminated.any()
        assert bool(t.truncated.all()) == (i % 4 == 3)  # 8 control steps / action repeat 2 = 4 agent steps


def test_a_resumed_run_continues_bit_for_bit(tmp_path, monkeypatch):
    stream = small_stream(cycles=1, steps_per_task=12, eval_every=6, episode_length=10)  # checkpoints fall mid-episode
    full = run_engine(tmp_path / "full", stream)

    run_killed_at(9, lambda: run_engine(tmp_path / "resumed", stream), monkeypatch)
    resumed = run_engine(tmp_path / "resumed", stream)  # restarts from the step-6 checkpoint, mid-episode on cheetah
    assert len(resumed.transitions) == len(full.transitions) - 6
    for a, b in zip(full.transitions[6:], resumed.transitions, strict=True):
        for field in ("obs", "action", "reward", "next_obs", "truncated"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(tasks=["walker-fly"]), "task 'walker-fly': 'fly' is not a dm_control walker task; allowed: stand, walk, run"),
        (dict(tasks=["walk-walker"]), "task 'walk-walker': domain 'walk' is not a dm_control domain; allowed: acrobot, "),
        (dict(tasks=["walker_walk"]), "task 'walker_walk' is not of the form domain-task"),
        (dict(stream="humanoid"), "protocol.stream='humanoid' is not a stream of cyclic_dmc; allowed: walker, quadruped, dog, cross_body"),
        (dict(size="demo"), "protocol.size='demo' is not a size of cyclic_dmc; allowed: smoke, lite, full"),
        (dict(action_repeat=3), "action_repeat=3 is not allowed: it must divide episode_length=1000"),
        (dict(action_repeat=0), "action_repeat=0 is not allowed"),
    ],
)
def test_bad_values_are_refused_on_one_line(settings, message):
    with pytest.raises(ConfigError) as error:
        build(CyclicDMCConfig(**settings))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_td3_runs_the_smoke_size(tmp_path):
    small = [f"method.{key}={value}".replace(" ", "") for key, value in SMALL.items()]
    config = compose_config(
        ["method=td3", "protocol=cyclic_dmc", "protocol.size=smoke", "protocol.stream=cross_body", "seeds=2", "progress=false", *small]
    )
    summary = train(config, tmp_path)
    assert summary["stream"] == "cyclic_dmc-cross_body-smoke" and summary["failed_seeds"] == []
    assert set(summary["final_scores"]) == set(CROSS_BODY_SIZES)
    # returns lie in [0, 50] over 50-step episodes: scores in [-random / (50 - random), 1], random below 5 on these tasks
    assert all(math.isfinite(v) and -0.12 <= v <= 1 for scores in summary["final_scores"].values() for v in scores.values())
