"""Synthetic run directories for the board tests: the files a finished run writes, with scores chosen by the test."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from cyclic_bench.board.entry import eval_steps, stream_of
from cyclic_bench.registry import get_method, get_protocol

ScoreFn = Callable[[int, int, str], float]  # (seed, step, task) -> normalised score


def run_config(
    method: str = "td3",
    seeds: int = 3,
    first_seed: int = 0,
    protocol: str = "cyclic_mujoco",
    size: str = "smoke",
    method_settings: dict | None = None,
    protocol_settings: dict | None = None,
    events: list[dict] | None = None,
) -> dict:
    """A resolved run configuration, as config.yaml holds it."""
    method_config = dataclasses.asdict(get_method(method)[1]()) | (method_settings or {})
    protocol_config = dataclasses.asdict(get_protocol(protocol).config(size=size)) | (protocol_settings or {})
    return {
        "method": method_config,
        "protocol": protocol_config,
        "seeds": seeds,
        "first_seed": first_seed,
        "device": "cpu",
        "checkpoint_every": 0,
        "progress": False,
        "env_workers": 0,
        "events": events or [],
    }


def write_run(
    path: Path,
    score: ScoreFn,
    failures: dict[int, int] | None = None,
    finished: bool = True,
    code_revision: str = "synthetic",
    **config_settings,
) -> Path:
    """Write a finished run directory whose evaluations have the scores `score` gives (returns derived from them).

    `failures` maps seed -> step of failure: the seed has no evaluation from that step on.
    """
    config = run_config(**config_settings)
    stream = stream_of(config)
    seeds = range(config["first_seed"], config["first_seed"] + config["seeds"])
    failures = failures or {}
    described = {"total_steps": stream.total_steps, "eval_every": stream.eval_every, "eval_episodes": stream.eval_episodes}
    steps = eval_steps(described)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(OmegaConf.to_yaml(config))
    meta = {"code_revision": code_revision, "packages": {"numpy": "x"}, "python": "3", "platform": "test", "device": "cpu"}
    (path / "meta.json").write_text(json.dumps(meta))
    evaluations, diagnostics, online = [], [], []
    for seed in seeds:
        for step in steps:
            if seed in failures and step >= failures[seed]:
                continue
            cycle, trained = stream.position(max(step - 1, 0))
            common = {"seed": seed, "step": step, "cycle": cycle, "trained_task": stream.tasks[trained].name if step else "none"}
            for task in stream.tasks + stream.held_out:
                value = score(seed, step, task.name)
                ret = task.random_return + value * (task.reference_return - task.random_return)
                evaluations.append(common | {"eval_task": task.name, "return": ret, "return_std": 0.0, "score": value})
            if step:
                diagnostics += [
                    common | {"name": "actor_dormant_ratio_tau0.1", "value": 0.01 * seed + step / 1e4},
                    common | {"name": "critic_srank", "value": 20 + seed},
                ]
                online.append(common | {"name": "reward", "value": 0.5 + 0.1 * seed})
    event_rows = [
        {"step": e.step, "kind": e.kind, "task": stream.tasks[stream.position(e.step)[1]].name, "detail": e.describe()}
        for e in stream.events
    ]
    failure_rows = [{"seed": s, "step": step, "reason": "non-finite parameters"} for s, step in failures.items()]
    tables = {
        "evaluations": (["seed", "step", "cycle", "trained_task", "eval_task", "return", "return_std", "score"], evaluations),
        "diagnostics": (["seed", "step", "cycle", "trained_task", "name", "value"], diagnostics),
        "online": (["seed", "step", "cycle", "trained_task", "name", "value"], online),
        "events": (["step", "kind", "task", "detail"], event_rows),
        "failures": (["seed", "step", "reason"], failure_rows),
    }
    for name, (columns, rows) in tables.items():
        with open(path / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    if finished:
        summary = {"tasks": [t.name for t in stream.tasks], "held_out_tasks": [t.name for t in stream.held_out], "wall_seconds": 1.0}
        (path / "summary.json").write_text(json.dumps(summary))
    return path


def constant(value: float) -> ScoreFn:
    return lambda seed, step, task: value


def varied(offset: float = 0.0) -> ScoreFn:
    """Scores that differ by seed, step and task (deterministic)."""
    return lambda seed, step, task: offset + 0.01 * seed + step / 2000 + 0.1 * (task == "Hopper") + 0.003 * ((seed * 7 + step) % 5)
