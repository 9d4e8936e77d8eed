import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, ToyPool, spec_for, toy_stream

from cyclic_bench.registry import get_method
from cyclic_bench.results import RunDir
from cyclic_bench.trainer import Engine, EngineOptions
from cyclic_bench.workers import ProcessPool

TD3, TD3Config = get_method("td3")  # the learner alone, as `method=td3` builds it


def make_toy(seeds):
    return ToyPool(seeds, obs_dim=3, action_dim=2, episode_length=5)


def test_a_process_pool_steps_exactly_like_the_in_process_pool():
    seeds = list(range(5))
    local, remote = make_toy(seeds), ProcessPool(make_toy, seeds, workers=2)
    try:
        assert np.array_equal(local.reset(), remote.reset())
        rng = np.random.default_rng(0)
        for t in range(12):
            actions = rng.uniform(-1, 1, (5, 2)).astype(np.float32)
            which = rng.random(5) < 0.7 if t % 3 == 0 else None
            a, b = local.step(actions, which), remote.step(actions, which)
            for field in ("obs", "reward", "terminated", "truncated", "final_obs"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), field
        state = remote.get_state()
        assert len(state) == 5  # one entry per environment, whatever the worker count
        local.set_state(state)
        assert np.array_equal(local.step(actions).obs, remote.step(actions).obs)
    finally:
        remote.close()


def test_a_worker_error_reaches_the_caller():
    pool = ProcessPool(make_toy, [0, 1], workers=2)
    try:
        with pytest.raises(AssertionError):
            pool.step(np.zeros((2, 7), np.float32))  # wrong action size: the toy pool asserts in the worker
    finally:
        pool.close()


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_training_with_worker_processes_gives_the_same_results(tmp_path, cpu_threads):
    stream = toy_stream()
    for workers in (0, 2):
        method = TD3(TD3Config(**SMALL), spec_for(stream, (0, 1)))
        Engine(stream, method, RunDir(tmp_path / str(workers)), EngineOptions(10, False, env_workers=workers)).run()
    assert read(tmp_path / "0" / "evaluations.csv") == read(tmp_path / "2" / "evaluations.csv")


def test_workers_exit_when_the_training_process_is_killed(tmp_path):
    script = (
        "import sys, time\n"
        "from test_workers import make_toy\n"
        "from cyclic_bench.workers import ProcessPool\n"
        "pool = ProcessPool(make_toy, list(range(4)), workers=2)\n"
        "print(' '.join(str(p.pid) for p in pool.processes), flush=True)\n"
        "time.sleep(600)\n"
    )
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    workers = [int(pid) for pid in trainer.stdout.readline().split()]
    assert len(workers) == 2 and all(running(pid) for pid in workers)
    trainer.kill()
    trainer.wait()
    deadline = time.time() + 30
    try:
        while any(running(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(running(pid) for pid in workers), "a worker outlived its killed training process"
    finally:
        for pid in filter(running, workers):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
