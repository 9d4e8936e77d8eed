"""`cyclic-bench board reproduce`: re-run k seeds of an entry from its recorded configuration and compare.

The re-run trains the entry's first k seed ids (`first_seed` = the entry's first seed, `seeds` = k) with the
entry's configuration through `cyclic_bench.run.train`. Two checks:

- exact: on the seeds both have, every evaluation's score equal (max |difference| <= 1e-9). Expected when the entry
  and the re-run are CPU runs of the same code and versions with the same number of seeds per process; a different
  batch size changes float rounding (equal to tolerance step by step), which training can amplify.
- interval: the re-run's mean final score over its k seeds, per task and over tasks, inside the entry's 95%
  interval for a mean of k seeds (percentile bootstrap: means of k seeds drawn with replacement from the entry's
  per-seed final scores, numpy generator seeded). This is the check that matters across devices and versions.

The verdict is "exact", "agrees" (every interval check passes) or "disagrees".
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from cyclic_bench.board import scores as sc
from cyclic_bench.board.entry import RunRecord, entry_from_runs, load_entry
from cyclic_bench.config import RunConfig
from cyclic_bench.errors import require
from cyclic_bench.results import write_json

EXACT_TOLERANCE = 1e-9


def reproduce(
    entry_path: str | Path,
    seeds: int = 3,
    out: str | Path | None = None,
    device: str = "auto",
    reps: int = 2000,
    bootstrap_seed: int = 0,
    last: int = 1,
    progress: bool = True,
) -> dict:
    """Re-run the first `seeds` seeds of an entry into `out` (a new temporary folder if None); returns the report."""
    from cyclic_bench.run import train

    entry = load_entry(entry_path)
    require(
        1 <= seeds <= len(entry["seeds"]), f"--seeds {seeds} is not allowed: the entry has {len(entry['seeds'])} seeds; give 1 to that many"
    )
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="cyclic-bench-reproduce-"))
    config = run_defaults() | entry["config"] | {"seeds": seeds, "first_seed": entry["seeds"][0], "device": device, "progress": progress}
    train(OmegaConf.create(config), run_dir)
    rerun = entry_from_runs([RunRecord(run_dir)], label=entry["label"])
    report = compare(entry, rerun, reps, bootstrap_seed, last) | {"run_dir": str(run_dir)}
    write_json(run_dir / "reproduction.json", report)
    return report


def run_defaults() -> dict:
    """The run settings' defaults (for settings an older entry predates), method and protocol aside."""
    return {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(RunConfig)
        if f.name not in ("defaults", "method", "protocol")
    }


def compare(entry: dict, rerun: dict, reps: int = 2000, bootstrap_seed: int = 0, last: int = 1) -> dict:
    """Compare a re-run entry with the original: exact agreement on shared seeds, and the k-seed interval check."""
    original, again = sc.row_from_entry(entry), sc.row_from_entry(rerun)
    T = len(original.tasks)
    shared = [s for s in again.seeds.tolist() if s in original.seeds.tolist()]
    rows_o = [original.seeds.tolist().index(s) for s in shared]
    rows_a = [again.seeds.tolist().index(s) for s in shared]
    max_difference = float(np.abs(original.score[rows_o] - again.score[rows_a]).max()) if shared else float("nan")

    final_o, final_a = sc.final_scores(original, last)[:, :T], sc.final_scores(again, last)[:, :T]
    k = len(final_a)
    draws = np.random.default_rng(bootstrap_seed).integers(0, len(final_o), size=(reps, k))
    checks = []
    for name, per_seed_o, per_seed_a in [
        *((task, final_o[:, i], final_a[:, i]) for i, task in enumerate(original.tasks)),
        ("mean over tasks", final_o.mean(axis=1), final_a.mean(axis=1)),
    ]:
        means = per_seed_o[draws].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        value = float(per_seed_a.mean())
        checks.append({"task": name, "rerun_mean": value, "entry_mean": float(per_seed_o.mean()), "low": float(low), "high": float(high)})
        checks[-1]["inside"] = bool(low - EXACT_TOLERANCE <= value <= high + EXACT_TOLERANCE)
    exact = bool(shared) and max_difference <= EXACT_TOLERANCE
    verdict = "exact" if exact else ("agrees" if all(c["inside"] for c in checks) else "disagrees")
    return {
        "label": entry["label"],
        "seeds": again.seeds.tolist(),
        "shared_seeds": shared,
        "max_score_difference": max_difference,
        "exact": exact,
        "interval_checks": checks,
        "verdict": verdict,
        "entry_devices": sorted({s["device"] for s in entry["shards"]}),
        "rerun_device": rerun["shards"][0]["device"],
    }


def report_text(report: dict) -> str:
    interval_title = f"95% interval of a {len(report['seeds'])}-seed mean"
    lines = [
        f"re-ran {report['label']} seeds {report['seeds']} on {report['rerun_device']} (entry ran on {', '.join(report['entry_devices'])})",
        f"largest score difference on shared seeds: {report['max_score_difference']:.3g}" + (" (exact)" if report["exact"] else ""),
        f"{'task':<24} {'re-run mean':>12} {'entry mean':>11}  {interval_title:<32} inside",
    ]
    for c in report["interval_checks"]:
        interval = f"[{c['low']:.4f}, {c['high']:.4f}]"
        lines.append(f"{c['task']:<24} {c['rerun_mean']:>12.4f} {c['entry_mean']:>11.4f}  {interval:<32} {'yes' if c['inside'] else 'NO'}")
    lines.append(f"verdict: {report['verdict']}   (run files: {report['run_dir']})")
    return "\n".join(lines)
