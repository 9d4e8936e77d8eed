"""`cyclic-bench board build`: from entries and run directories to a leaderboard folder.

    leaderboards/<protocol>/<size>/
        README.md       ranked table (point estimate and 95% interval per metric), continual metrics, plots
        index.html      the same, as a static page
        board.json      every number on the board, with the settings that produced it
        scores.csv      per seed and task: final score, AUC, forgetting, forward transfer, cycle gain
        entries/        the entries the board was built from (plain JSON, see entry.py)
        plots/          PNG and SVG figures

The score matrix of a row is [seeds x trained tasks] of final scores (see scores.py); aggregates, probability of
improvement and performance profiles are rliable's (see stats.py). The same inputs and settings give the same
files, byte for byte. A board folder keeps its settings in board.json: building into a folder that holds one
takes every setting not given explicitly from it, so `cyclic-bench board build <folder>` rebuilds the folder as it
was (and a new entry joins a board on that board's terms).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cyclic_bench.board import scores as sc
from cyclic_bench.board import stats
from cyclic_bench.board.entry import dumps_entry, entry_from_runs, group_runs, load_entry, stream_of
from cyclic_bench.errors import ConfigError, require
from cyclic_bench.registry import learner_of, method_label

SCORES = ("final", "auc")  # which score matrix a board ranks
DIAGNOSTICS_OVER_TIME = ("density", "dormant_ratio", "srank")  # diagnostics plotted across the stream (names containing these)
PLUMBING_SIZES = {  # sizes whose budgets test the machinery and cannot tell methods apart, with what each is for
    "smoke": "a plumbing check: tiny budgets and short episodes that test the code paths; its scores stay near 0 "
    "and its ranking says nothing about the methods",
    "demo": "a demonstration: a few thousand steps per seed, enough to see learning start, far too few to rank methods",
}


@dataclass(frozen=True)
class BoardOptions:
    reps: int = 2000  # bootstrap resamples per interval
    seed: int = 0  # numpy seed set before every rliable call
    last: int = 1  # evaluations at the end of the stream averaged into the final score
    baseline: str | None = None  # row every other row is compared with (probability of improvement); default td3 or the first
    tolerance: float = 0.1  # relative distance to the pre-event score that counts as recovered
    target_seeds: int = 30  # rows with fewer seeds are flagged
    max_curve_points: int = 60  # evaluations shown (evenly thinned) in curves with intervals
    score: str = "final"  # the ranked score matrix: "final" (end of the stream) or "auc" (whole stream; e.g. bandits)

    def __post_init__(self):
        require(self.reps >= 10, f"reps={self.reps} is not allowed: it must be >= 10")
        require(self.last >= 1, f"last={self.last} is not allowed: it must be >= 1")
        require(0 < self.tolerance < 1, f"tolerance={self.tolerance} is not allowed: it must be in (0, 1)")
        require(self.target_seeds >= 1, f"target_seeds={self.target_seeds} is not allowed: it must be >= 1")
        require(self.max_curve_points >= 2, f"max_curve_points={self.max_curve_points} is not allowed: it must be >= 2")
        require(self.score in SCORES, f"score={self.score!r} is not allowed; allowed: {', '.join(SCORES)}")

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def stored_options(folder: str | Path) -> dict:
    """The settings a board folder was built with (its board.json), {} where it holds none."""
    path = Path(folder) / "board.json"
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text()).get("options", {})
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    require(isinstance(stored, dict), f"{path}: options must be an object")
    unknown = sorted(set(stored) - set(BoardOptions.fields()))
    require(not unknown, f"{path}: unknown board options {', '.join(unknown)}; known: {', '.join(BoardOptions.fields())}")
    return stored


def changed_options(options: BoardOptions) -> list[str]:
    """The command-line flags that set `options` where they differ from the defaults, e.g. ['--score auc']."""
    default = BoardOptions()
    flags = {"seed": "--bootstrap-seed", "target_seeds": "--target-seeds", "max_curve_points": None}
    return [
        f"{flags.get(name, '--' + name)} {getattr(options, name)}"
        for name in BoardOptions.fields()
        if getattr(options, name) != getattr(default, name) and flags.get(name, "") is not None
    ]


# ---- inputs -------------------------------------------------------------------------------------------------
def is_board_folder(path: Path) -> bool:
    return (path / "board.json").is_file() and (path / "entries").is_dir()


def collect_entries(inputs: list[str | Path]) -> list[dict]:
    """Entries from entry files, folders of entry files, board folders (their entries/), run directories and folders
    holding run directories.

    Run directories are grouped into rows (shards merged, single-task runs taken as references); a method name
    that appears with different method settings gets the differing settings in its label.
    """
    require(len(inputs) > 0, "give at least one entry file or run directory")
    entry_files, run_dirs = [], []
    for item in map(Path, inputs):
        require(item.exists(), f"{item} does not exist")
        if item.is_file():
            require(item.suffix == ".json", f"{item} is neither an entry (.json) nor a run directory")
            entry_files.append(item)
        elif (item / "config.yaml").is_file():
            run_dirs.append(item)
        elif is_board_folder(item):
            entry_files += sorted(p for p in (item / "entries").glob("*.json") if p.is_file())
        else:
            found_files, found_runs = _scan(item)
            require(found_files or found_runs, f"{item} holds no entry (.json) and no run directory")
            entry_files += found_files
            run_dirs += found_runs
    entries = [load_entry(path) for path in entry_files]
    if run_dirs:
        groups = group_runs(run_dirs)
        for (shards, references), label in zip(groups, _labels([g[0][0].config for g in groups]), strict=True):
            entries.append(entry_from_runs(shards, references, label))
    return entries


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    runs = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "config.yaml" in names:
            runs.append(Path(root))
            dirs[:] = []
    return files, sorted(runs)


def _labels(configs: list[dict]) -> list[str]:
    """The method label (`redo`, or `redo-sac` on another learner), plus `-key=value,...` of the method settings that differ
    where a label has several settings."""
    labels = []
    for config in configs:
        name = method_label(config["method"]["name"], config["method"].get("base"))
        same_name = [c["method"] for c in configs if method_label(c["method"]["name"], c["method"].get("base")) == name]
        if all(m == config["method"] for m in same_name):
            labels.append(name)
            continue
        keys = sorted(k for k in config["method"] if any(m.get(k) != config["method"].get(k) for m in same_name))
        text = ",".join(f"{k}={_compact(config['method'][k])}" for k in keys)
        labels.append(re.sub(r"[^A-Za-z0-9_.+=,-]", "", f"{name}-{text}")[:80])
    return labels


def _compact(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else str(value).lower()


# ---- computing ----------------------------------------------------------------------------------------------
def compute_board(entries: list[dict], options: BoardOptions = BoardOptions()) -> dict:
    """Every number of the board for these entries (one protocol configuration)."""
    require(len(entries) > 0, "a board needs at least one entry")
    labels = [e["label"] for e in entries]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    require(not duplicated, f"two entries share the label {', '.join(duplicated)}; give each row its own label")
    first = entries[0]
    for entry in entries[1:]:
        for key in ("stream",):
            require(entry[key] == first[key], f"{entry['label']} and {first['label']} were run on different streams; a board holds one")
        require(
            entry["config"]["protocol"] == first["config"]["protocol"],
            f"{entry['label']} and {first['label']} have different protocol settings; a board holds one protocol configuration",
        )
    rows = {row.label: row for row in (sc.row_from_entry(e) for e in sorted(entries, key=lambda e: e["label"]))}
    baseline = options.baseline or ("td3" if "td3" in rows else next(iter(rows)))
    require(baseline in rows, f"baseline {baseline!r} is not on the board; rows: {', '.join(rows)}")

    T = len(first["stream"]["tasks"])
    ranked = {label: sc.final_scores(row, options.last) if options.score == "final" else sc.auc_scores(row) for label, row in rows.items()}
    all_main = np.concatenate([f[:, :T].ravel() for f in ranked.values()])
    low, high = min(0.0, float(all_main.min())), max(1.0, float(all_main.max()))  # from the random policy's 0 to the reference's 1 at least
    taus = np.linspace(low - 0.02 * (high - low), high + 0.02 * (high - low), 101)

    board_rows = [_compute_row(row, ranked[row.label], ranked[baseline], taus, options) for row in rows.values()]
    learners = {label: learner_of(row.entry["config"]["method"]) for label, row in rows.items()}  # None: a standalone method
    if len(set(learners.values())) > 1:  # a board that compares learners names each row's (labels name the non-default ones)
        for row in board_rows:
            row["learner"] = learners[row["label"]]
    board_rows.sort(key=lambda r: (-r[options.score]["IQM"][0], r["label"]))
    for rank, row in enumerate(board_rows, 1):
        row["rank"] = rank
    revisions = sorted({revision for row in board_rows for revision in row["code_revisions"]})
    return {
        "protocol": first["protocol"],
        "size": first["size"],
        "stream": first["stream"],
        "protocol_config": first["config"]["protocol"],
        "plumbing": PLUMBING_SIZES.get(first["size"]),
        "normalization": normalization(first["config"]),
        "code_revisions": revisions,
        "baseline": baseline,
        "options": asdict(options) | {"baseline": baseline},
        "taus": taus.tolist(),
        "rows": board_rows,
    }


def normalization(config: dict) -> dict[str, dict]:
    """Per evaluated task: the returns that score 0 and 1 at the episode length played, and where each comes from;
    for streams scored on their training windows, what the window score's 0 and 1 are."""
    stream = stream_of(config)
    result = {}
    for task in list(stream.tasks) + list(stream.held_out):
        ends = {"random_source": task.random_source, "reference_source": task.reference_source}
        if task.online_score is None:
            ends |= {"random_return": float(task.random_return), "reference_return": float(task.reference_return)}
        result[task.name] = ends
    return result


