"""The Avalanche extra: streams as Avalanche scenarios, Avalanche's metrics beside the suite's, Avalanche's loggers.

Without the extra these tests skip with the reason; CI runs them in an environment that has it and sets
CYCLIC_BENCH_REQUIRE_AVALANCHE=1, which turns a missing extra into a failure instead of a skip.
"""

import csv
import glob
import importlib.util
import json
import os
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.registry import protocol_names
from cyclic_bench.run import train

HAS_AVALANCHE = importlib.util.find_spec("avalanche") is not None
if not HAS_AVALANCHE and os.environ.get("CYCLIC_BENCH_REQUIRE_AVALANCHE") == "1":
    raise RuntimeError("CYCLIC_BENCH_REQUIRE_AVALANCHE=1 but avalanche-lib is not installed: its tests must run here, not skip")
needs_avalanche = pytest.mark.skipif(
    not HAS_AVALANCHE, reason="the optional extra is not installed: pip install -e '.[avalanche]' -c constraints-avalanche.txt"
)
if HAS_AVALANCHE:
    from gymnasium.utils.env_checker import check_env
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cyclic_bench import avalanche as avl

SMOKE = [
    "method=td3",
    "protocol=cyclic_mujoco",
    "protocol.size=smoke",  # Hopper then HalfCheetah, 200 steps each, 2 cycles, evaluations every 100 steps
    "method.actor_hidden=[32,32]",
    "method.critic_hidden=[32,32]",
    "method.batch_size=16",
    "progress=false",
    "seeds=2",
]


def test_without_the_extra_importing_the_module_names_the_extra():
    blocked = "import sys; sys.modules['avalanche'] = None; import cyclic_bench.avalanche"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert done.returncode != 0 and "pip install 'cyclic-bench[avalanche]'" in done.stderr, done.stderr


# ---- streams ------------------------------------------------------------------------------------------------------
@needs_avalanche
@pytest.mark.parametrize("protocol", protocol_names())
def test_every_protocol_stream_is_an_avalanche_scenario_of_task_experiences(protocol):
    scenario = avl.protocol_scenario(protocol, size="smoke")
    stream = scenario.suite_stream
    train_stream, test_stream = scenario.train_stream, scenario.test_stream
    assert isinstance(train_stream, avl.EagerCLStream) and isinstance(test_stream, avl.EagerCLStream)
    assert len(train_stream) == len(stream.tasks) * stream.cycles and len(test_stream) == len(stream.eval_tasks)
    step = 0
    for position, experience in enumerate(train_stream):
        assert isinstance(experience, avl.CLExperience) and experience.current_experience == position
        cycle, index = stream.position(step)
        assert (experience.cycle, experience.task_label, experience.task) == (cycle, index, stream.tasks[index])
        assert experience.start_step == step and experience.step_budget == stream.steps_per_task and not experience.held_out
        step += experience.step_budget
    assert step == stream.total_steps
    for label, experience in enumerate(test_stream):
        assert experience.task_labels == [label] and experience.task is stream.eval_tasks[label] and experience.step_budget == 0
        assert experience.held_out == (label >= len(stream.tasks))
        env = experience.make_env(seed=0)
        obs, _ = env.reset()
        assert obs.shape == (stream.obs_dim,) and env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.shape == (stream.obs_dim,) and np.isfinite(reward)
        env.close()


@needs_avalanche
def test_task_labels_reach_a_strategy_only_on_task_aware_streams():
    hidden = avl.protocol_scenario("cyclic_mujoco", size="smoke").train_stream[1]
    with pytest.raises(ValueError, match="Attribute task_label is not available for the experience in train mode"):
        _ = hidden.train().task_label
    assert hidden.logging().task_label == 1  # metrics and loggers always see it
    shown = avl.protocol_scenario("cyclic_mujoco", size="smoke", task_aware=True).train_stream[1]
    assert shown.train().task_label == 1 and shown.eval().task_label == 1
    with pytest.raises(ConfigError, match="protocol cyclic_mujoco has no setting nope"):
        avl.protocol_scenario("cyclic_mujoco", nope=1)


