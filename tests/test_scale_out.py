"""Sweeps shard seeds over jobs (hydra multirun on the joblib and submitit launchers); shards equal one big run."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.run import train

TINY = [
    "protocol.size=smoke",
    "protocol.tasks=[InvertedPendulum]",
    "protocol.steps_per_task=120",
    "protocol.cycles=1",
    "protocol.eval_every=60",
    "protocol.eval_episodes=1",
    "protocol.warmup_steps=60",
    "protocol.max_episode_steps=30",
    "method.actor_hidden=[16]",
    "method.critic_hidden=[16]",
    "method.batch_size=16",
    "device=cpu",
    "progress=false",
]


def scores(run_dir: Path) -> dict[tuple[str, str, str], str]:
    with open(run_dir / "evaluations.csv") as f:
        return {(r["seed"], r["step"], r["eval_task"]): r["return"] for r in csv.DictReader(f)}


def sweep(tmp_path: Path, launcher: str, seeds: int, first_seeds: str) -> list[Path]:
    sweep_dir = tmp_path / launcher
    command = [sys.executable, "-m", "cyclic_bench.cli", "run", "-m", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}"]
    command += [*TINY, f"seeds={seeds}", f"first_seed={first_seeds}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return sorted(p.parent for p in sweep_dir.glob("*/summary.json"))


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("single")
    config = compose_config([*TINY, "seeds=4", "first_seed=0"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the sweep's jobs (OMP_NUM_THREADS=1), so float results can match exactly
    try:
        train(config, run_dir)
    finally:
        torch.set_num_threads(threads)
    return scores(run_dir)


@pytest.mark.parametrize(("launcher", "seeds", "first_seeds"), [("joblib", 2, "0,2"), ("submitit_local", 1, "1,3")])
def test_shards_of_a_sweep_reproduce_the_single_run_seed_for_seed(tmp_path, single_run, launcher, seeds, first_seeds):
    shards = sweep(tmp_path, launcher, seeds, first_seeds)
    assert len(shards) == 2
    merged = {key: value for shard in shards for key, value in scores(shard).items()}
    assert merged == {
        key: value for key, value in single_run.items() if int(key[0]) in {int(s) + i for s in first_seeds.split(",") for i in range(seeds)}
    }