def _compute_row(row: sc.Row, ranked: np.ndarray, base_ranked: np.ndarray, taus: np.ndarray, o: BoardOptions) -> dict:
    """One row's numbers; `ranked` is its score matrix [seeds, tasks + held-out] of the board's score (final or AUC)."""
    T = len(row.tasks)
    final, auc = sc.final_scores(row, o.last), sc.auc_scores(row)
    result: dict = {
        "label": row.label,
        "method": row.entry["method"],
        "seeds": row.n_seeds,
        "seed_ids": row.seeds.tolist(),
        "failed_seeds": row.failed_seeds,
        "few_seeds": row.n_seeds < o.target_seeds,
        "code_revisions": sorted({s["code_revision"] for s in row.entry["shards"]}),
        "final": stats.aggregate_intervals(final[:, :T], o.reps, o.seed),
        "auc": stats.aggregate_intervals(auc[:, :T], o.reps, o.seed),
    }
    result["improvement"] = (
        None if ranked is base_ranked else stats.probability_of_improvement(ranked[:, :T], base_ranked[:, :T], o.reps, o.seed)
    )
    if row.held_out:
        result["held_out"] = stats.aggregate_intervals(ranked[:, T:], o.reps, o.seed)

    continual = {"final performance": final[:, :T], "forgetting": sc.forgetting(row, o.last)}
    for name, values in (("forward transfer", sc.forward_transfer(row)), ("cycle gain", sc.cycle_gain(row))):
        if values is not None:
            continual[name] = values
    result["per_seed"] = {name: values.tolist() for name, values in continual.items()} | {"auc": auc[:, :T].tolist()}
    summaries = {"diagnostics": sc.series_final(row, "diagnostics"), "online": sc.series_mean(row, "online")}
    thin = _thin(len(row.steps), o.max_curve_points)
    series_curves = {
        "diagnostics": _series_curves(
            row, "diagnostics", [n for n in summaries["diagnostics"] if any(p in n for p in DIAGNOSTICS_OVER_TIME)], o
        ),
        "online": _series_curves(row, "online", list(summaries["online"]), o),
    }

    # every mean over seeds of the row in one bootstrap call: each cell is its own stratum, so each gets its own interval
    blocks = {
        "per_task": np.stack([final, auc], axis=1),  # [S, view, task]
        "continual": np.stack([_nanmean_rows(v) for v in continual.values()], axis=1),
        "task_curves": np.moveaxis(row.score[:, thin, :], 1, 2),  # [S, task, evaluation]
    }
    blocks |= {table: np.stack(list(values.values()), axis=1) for table, values in summaries.items() if values}
    blocks |= {f"{table}_curves": curves.pop("values") for table, curves in series_curves.items() if curves}
    means = stats.block_means(blocks, o.reps, o.seed)

    points, intervals = means["per_task"]
    result["per_task"] = {
        task: {view: _triple(points[v, k], intervals[:, v, k]) for v, view in enumerate(("final", "auc"))}
        for k, task in enumerate(row.tasks + row.held_out)
    }
    points, intervals = means["continual"]
    result["continual"] = {name: _triple(points[i], intervals[:, i]) for i, name in enumerate(continual)}
    for table, values in summaries.items():
        points, intervals = means.get(table, (None, None))
        result[table] = {name: _triple(points[i], intervals[:, i]) for i, name in enumerate(values)}

    result["recovery"] = [
        {
            "step": r["step"],
            "kind": r["kind"],
            "detail": r["detail"],
            "task": r["task"],
            "recovered": int(np.isfinite(r["recovery_steps"]).sum()),
            "median_steps": _finite_or_none(float(np.median(r["recovery_steps"]))),
            "steps": [_finite_or_none(float(v)) for v in r["recovery_steps"]],
        }
        for r in sc.recovery(row, o.tolerance)
    ]

    profile, profile_interval = stats.performance_profile(ranked[:, :T], taus, o.reps, o.seed)
    iqm, iqm_interval = stats.iqm_curve(np.moveaxis(row.score[:, thin, :T], 1, 2), o.reps, o.seed)
    task_points, task_intervals = means["task_curves"]
    curves = {
        "profile": [profile.tolist(), profile_interval.tolist()],
        "steps": row.steps[thin].tolist(),
        "iqm": [iqm.tolist(), iqm_interval.tolist()],
        "tasks": {task: [task_points[k].tolist(), task_intervals[:, k].tolist()] for k, task in enumerate(row.tasks + row.held_out)},
    }
    for table, series in series_curves.items():
        curves[table] = {}
        if series:
            points, intervals = means[f"{table}_curves"]
            curves[table] = {"steps": series["steps"]} | {
                n: [points[i].tolist(), intervals[:, i].tolist()] for i, n in enumerate(series["names"])
            }
    result["curves"] = curves
    return result