@needs_avalanche
@pytest.mark.filterwarnings("ignore:.*Box observation space m.* value is")  # unbounded observations, as in Gymnasium's MuJoCo tasks
def test_experience_environments_are_gymnasium_environments_through_the_stream_adapters():
    scenario = avl.protocol_scenario("cyclic_mujoco", size="smoke", task_aware=True)
    hopper = scenario.test_stream[0]  # Hopper: 11 observations, 3 actions; the stream: 17 (+2 one-hot) and 6
    raw, adapted = hopper.make_env(seed=5, adapted=False), hopper.make_env(seed=5)
    check_env(raw, skip_render_check=True)
    check_env(adapted, skip_render_check=True)
    assert raw.observation_space.shape == (11,) and raw.action_space.shape == (3,)
    assert adapted.observation_space.shape == (19,) and adapted.action_space.shape == (6,)
    raw_obs, adapted_obs = raw.reset(seed=7)[0], adapted.reset(seed=7)[0]
    # values whose rescaling to Hopper's [-1, 1] bounds is exact in float32, so both environments get the same actions
    actions = np.random.default_rng(0).choice([-1.0, -0.5, 0.0, 0.5, 1.0], (20, 6)).astype(np.float32)
    for action in actions:
        np.testing.assert_array_equal(adapted_obs[:11], raw_obs)
        np.testing.assert_array_equal(adapted_obs[11:], [0, 0, 0, 0, 0, 0, 1, 0])  # padding, then Hopper's one-hot
        raw_obs, raw_reward, *_ = raw.step(action[:3])  # the adapter hands Hopper the first 3 of the 6 actions
        adapted_obs, adapted_reward, *_ = adapted.step(action)
        assert raw_reward == adapted_reward


# ---- metrics and loggers on real runs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A two-task, two-cycle TD3 run and the single-task runs of each of its tasks (the forward-transfer references)."""
    root = tmp_path_factory.mktemp("avalanche_runs")
    train(compose_config(SMOKE), root / "stream")
    for task in ("Hopper", "HalfCheetah"):
        train(compose_config([*SMOKE, f"protocol.tasks=[{task}]", "protocol.cycles=1"]), root / task)
    return root


def scores(run_dir) -> dict:
    """{(seed, step, task): normalised score} straight from evaluations.csv."""
    with open(run_dir / "evaluations.csv") as f:
        return {(int(r["seed"]), int(r["step"]), r["eval_task"]): float(r["score"]) for r in csv.DictReader(f)}


@needs_avalanche
def test_avalanche_forgetting_agrees_with_the_suites_and_with_the_evaluation_rows(runs):
    metrics = avl.continual_metrics(runs / "stream")
    assert metrics["tasks"] == ["Hopper", "HalfCheetah"] and metrics["seeds"] == [0, 1]
    score = scores(runs / "stream")
    # Hopper's last visit ends at step 600 (cycle 2, first task); the stream ends at step 800
    by_hand = [score[(seed, 600, "Hopper")] - score[(seed, 800, "Hopper")] for seed in (0, 1)]
    np.testing.assert_allclose(metrics["avalanche_forgetting"][:, 0], by_hand, rtol=1e-12)
    np.testing.assert_allclose(metrics["avalanche_forgetting"][:, 0], metrics["forgetting"][:, 0], rtol=1e-12)
    np.testing.assert_allclose(metrics["avalanche_bwt"][:, 0], -metrics["forgetting"][:, 0], rtol=1e-12)
    # the task trained last: Avalanche reports nothing, the suite 0 by construction
    assert np.isnan(metrics["avalanche_forgetting"][:, 1]).all() and (metrics["forgetting"][:, 1] == 0).all()


def window_mean(values: list[float]) -> float:
    """Area under three equally spaced evaluations (trapezoid rule) divided by the window's length."""
    return (values[0] / 2 + values[1] + values[2] / 2) / 2


@needs_avalanche
def test_avalanche_forward_transfer_agrees_with_the_suites_continual_world_definition(runs):
    references = [runs / "Hopper", runs / "HalfCheetah"]
    metrics = avl.continual_metrics(runs / "stream", references)
    assert np.isfinite(metrics["forward_transfer"]).all()
    np.testing.assert_allclose(metrics["avalanche_forward_transfer"], metrics["forward_transfer"], rtol=1e-9, atol=1e-12)
    # by hand for HalfCheetah: its first visit is steps 200..400 of the stream, its reference run steps 0..200
    stream, alone = scores(runs / "stream"), scores(runs / "HalfCheetah")
    reference = np.mean([window_mean([alone[(s, t, "HalfCheetah")] for t in (0, 100, 200)]) for s in (0, 1)])
    for seed in (0, 1):
        auc = window_mean([stream[(seed, t, "HalfCheetah")] for t in (200, 300, 400)])
        assert metrics["forward_transfer"][seed, 1] == pytest.approx((auc - reference) / (1 - reference), rel=1e-9)
        # Avalanche's own (zero-shot) definition: the score just before the first visit minus the score at step 0
        zero_shot = stream[(seed, 200, "HalfCheetah")] - stream[(seed, 0, "HalfCheetah")]
        assert metrics["avalanche_zero_shot_transfer"][seed, 1] == pytest.approx(zero_shot, rel=1e-12)
    assert np.isnan(metrics["avalanche_zero_shot_transfer"][:, 0]).all()  # the first task has no visit before it
    without = avl.continual_metrics(runs / "stream")
    assert without["forward_transfer"] is None and without["avalanche_forward_transfer"] is None


