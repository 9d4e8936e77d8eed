import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.run import results_table, train

SMOKE = ["protocol=cyclic_mujoco", "protocol.size=smoke", "method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]", "progress=false"]


def rows(path):
    with open(path / "evaluations.csv") as f:
        return list(csv.DictReader(f))


def test_a_seed_gives_the_same_run_alone_and_inside_a_batch(tmp_path, cpu_threads):
    train(compose_config([*SMOKE, "seeds=3"]), tmp_path / "batch")
    train(compose_config([*SMOKE, "seeds=1", "first_seed=1"]), tmp_path / "alone")
    batch = [r for r in rows(tmp_path / "batch") if r["seed"] == "1"]
    alone = rows(tmp_path / "alone")
    assert [(r["step"], r["eval_task"]) for r in batch] == [(r["step"], r["eval_task"]) for r in alone]
    for a, b in zip(alone, batch, strict=True):
        assert float(a["return"]) == pytest.approx(float(b["return"]), rel=1e-4, abs=1e-3)


def test_a_run_directory_holding_another_run_is_refused(tmp_path):
    train(compose_config([*SMOKE, "seeds=1", "protocol.cycles=1"]), tmp_path)
    with pytest.raises(ConfigError, match="already holds a run with other settings \\(seeds\\)"):
        train(compose_config([*SMOKE, "seeds=2", "protocol.cycles=1"]), tmp_path)


def cli(*args):
    return [sys.executable, "-m", "cyclic_bench.cli", *args]


def test_a_killed_run_resumes_without_losing_or_doubling_rows(tmp_path):
    args = ["run", *SMOKE, "seeds=2"]
    subprocess.run(cli(*args, f"hydra.run.dir={tmp_path / 'whole'}"), check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(cli(*args, f"hydra.run.dir={killed}"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "summary.json").exists(), "the run finished before it could be killed"
    done = subprocess.run(cli("run", f"resume={killed}"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Final normalised scores" in done.stdout
    assert rows(killed) == rows(tmp_path / "whole")


def test_results_table_has_a_row_per_method_and_a_column_per_task():
    summary = {
        "method": "td3",
        "tasks": ["A", "B"],
        "seeds": [0, 1],
        "failed_seeds": [],
        "final_scores": {"A": {"0": 0.5, "1": 0.7}, "B": {"0": 0.1, "1": 0.3}},
    }
    table = results_table([summary, {**summary, "method": "reset", "failed_seeds": [{"seed": 1}]}]).splitlines()
    assert table[0] == "| method | seeds | A | B | mean over tasks |"
    assert table[2].startswith("| td3 | 2 | 0.600 [") and table[3].startswith("| reset | 2 (1 failed) |")


def test_a_multirun_sweep_writes_one_run_per_shard(tmp_path):
    args = ["run", "-m", *SMOKE, "protocol.cycles=1", "seeds=1", "first_seed=0,1", f"hydra.sweep.dir={tmp_path}"]
    done = subprocess.run(cli(*args), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shards = [json.loads((tmp_path / shard / "summary.json").read_text()) for shard in ("0", "1")]
    assert [s["seeds"] for s in shards] == [[0], [1]]