def _thin(count: int, most: int) -> np.ndarray:
    """At most `most` evenly spread indices of `count` evaluations, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(int))


def _series_curves(row: sc.Row, table: str, names: list[str], o: BoardOptions) -> dict:
    """{steps, names, values [S, name, evaluation]} of the chosen names of a table, thinned; {} if none."""
    if not names:
        return {}
    steps, all_names, values = sc.series(row, table)
    thin = _thin(len(steps), o.max_curve_points)
    picked = values[:, thin][:, :, [all_names.index(n) for n in names]]
    return {"steps": steps[thin].tolist(), "names": names, "values": np.moveaxis(picked, 1, 2)}


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Per seed, the mean over tasks where the metric is defined (nan if nowhere)."""
    counts = (~np.isnan(values)).sum(axis=1)
    return np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), np.nan)


def _triple(point, interval) -> list[float | None]:
    return [_finite_or_none(float(point)), _finite_or_none(float(interval[0])), _finite_or_none(float(interval[1]))]


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


# ---- writing ------------------------------------------------------------------------------------------------
def default_out_dir(entries: list[dict]) -> Path:
    first = entries[0]
    return Path("leaderboards") / first["protocol"] / str(first["size"] or "custom")


def build_board(
    inputs: list[str | Path], out_dir: str | Path | None = None, options: BoardOptions | dict | None = None
) -> tuple[dict, Path]:
    """Collect the inputs, compute the board and write its folder; returns (board, folder).

    `options`: all settings (BoardOptions), or only those given explicitly (a dict of BoardOptions fields): every
    other setting comes from the board.json already in the folder written, else from the defaults. Without `out_dir`,
    one board folder given as the input is rebuilt in place; otherwise the board goes to leaderboards/<protocol>/<size>.
    """
    from cyclic_bench.board import plots
    from cyclic_bench.results import write_text

    entries = collect_entries(inputs)
    if out_dir is None and len(inputs) == 1 and is_board_folder(Path(inputs[0])):
        out_dir = inputs[0]
    out = Path(out_dir) if out_dir is not None else default_out_dir(entries)
    if not isinstance(options, BoardOptions):
        given, stored = options or {}, stored_options(out)
        labels = {entry["label"] for entry in entries}
        require(
            "baseline" in given or stored.get("baseline") in (None, *labels),
            f"{out / 'board.json'} sets baseline {stored.get('baseline')!r}, which is not among the entries; give --baseline",
        )
        options = BoardOptions(**(stored | given))
    board = compute_board(entries, options)
    (out / "entries").mkdir(parents=True, exist_ok=True)
    board["plots"] = plots.write_plots(board, out / "plots")
    for name, text in board_texts(board, entries).items():
        write_text(out / name, text)
    return board, out