@needs_avalanche
def test_tensorboard_logger_holds_the_evaluation_rows_and_the_metrics(runs, tmp_path):
    folders = avl.log_run(runs / "stream", loggers=["tensorboard"], out_dir=tmp_path)
    assert set(folders) == {"tensorboard"}
    events = EventAccumulator(str(folders["tensorboard"]))
    events.Reload()
    score = scores(runs / "stream")
    curve = events.Scalars("Score_Exp/eval_phase/test_stream/Task001/Exp001")
    assert [e.step for e in curve] == list(range(0, 801, 100))
    for e in curve:
        assert e.value == pytest.approx(np.mean([score[(s, e.step, "HalfCheetah")] for s in (0, 1)]), rel=1e-6)
    forgetting = events.Scalars("ExperienceForgetting/eval_phase/test_stream/Task000/Exp000")
    expected = np.mean(avl.continual_metrics(runs / "stream")["forgetting"][:, 0])
    assert [e.step for e in forgetting] == [800] and forgetting[0].value == pytest.approx(expected, rel=1e-5, abs=1e-9)


def wandb_history(run_file: str) -> tuple[dict, dict]:
    """(config, {metric: [(step, value)]}) from a W&B offline run file: a LevelDB-style log of protobuf records."""
    from wandb.proto import wandb_internal_pb2

    with open(run_file, "rb") as f:
        data = f.read()
    assert struct.unpack("<4sHB", data[:7])[:2] == (b":W&B", 0xBEE1)
    position, pending, config, history = 7, b"", {}, defaultdict(list)
    while position + 7 <= len(data):
        room = 32768 - position % 32768  # records never straddle the 7-byte header across a 32 KiB block end
        _, length, kind = struct.unpack("<IHB", data[position : position + 7]) if room >= 7 else (0, 0, 0)
        if kind == 0:
            position += room
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            for item in [*record.run.config.update, *record.config.update]:  # the run's first config, then changes
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            for item in record.history.item:  # names with a "/" come as nested keys
                history[item.key or "/".join(item.nested_key)].append((record.history.step.num, json.loads(item.value_json)))
    return config, history


@needs_avalanche
def test_wandb_logger_writes_an_offline_run_with_every_seed(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    folders = avl.log_run(runs / "stream", loggers=["wandb"], out_dir=tmp_path, per_seed=True)
    (run_file,) = glob.glob(str(folders["wandb"] / "offline-run-*" / "run-*.wandb"))
    config, history = wandb_history(run_file)
    assert config["method"]["name"] == "td3" and config["protocol"]["size"] == "smoke"
    score = scores(runs / "stream")
    for seed in (0, 1):
        logged = history[f"Score_Exp/eval_phase/test_stream/Task000/Exp000/Seed{seed}"]
        assert logged == [(step, pytest.approx(score[(seed, step, "Hopper")], rel=1e-12)) for step in range(0, 801, 100)]
    assert "StreamForgetting/eval_phase/test_stream" in history and "ExperienceForwardTransferCW/eval_phase/test_stream" not in history


@needs_avalanche
def test_unknown_loggers_and_wandb_modes_are_refused(runs):
    with pytest.raises(ConfigError, match=r"loggers=\['mlflow'\] is not allowed: choose among tensorboard, wandb"):
        avl.log_run(runs / "stream", loggers=["mlflow"])
    with pytest.raises(ConfigError, match="wandb_mode='cloud' is not allowed"):
        avl.log_run(runs / "stream", wandb_mode="cloud")


def test_the_avalanche_constraints_keep_every_other_pin_of_constraints_txt():
    def pins(name: str) -> dict[str, str]:
        lines = (Path(__file__).parent.parent / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith("#"))

    main, extra = pins("constraints.txt"), pins("constraints-avalanche.txt")
    assert {k: v for k, v in main.items() if k != "torch"}.items() <= extra.items()
    assert (extra["torch"], extra["torchvision"]) == ("2.14.1", "0.29.1")
