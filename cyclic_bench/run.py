"""Start, resume and summarise runs: the functions behind `cyclic-bench run`, usable from Python too.

`train` checks everything before it creates or changes anything: the configuration (`plan_run`), that no other
process writes the folder, and that the method fits the stream. It then holds the folder's writer lock for the whole
run, removes temporary files that an earlier kill left, and reports a failed write (read-only folder, full disk) as
one `StorageError` line saying which checkpoint is intact.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cyclic_bench.config import load_run_config, plan_run
from cyclic_bench.errors import StorageError, require
from cyclic_bench.registry import method_label
from cyclic_bench.results import RunDir, run_metadata, write_json, write_text
from cyclic_bench.trainer import Engine, EngineOptions

RESUME_OVERRIDES = ("device", "progress", "env_workers", "capture")  # settings a resumed run may change; everything else comes from the run


def train(config: DictConfig, run_dir: str | Path) -> dict:
    """Run `config` in `run_dir` (continuing from its checkpoint if it has one); returns the summary."""
    plan = plan_run(config)
    directory = RunDir(run_dir)
    directory.refuse_if_busy()  # before the method allocates anything
    engine = Engine(plan.stream, plan.build_method(), directory, EngineOptions(plan.checkpoint_every, config.progress, config.env_workers))
    try:
        with directory.writer_lock():
            open_run_folder(directory, config, plan.spec.device)
            engine.run()
            summary = summarize(config, engine)
            write_json(directory.file("summary.json"), summary)
    except OSError as error:
        raise storage_error(directory, error, engine.checkpoint_step) from None
    return summary


def open_run_folder(directory: RunDir, config: DictConfig, device) -> None:
    """With the writer lock held: clear what a kill left, refuse a folder of another run, record a new run."""
    removed = directory.remove_temporary_files()
    if removed:
        print(f"removed {len(removed)} temporary file(s) of an interrupted write: {', '.join(removed)}", file=sys.stderr)
    record = {k: v for k, v in OmegaConf.to_container(config, resolve=True).items() if k != "resume"}
    if directory.is_run():
        saved = OmegaConf.to_container(load_run_config(directory.file("config.yaml")))
        changed = sorted(k for k in set(record) | set(saved) if k not in RESUME_OVERRIDES and record.get(k) != saved.get(k))
        require(not changed, f"{directory.path} already holds a run with other settings ({', '.join(changed)}); use a new folder")
    if not directory.file("meta.json").is_file():  # written first: config.yaml is what makes the folder a run
        write_json(directory.file("meta.json"), run_metadata(device, config.method.name))
    if not directory.is_run():
        write_text(directory.file("config.yaml"), OmegaConf.to_yaml(record))


def check_run(config: DictConfig) -> None:
    """Everything `train` checks before it writes (values, the method against the stream), on one seed on the CPU:
    cheap, for the jobs of a sweep before hydra makes their folders."""
    one_seed = config.copy()
    one_seed.seeds, one_seed.device = 1, "cpu"
    plan = plan_run(one_seed)
    Engine(plan.stream, plan.build_method(), RunDir(""), EngineOptions(plan.checkpoint_every, False, one_seed.env_workers))
    plan_run(config)  # the device and seed count as given


def storage_error(directory: RunDir, error: OSError, checkpoint_step: int | None) -> StorageError:
    """One line: what could not be written, and what of the run is safe."""
    resume = f"`cyclic-bench run resume={directory.path}`"
    if checkpoint_step is not None:
        safe = f"the checkpoint of step {checkpoint_step} is intact; fix that, then continue with {resume}"
    elif directory.checkpoint.is_file():
        safe = f"its checkpoint is untouched; fix that, then continue with {resume}"
    elif directory.is_run():
        safe = f"no checkpoint was written yet; fix that, then start it again with {resume}"
    else:
        safe = "nothing was trained yet; fix that, or give another folder (hydra.run.dir=...)"
    return StorageError(f"cannot write {error.filename or directory.path}: {error.strerror or error}; {safe}")


def resume(run_dir: str | Path, **overrides) -> dict:
    """Continue the run in `run_dir` from its last checkpoint; only the RESUME_OVERRIDES may change."""
    directory = RunDir(run_dir)
    require(directory.is_run(), f"resume={str(run_dir)!r} is not a run directory: it has no config.yaml")
    bad = sorted(set(overrides) - set(RESUME_OVERRIDES))
    require(not bad, f"a resumed run keeps its configuration; drop {', '.join(bad)} (only {', '.join(RESUME_OVERRIDES)} may change)")
    config = load_run_config(directory.file("config.yaml"))
    for key, value in overrides.items():
        config[key] = value
    return train(config, directory.path)


def summarize(config: DictConfig, engine: Engine) -> dict:
    """Final scores (the evaluation at the end of the stream) per task and seed, failed seeds (not scored) and speed."""
    final: dict[str, dict[int, float]] = defaultdict(dict)
    for r in engine.rows["evaluations"]:
        if r["step"] == engine.stream.total_steps:
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
        "completed_steps": engine.step,  # below steps_per_seed only if every seed failed and the run stopped there
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
