"""One seed diverging costs only that seed: the run finishes, the summary and the board list it, and every other row is
bit-identical to the run without the divergence.

A seed diverges by having every floating-point tensor of its state (parameters, optimizer moments, replay buffer,
statistics) set to NaN mid-run, the state a runaway update leaves; the engine must notice (non-finite actions, or its
health check at the next evaluation) and stop it, through acting, updating, events, evaluation, diagnostics and checkpoints.
"""

import csv
import dataclasses

import pytest
import torch
from fault_helpers import run_in_process
from helpers import same_state

from cyclic_bench.board.build import BoardOptions, compute_board
from cyclic_bench.board.entry import entry_from_runs, group_runs
from cyclic_bench.board.render import document
from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.registry import get_method, method_names
from cyclic_bench.results import TABLES, RunDir
from cyclic_bench.trainer import Engine, EngineOptions

DIVERGING = 1  # the seed that diverges, of seeds 0, 1, 2


def diverge(method, seed: int = DIVERGING) -> None:
    """Set every floating-point tensor of `seed`'s state to NaN (loaded back, so the method's own load path applies)."""

    def poisoned(tree):
        if isinstance(tree, torch.Tensor):
            if tree.is_floating_point() and tree.dim() > 0 and tree.shape[0] == method.spec.n_seeds:
                tree = tree.clone()
                tree[seed] = float("nan")
            return tree
        if isinstance(tree, dict):
            return {k: poisoned(v) for k, v in tree.items()}
        if isinstance(tree, list | tuple):
            return type(tree)(poisoned(v) for v in tree)
        return tree

    method.load_state_dict(poisoned(method.state_dict()))


def read(run_dir, table):
    with open(run_dir / f"{table}.csv") as f:
        return list(csv.DictReader(f))


SHORT = ["protocol.cycles=1", "protocol.max_episode_steps=20"]  # two 200-step visits of 20-step episodes
EVENT = "events=[{step: 250, kind: zero_weights, fraction: 0.3}]"  # a perturbation after the divergence
RUNS = {  # method: (overrides, step at which seed 1 diverges)
    "td3": ([*SHORT, "method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]", EVENT], 150),
    "ne": ([*SHORT, "method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]", "method.topology_every=20"], 150),
    "hebbian": ([*SHORT, "method.population=10", "method.hidden=[16,8]", "method.generation_steps=20", EVENT], 150),  # a window per visit
    "achna": (["protocol=bandit"], 40),
}