def board_texts(board: dict, entries: list[dict]) -> dict[str, str]:
    """Every text file of a board folder but the plots, {relative path: content}; `board` has its plots listed."""
    from cyclic_bench.board import render

    board["inputs"] = sorted(f"entries/{e['label']}.json" for e in entries)
    texts = {f"entries/{entry['label']}.json": dumps_entry(entry) for entry in entries}
    texts["scores.csv"] = scores_csv(board)
    texts["board.json"] = json.dumps(_rounded(board), indent=2, sort_keys=True) + "\n"
    texts["README.md"] = render.markdown(board)
    texts["index.html"] = render.html(board)
    return texts


def scores_csv(board: dict) -> str:
    """Per row, seed and trained task: final score, AUC and the continual metrics (empty where undefined)."""
    buffer = io.StringIO()
    tasks = board["stream"]["tasks"]
    metrics = ["final performance", "auc", "forgetting", "forward transfer", "cycle gain"]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "seed", "task", *(m.replace(" ", "_") for m in metrics)])
    for row in sorted(board["rows"], key=lambda r: r["label"]):
        for i, seed in enumerate(row["seed_ids"]):
            for k, task in enumerate(tasks):
                values = [row["per_seed"].get(m, [[None] * len(tasks)] * len(row["seed_ids"]))[i][k] for m in metrics]
                writer.writerow([row["label"], seed, task, *("" if v is None or not np.isfinite(v) else repr(float(v)) for v in values)])
    return buffer.getvalue()


