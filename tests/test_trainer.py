import csv

import numpy as np
import pytest
import torch
from helpers import Recorder, assert_same_rows, run_killed_at, spec_for, toy_stream, toy_task

from cyclic_bench.errors import ConfigError
from cyclic_bench.results import RunDir
from cyclic_bench.trainer import Engine, EngineOptions


def run_engine(tmp_path, stream, envs_per_seed=1, seeds=(0, 1, 2)):
    method = Recorder(None, spec_for(stream, seeds), envs_per_seed)
    engine = Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=stream.eval_every, progress=False))
    engine.run()
    return engine, method


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("envs_per_seed", [1, 2])
def test_budget_is_exact_and_switches_are_synchronous(tmp_path, envs_per_seed):
    stream = toy_stream(steps_per_task=20, cycles=2)
    engine, method = run_engine(tmp_path, stream, envs_per_seed)
    steps = sum(t.obs.shape[1] for t in method.transitions)
    assert steps == stream.total_steps == 80 and engine.step == 80
    calls_per_visit = 20 // envs_per_seed
    assert method.task_starts == [(i * calls_per_visit, i % 2) for i in range(4)]
    for t in method.transitions:
        assert t.obs.shape[:2] == (3, envs_per_seed)


def test_the_last_step_of_each_visit_is_truncated_for_every_seed(tmp_path):
    stream = toy_stream(steps_per_task=20, cycles=1)
    _, method = run_engine(tmp_path, stream)
    for i, t in enumerate(method.transitions):
        if (i + 1) % 20 == 0:
            assert bool((t.truncated | t.terminated).all())
    # toy episodes are 7 steps long: the env's own time limit shows up too, and it is not a termination
    assert bool(method.transitions[6].truncated.all()) and not method.transitions[6].terminated.any()


def test_warmup_uses_random_actions_and_no_learning(tmp_path):
    stream = toy_stream(warmup_steps=5)
    _, method = run_engine(tmp_path, stream)
    assert [t.learn for t in method.transitions[:6]] == [False] * 5 + [True]
    assert method.transitions[0].action.abs().sum() > 0  # random, not the recorder's zeros
    assert method.transitions[5].action.abs().sum() == 0


def test_evaluation_covers_every_task_and_spends_no_training_budget(tmp_path):
    stream = toy_stream(steps_per_task=20, cycles=2, eval_every=10, eval_episodes=2)
    _, method = run_engine(tmp_path, stream)
    rows = read(tmp_path / "evaluations.csv")
    steps = sorted({int(r["step"]) for r in rows})
    assert steps == list(range(0, 81, 10))
    assert len(rows) == len(steps) * 3 * 2  # seeds x tasks
    assert {r["eval_task"] for r in rows} == {"a", "b"}
    eval_calls = [shape for shape, explore in method.act_calls if not explore]
    assert eval_calls and all(shape[:2] == (3, 2) for shape in eval_calls)  # K episodes per seed, own envs
    assert sum(t.obs.shape[1] for t in method.transitions) == 80


def test_budgets_must_divide_by_the_environments_per_seed(tmp_path):
    stream = toy_stream(steps_per_task=21, eval_every=7)
    with pytest.raises(ConfigError, match="steps_per_task=21"):
        Engine(stream, Recorder(None, spec_for(stream), 2), RunDir(tmp_path), EngineOptions(10, False))


class Exploding(Recorder):
    """Seed 1's actions become NaN after `at` transitions."""

    def act(self, obs, explore):
        action = super().act(obs, explore)
        if explore and len(self.transitions) >= 12:
            action[1] = float("nan")
        return action


def test_a_failing_seed_is_recorded_and_the_others_go_on(tmp_path):
    stream = toy_stream(warmup_steps=0)
    method = Exploding(None, spec_for(stream))
    Engine(stream, method, RunDir(tmp_path), EngineOptions(10, False)).run()
    failures = read(tmp_path / "failures.csv")
    assert failures == [{"seed": "1", "step": "12", "reason": "non-finite action"}]
    assert method.active.tolist() == [True, False, True]
    assert all(torch.isfinite(t.action).all() for t in method.transitions)  # failed seeds act with zeros
    rows = read(tmp_path / "evaluations.csv")
    assert max(int(r["step"]) for r in rows if r["seed"] == "1") == 10
    assert max(int(r["step"]) for r in rows if r["seed"] == "0") == 80


def test_resume_from_a_checkpoint_loses_and_doubles_nothing(tmp_path, monkeypatch):
    stream = toy_stream()
    run_engine(tmp_path / "full", stream)

    run_killed_at(25, lambda: run_engine(tmp_path / "killed", stream), monkeypatch)
    assert max(int(r["step"]) for r in read(tmp_path / "killed" / "evaluations.csv")) == 20
    run_engine(tmp_path / "killed", stream)
    assert_same_rows(tmp_path / "killed", tmp_path / "full")


def test_held_out_tasks_are_evaluated_never_trained_and_get_no_task_id(tmp_path):
    stream = toy_stream(task_aware=True, held_out=(toy_task("unseen", 4, 3),))
    engine, method = run_engine(tmp_path, stream)
    assert stream.obs_dim == 5 + 2 and stream.action_dim == 3  # widest of all tasks, one-hot over trained tasks only
    rows = read(tmp_path / "evaluations.csv")
    assert {r["eval_task"] for r in rows} == {"a", "b", "unseen"}
    assert {r["trained_task"] for r in rows} <= {"none", "a", "b"}
    assert all(t.obs[..., 5:].sum(dim=-1).eq(1).all() for t in method.transitions)  # training always knows its task
    assert engine.obs_adapter(np.ones((1, 4)), 2)[0, 5:].tolist() == [0.0, 0.0]
