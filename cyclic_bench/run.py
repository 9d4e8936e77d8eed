"""Start, resume and summarise runs: the functions behind `cyclic-bench run`, usable from Python too."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cyclic_bench.config import load_run_config, plan_run
from cyclic_bench.errors import require
from cyclic_bench.registry import method_label
from cyclic_bench.results import RunDir, run_metadata, write_json, write_text
from cyclic_bench.trainer import Engine, EngineOptions

RESUME_OVERRIDES = ("device", "progress", "env_workers")  # settings a resumed run may change; everything else comes from the run


def train(config: DictConfig, run_dir: str | Path) -> dict:
    """Run `config` in `run_dir` (continuing from its checkpoint if it has one); returns the summary."""
    plan = plan_run(config)
    method = plan.build_method()
    engine = Engine(plan.stream, method, RunDir(run_dir), EngineOptions(plan.checkpoint_every, bool(config.progress), config.env_workers))
    record = {k: v for k, v in OmegaConf.to_container(config, resolve=True).items() if k != "resume"}
    if engine.run_dir.is_run():
        saved = OmegaConf.to_container(load_run_config(engine.run_dir.file("config.yaml")))
        changed = sorted(k for k in set(record) | set(saved) if k not in RESUME_OVERRIDES and record.get(k) != saved.get(k))
        require(not changed, f"{engine.run_dir.path} already holds a run with other settings ({', '.join(changed)}); use a new directory")
    else:
        write_text(engine.run_dir.file("config.yaml"), OmegaConf.to_yaml(record))
        write_json(engine.run_dir.file("meta.json"), run_metadata(plan.spec.device))
    engine.run()
    summary = summarize(config, engine)
    write_json(engine.run_dir.file("summary.json"), summary)
    return summary


def resume(run_dir: str | Path, **overrides) -> dict:
    """Continue the run in `run_dir` from its last checkpoint; only `device` and `progress` may change."""
    directory = RunDir(run_dir)
    require(directory.is_run(), f"resume={str(run_dir)!r} is not a run directory: it has no config.yaml")
    bad = sorted(set(overrides) - set(RESUME_OVERRIDES))
    require(not bad, f"a resumed run keeps its configuration; drop {', '.join(bad)} (only {', '.join(RESUME_OVERRIDES)} may change)")
    config = load_run_config(directory.file("config.yaml"))
    for key, value in overrides.items():
        config[key] = value
    return train(config, directory.path)


def summarize(config: DictConfig, engine: Engine) -> dict:
    """Final scores (the last evaluation) per task and seed, failed seeds and speed."""
    rows = engine.rows["evaluations"]
    last_step = max((r["step"] for r in rows), default=None)  # None: every seed failed before any window closed
    final: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        if r["step"] == last_step:
            final[r["eval_task"]][r["seed"]] = r["score"]
    seconds = engine.elapsed()
    return {
        "method": method_label(config.method.name, config.method.get("base")),  # redo, or redo-sac on another learner
        "protocol": config.protocol.name,
        "stream": engine.stream.name,
        "tasks": [t.name for t in engine.stream.tasks],
        "held_out_tasks": [t.name for t in engine.stream.held_out],
        "seeds": list(engine.spec.seed_ids),
        "failed_seeds": engine.rows["failures"],
        "steps_per_seed": engine.stream.total_steps,
        "final_scores": {task: {str(s): v for s, v in scores.items()} for task, scores in final.items()},
        "wall_seconds": round(seconds, 2),
        "seed_steps_per_second": round(engine.stream.total_steps * engine.spec.n_seeds / max(seconds, 1e-9), 1),
    }


def mean_interval(values: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval over seeds (seeded, so the same values give the same interval)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan")
    means = np.random.default_rng(seed).choice(x, size=(reps, len(x))).mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def results_table(summaries: list[dict]) -> str:
    """A Markdown table: one row per method, one column per task, final normalised score mean [95% CI].

    Held-out tasks get columns of their own, marked, and stay out of the mean over (trained) tasks.
    """
    tasks, held_out = summaries[0]["tasks"], summaries[0].get("held_out_tasks", [])
    headers = [*tasks, *(f"{task} (held out)" for task in held_out)]
    lines = ["| method | seeds | " + " | ".join(headers) + " | mean over tasks |", "|" + "---|" * (len(headers) + 3)]
    for summary in summaries:
        scores = summary["final_scores"]
        cells = [_cell(list(scores.get(task, {}).values())) for task in [*tasks, *held_out]]
        per_seed = [np.mean([scores[t][s] for t in tasks]) for s in scores.get(tasks[0], {}) if all(s in scores.get(t, {}) for t in tasks)]
        failed = f" ({len(summary['failed_seeds'])} failed)" if summary["failed_seeds"] else ""
        lines.append(f"| {summary['method']} | {len(summary['seeds'])}{failed} | " + " | ".join(cells) + f" | {_cell(per_seed)} |")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean, low, high = mean_interval(values)
    return f"{mean:.3f}" if np.isnan(low) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"
