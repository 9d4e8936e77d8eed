"""The score matrix and the continual-learning metrics of one leaderboard row, computed from an entry.

Notation: tasks i = 1..T of the stream are trained in order, each for B environment steps per visit, for C cycles;
every seed's policy is evaluated on every task at steps 0, eval_every, ..., T*B*C. s_i(t) is a seed's normalised
score on task i at evaluation step t. Metrics follow Continual World (Wolczyk et al., NeurIPS 2021), adapted to cycles:

- final score (the board's score matrix, runs x tasks): s_i at the last evaluation of the stream, or the mean over
  the last n evaluations (`last`);
- AUC: the area under s_i(t) over the whole stream divided by its length (trapezoid rule over every evaluation);
- forgetting_i = s_i(end of task i's last visit) - s_i(end of the stream) (0 for the last task, by construction);
- forward transfer_i = (AUC_i - AUC_i^ref) / (1 - AUC_i^ref), AUC_i over task i's first visit and AUC_i^ref over
  the same method trained on task i alone for B steps (mean over its seeds); undefined where AUC_i^ref >= 1;
- cycle gain_i = s_i(end of task i's visit in the last cycle) - s_i(end of its visit in the first cycle)
  (plasticity loss shows as a negative gain);
- recovery time after a perturbation event at step e: per seed, the steps from e to the first later evaluation
  whose score on the event's task (the task trained at e) is back within `tolerance` (relative) of its value at the last evaluation
  at or before e; measured at evaluation steps, infinite if it never recovers.

A failed seed (non-finite actions or parameters) stays in every matrix: from its failure on it scores 0, the
random policy's score. Streams scored on their training windows (bandits) have no evaluation at step 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Row:
    """One method's entry as arrays."""

    entry: dict
    label: str
    seeds: np.ndarray  # [S] global seed ids
    steps: np.ndarray  # [F] evaluation steps
    tasks: list[str]  # trained tasks, stream order
    held_out: list[str]  # evaluated, never trained
    score: np.ndarray  # [S, F, T + H] normalised scores; failed seeds score 0 after failing; nan where a task is not scored

    @property
    def stream(self) -> dict:
        return self.entry["stream"]

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def failed_seeds(self) -> list[int]:
        return sorted({f["seed"] for f in self.entry["failures"]})


def row_from_entry(entry: dict) -> Row:
    score = np.array(entry["evaluations"]["score"], dtype=float)  # null -> nan
    steps = np.array(entry["evaluations"]["steps"])
    seeds = list(entry["seeds"])
    for failure in entry["failures"]:  # a failed seed scores 0 from its failure on; other nulls (tasks not scored) stay nan
        after = steps >= failure["step"]
        row = score[seeds.index(failure["seed"])]
        row[after] = np.nan_to_num(row[after], nan=0.0)
    return Row(
        entry=entry,
        label=entry["label"],
        seeds=np.array(entry["seeds"]),
        steps=steps,
        tasks=list(entry["stream"]["tasks"]),
        held_out=list(entry["stream"]["held_out_tasks"]),
        score=score,
    )


def trapezoid_mean(steps, values, axis: int = -1) -> np.ndarray:
    """Area under values(steps) divided by the length of the step range (trapezoid rule)."""
    steps, values = np.asarray(steps, dtype=float), np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    widths = np.diff(steps)
    return ((values[..., 1:] + values[..., :-1]) / 2 * widths).sum(axis=-1) / widths.sum()


def eval_index(row: Row, step: int) -> int:
    """Position of evaluation step `step` in row.steps."""
    return int(np.searchsorted(row.steps, step))


def visit_end_step(row: Row, cycle: int, task: int) -> int:
    """The evaluation step that closes the visit of `task` (0-based) in `cycle` (0-based)."""
    return (cycle * len(row.tasks) + task + 1) * row.stream["steps_per_task"]


def final_scores(row: Row, last: int = 1) -> np.ndarray:
    """[S, T + H]: mean score over the last `last` evaluations of the stream."""
    return row.score[:, -last:, :].mean(axis=1)


def auc_scores(row: Row) -> np.ndarray:
    """[S, T + H]: area under the score curve over the whole stream, divided by its length."""
    return trapezoid_mean(row.steps, row.score, axis=1)