@pytest.mark.parametrize("method", list(RUNS))
def test_one_diverging_seed_leaves_the_others_bit_identical(tmp_path, monkeypatch, capsys, method):
    overrides, at = RUNS[method]
    args = ["run", f"method={method}", "protocol.size=smoke", "seeds=3", "progress=false", *overrides]
    assert run_in_process(*args, f"hydra.run.dir={tmp_path / 'clean'}") == 0
    train_step = Engine.train_step

    def diverging_step(engine, task_index):
        if engine.step == at:
            diverge(engine.method)
        train_step(engine, task_index)

    monkeypatch.setattr(Engine, "train_step", diverging_step)
    assert run_in_process(*args, f"hydra.run.dir={tmp_path / 'diverged'}") == 0
    assert "seeds that failed, stopped and have no final score: 1 (step" in capsys.readouterr().out

    clean, diverged = tmp_path / "clean", tmp_path / "diverged"
    failures = read(diverged, "failures")
    assert [f["seed"] for f in failures] == [str(DIVERGING)] and read(clean, "failures") == []
    failed_at = int(failures[0]["step"])
    eval_every = plan_run(compose_config(args[1:])).stream.eval_every
    assert at <= failed_at <= (at // eval_every + 1) * eval_every  # noticed at once, or by the next evaluation's health check
    for table in TABLES:
        if table != "failures":
            kept = [r for r in read(clean, table) if not (r.get("seed") == str(DIVERGING) and int(r["step"]) >= failed_at)]
            assert read(diverged, table) == kept, table
    summary = (diverged / "summary.json").read_text()
    assert f'"seed": {DIVERGING}' in summary and '"failed_seeds"' in summary

    if method == "td3":  # the board takes the run, and shows the failed seed
        entry = entry_from_runs(*group_runs([diverged])[0])
        assert [f["seed"] for f in entry["failures"]] == [DIVERGING]
        board = compute_board([entry], BoardOptions(reps=10))
        assert board["rows"][0]["failed_seeds"] == [DIVERGING]
        assert " (1 failed)" in str(document(board))  # beside the row's seed count


SMALL = {  # settings that make every method small and quick, where it has them (networks keep their depth)
    "actor_hidden": 16,
    "critic_hidden": 16,
    "hidden": 8,
    "batch_size": 8,
    "population": 2,
    "probe_steps": 4,
    "topology_every": 10,  # NE: topology changes within the few updates played
    "redo_every": 10,
    "every": 10,  # shrink & perturb
    "reset_every": 20,
    "inject_at": [20],
    "conv_channels": 4,  # DrQ's encoder
    "feature_dim": 8,
}
PIXELS = ["protocol=cyclic_dmc", "protocol.observation=pixels", "protocol.image_size=16", "protocol.tasks=[walker-walk]"]


def small_plan(name: str):
    fields = {f.name for f in dataclasses.fields(get_method(name)[1])}
    continuous = "continuous" in get_method(name)[0].action_kinds
    protocol = ["protocol=cyclic_mujoco", "protocol.warmup_steps=0", "protocol.max_episode_steps=10"] if continuous else ["protocol=bandit"]
    if get_method(name)[0].observations == "pixels":
        protocol = [*PIXELS, "protocol.warmup_steps=0", "protocol.episode_length=20"]
    defaults = get_method(name)[1]()
    small = {k: [v] * len(getattr(defaults, k)) if k.endswith("hidden") else v for k, v in SMALL.items() if k in fields}
    settings = [f"method.{k}={v}".replace(" ", "") for k, v in small.items()]
    return plan_run(compose_config([f"method={name}", *protocol, "protocol.size=smoke", "seeds=3", *settings]))


def small_engine(plan, run_dir) -> tuple[Engine, list]:
    """An engine of a fresh method of `plan`, and the list its training actions are recorded in."""
    method, actions = plan.build_method(), []
    act = method.act

    def recorded(obs, explore):
        action = act(obs, explore)
        if explore:  # evaluation episodes may run longer or shorter where a seed acts with zeros
            actions.append(action.clone())
        return action

    method.act = recorded
    return Engine(plan.stream, method, RunDir(run_dir), EngineOptions(plan.checkpoint_every, False)), actions


def play(engine: Engine, steps: int, diverge_at: int | None = None) -> None:
    engine.run_dir.rewrite_tables(engine.rows)
    engine.start_visit(0)
    while engine.step < steps:
        if engine.step == diverge_at:
            diverge(engine.method)
        engine.train_step(0)
        engine.step += engine.E
    engine.check_health()
    engine.evaluate()  # evaluation episodes and every diagnostic, with one seed non-finite


@pytest.mark.parametrize("name", method_names())
def test_every_method_isolates_a_non_finite_seed_in_acting_learning_diagnostics_and_checkpoints(tmp_path, cpu_threads, name):
    plan = small_plan(name)
    (clean, clean_actions), (sick, sick_actions) = small_engine(plan, tmp_path / "clean"), small_engine(plan, tmp_path / "sick")
    play(clean, 60)
    play(sick, 60, diverge_at=30)
    others = [s for s in range(3) if s != DIVERGING]
    assert len(clean_actions) == len(sick_actions)
    assert all(torch.equal(a[others], b[others]) for a, b in zip(clean_actions, sick_actions, strict=True))
    assert [f["seed"] for f in sick.rows["failures"]] == [DIVERGING]
    for table in ("evaluations", "diagnostics", "online"):
        assert same_state(sick.rows[table], [r for r in clean.rows[table] if r["seed"] != DIVERGING]), table

    sick.save()  # the state with a NaN seed, through the safe checkpoint format, comes back exactly
    restored, _ = small_engine(plan, tmp_path / "sick")
    restored.restore(restored.run_dir.load_checkpoint())
    assert same_state(restored.method.state_dict(), sick.method.state_dict())
