import gymnasium as gym
import numpy as np
import pytest
from cyclic_bench.protocols.cyclic_mujoco import SIZES, TASKS, CyclicMujocoConfig, build

from cyclic_bench.errors import ConfigError


@pytest.mark.parametrize("name", list(TASKS))
def test_declared_sizes_match_the_real_environment(name):
    spec = TASKS[name]
    env = gym.make(spec.env_id, **dict(spec.kwargs))
    assert env.observation_space.shape == (spec.obs_dim,)
    assert env.action_space.shape == (spec.action_dim,)
    assert spec.reference_return > 0 and spec.reference_source


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_builds_a_valid_stream(size):
    stream = build(CyclicMujocoConfig(size=size))
    assert stream.steps_per_task % stream.eval_every == 0  # an evaluation closes every task visit
    assert stream.warmup_steps < stream.steps_per_task
    assert stream.obs_dim == max(t.obs_dim for t in stream.tasks)


def test_lite_and_full_budgets():
    lite, full = build(CyclicMujocoConfig(size="lite")), build(CyclicMujocoConfig(size="full"))
    assert [t.name for t in lite.tasks] == ["HalfCheetah", "Hopper", "Walker2d", "Ant"]
    assert 100_000 <= lite.total_steps <= 1_000_000
    assert full.steps_per_task == 1_000_000


def test_fields_override_the_size_preset():
    stream = build(CyclicMujocoConfig(size="smoke", tasks=["Ant"], steps_per_task=400, task_aware=True))
    assert [t.name for t in stream.tasks] == ["Ant"] and stream.steps_per_task == 400 and stream.obs_dim == 28


def test_pool_plays_full_episodes_and_normalises():
    task = build(CyclicMujocoConfig(size="smoke")).tasks[0]
    pool = task.make_pool([1, 2])
    obs = pool.reset()
    assert obs.shape == (2, task.obs_dim)
    steps = 0
    while True:
        result = pool.step(np.zeros((2, task.action_dim)), autoreset=False)
        steps += 1
        if (result.terminated | result.truncated).all():
            break
    assert steps <= 50
    assert task.normalize(task.random_return) == 0 and task.normalize(task.reference_return) == 1


def test_pool_snapshots_are_exact():
    task = build(CyclicMujocoConfig(size="smoke")).tasks[1]
    pool, copy = task.make_pool([3]), task.make_pool([9])
    pool.reset()
    copy.reset()
    for _ in range(10):
        pool.step(np.full((1, task.action_dim), 0.3))
    copy.set_state(pool.get_state())
    for _ in range(60):  # crosses the 50-step time limit, so the reset RNG is exercised too
        a, b = pool.step(np.full((1, task.action_dim), -0.2)), copy.step(np.full((1, task.action_dim), -0.2))
        assert np.array_equal(a.obs, b.obs) and np.array_equal(a.reward, b.reward)


def test_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="task 'Nope'"):
        build(CyclicMujocoConfig(tasks=["Nope"]))