def _rounded(tree, digits: int = 6):
    """board.json with floats to 6 significant digits (readable; the entries keep full precision)."""
    if isinstance(tree, float):
        return float(f"{tree:.{digits}g}") if np.isfinite(tree) else None
    if isinstance(tree, dict):
        return {k: _rounded(v, digits) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_rounded(v, digits) for v in tree]
    return tree


def board_summary(board: dict) -> str:
    """A short plain-text ranking for the terminal."""
    from cyclic_bench.board.render import FEW, SCORE_NAMES, interval_text

    score = board["options"]["score"]
    lines = [f"{'rank':>4}  {'method':<24} {'seeds':>6}  {'IQM ' + SCORE_NAMES[score] + ' [95% CI]':<28} P(> {board['baseline']})"]
    for row in board["rows"]:
        seeds = f"{row['seeds']}{FEW if row['few_seeds'] else ''}"
        improvement = "-" if row["improvement"] is None else interval_text(row["improvement"])
        lines.append(f"{row['rank']:>4}  {row['label']:<24} {seeds:>6}  {interval_text(row[score]['IQM']):<28} {improvement}")
    if any(r["few_seeds"] for r in board["rows"]):
        lines.append(f"{FEW} fewer than {board['options']['target_seeds']} seeds: wide intervals, ranking not settled")
    if board["plumbing"]:
        lines.insert(0, f"size {board['size']} is {board['plumbing']}.")
    settings = " ".join(changed_options(BoardOptions(**board["options"])))
    lines.append(f"settings (kept in board.json; a rebuild of the folder reuses them): {settings or 'the defaults'}")
    return "\n".join(lines)