def forgetting(row: Row, last: int = 1) -> np.ndarray:
    """[S, T]: score at the end of each task's last visit minus its final score."""
    cycles = row.stream["cycles"]
    ends = [eval_index(row, visit_end_step(row, cycles - 1, i)) for i in range(len(row.tasks))]
    at_end = np.stack([row.score[:, j, i] for i, j in enumerate(ends)], axis=1)
    return at_end - final_scores(row, last)[:, : len(row.tasks)]


def cycle_gain(row: Row) -> np.ndarray | None:
    """[S, T]: score at the end of each task's visit in the last cycle minus in the first; None with one cycle."""
    cycles = row.stream["cycles"]
    if cycles < 2:
        return None
    first = [eval_index(row, visit_end_step(row, 0, i)) for i in range(len(row.tasks))]
    last = [eval_index(row, visit_end_step(row, cycles - 1, i)) for i in range(len(row.tasks))]
    return np.stack([row.score[:, b, i] - row.score[:, a, i] for i, (a, b) in enumerate(zip(first, last, strict=True))], axis=1)


def reference_auc(row: Row) -> dict[str, float]:
    """Per task with single-task reference runs: the mean over their seeds of the AUC on that task."""
    return {
        task: float(np.mean(trapezoid_mean(ref["steps"], np.array(ref["score"], dtype=float), axis=1)))
        for task, ref in row.entry["reference"].items()
    }


def forward_transfer(row: Row) -> np.ndarray | None:
    """[S, T]: Continual World's forward transfer over each task's first visit; nan where undefined; None without references."""
    references = reference_auc(row)
    if not references:
        return None
    B = row.stream["steps_per_task"]
    result = np.full((row.n_seeds, len(row.tasks)), np.nan)
    for i, task in enumerate(row.tasks):
        if task not in references or references[task] >= 1.0:
            continue
        window = slice(eval_index(row, i * B), eval_index(row, (i + 1) * B) + 1)
        auc = trapezoid_mean(row.steps[window], row.score[:, window, i], axis=1)
        result[:, i] = (auc - references[task]) / (1.0 - references[task])
    return result


def recovery(row: Row, tolerance: float = 0.1) -> list[dict]:
    """Per perturbation event: per-seed steps until the trained task's score is back within `tolerance` of its pre-event value."""
    results = []
    B, T, total = row.stream["steps_per_task"], len(row.tasks), row.stream["total_steps"]
    for event in row.entry["events"]:
        step = event["step"]
        task = row.tasks.index(event["task"]) if event.get("task") in row.tasks else (min(step, total - 1) // B) % T
        before = int(np.searchsorted(row.steps, step, side="right")) - 1
        pre = row.score[:, before, task]
        threshold = pre - tolerance * np.abs(pre)
        later = row.steps > step
        back = row.score[:, later, task] >= threshold[:, None]  # [S, later evaluations]
        recovered = back.any(axis=1)
        steps_to_recover = np.full(row.n_seeds, np.inf)
        steps_to_recover[recovered] = row.steps[later][back.argmax(axis=1)[recovered]] - step
        results.append({**event, "task": row.tasks[task], "recovery_steps": steps_to_recover})
    return results


def series(row: Row, table: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(steps [F'], names, values [S, F', N]) of the diagnostics or online table; nan where not recorded."""
    data = row.entry[table]
    values = np.array(data["values"], dtype=float).reshape(row.n_seeds, len(data["steps"]), len(data["names"]))
    return np.array(data["steps"]), list(data["names"]), values


def series_final(row: Row, table: str) -> dict[str, np.ndarray]:
    """Per name: each seed's last recorded value [S] (nan if it never recorded one)."""
    _, names, values = series(row, table)
    result = {}
    for n, name in enumerate(names):
        column = values[:, :, n]
        recorded = ~np.isnan(column)
        last = np.where(recorded.any(axis=1), column.shape[1] - 1 - recorded[:, ::-1].argmax(axis=1), 0)
        result[name] = np.where(recorded.any(axis=1), column[np.arange(len(column)), last], np.nan)
    return result


def series_mean(row: Row, table: str) -> dict[str, np.ndarray]:
    """Per name: each seed's mean over every recorded evaluation window [S] (nan if none)."""
    _, names, values = series(row, table)
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(values)).sum(axis=1)
        sums = np.nansum(values, axis=1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {name: means[:, n] for n, name in enumerate(names)}
