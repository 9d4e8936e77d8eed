"""Leaderboard entries: one method's results on one protocol, as plain JSON that anyone can check and re-derive.

An entry is built from one or more run directories of the same configuration (shards of a sweep with disjoint
seeds are merged) plus, optionally, single-task reference runs of the same method (for forward transfer). It
holds the per-seed, per-evaluation, per-task normalised scores and returns, the diagnostics and online tables,
perturbation events, the resolved configuration, and every shard's package versions and code revision.

Entries from strangers are untrusted input: `load_entry` reads plain JSON only (no pickles, nothing evaluated,
NaN and Infinity refused), checks every field's type and shape by hand, rebuilds the stream from the entry's own
configuration and refuses an entry whose task set, evaluation steps, seeds or scores disagree with it (every
score must equal the protocol's normalisation of its return). Each refusal is one line naming the entry and the
field.

Layout (format_version 1); arrays are indexed [seed][evaluation step][task or name], seeds in `seeds` order,
`null` only where a failed seed has no evaluation any more:

    format, format_version, label, method, protocol, size
    stream       {name, tasks, held_out_tasks, steps_per_task, cycles, eval_every, eval_episodes, total_steps}
    config       the resolved run configuration without seed, device and bookkeeping keys
    seeds        global seed ids
    failures     [{seed, step, reason}]
    shards       [{seeds, code_revision, packages, python, platform, device, device_name, wall_seconds}]
    evaluations  {steps, tasks, score, return}        tasks = stream tasks, then held-out tasks; streams scored on their
                                                      training windows (bandits) score only the trained task, from the
                                                      online table (the protocol's online_score)
    diagnostics  {steps, names, values}               the method's plasticity diagnostics
    online       {steps, names, values}               training-time quantities per evaluation window
    events       [{step, kind, task, detail}]         perturbation events (the configuration's, as the run recorded them)
    reference    {task: {seeds, steps, score, return}} single-task runs of the same method, [seed][step] (may be empty)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from cyclic_bench.errors import ConfigError, require
from cyclic_bench.events import parse_events
from cyclic_bench.registry import get_protocol, method_label

FORMAT = "cyclic-bench-entry"
FORMAT_VERSION = 1
RESULT_NEUTRAL = (
    "seeds",
    "first_seed",
    "device",
    "progress",
    "checkpoint_every",
    "env_workers",
    "capture",
    "resume",
)  # keys that do not change results
SCORE_LIMIT = 100.0  # |normalised score| above this (100x the reference) is not an agent's result but a broken entry
MAX_ENTRY_BYTES = 64 * 2**20
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,-]{0,79}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:/+-]{1,80}$")  # diagnostic and online quantity names
SERIES = ("diagnostics", "online")
TOP_KEYS = {
    "format": str,
    "format_version": int,
    "label": str,
    "method": str,
    "protocol": str,
    "size": (str, type(None)),
    "stream": dict,
    "config": dict,
    "seeds": list,
    "failures": list,
    "shards": list,
    "evaluations": dict,
    "diagnostics": dict,
    "online": dict,
    "events": list,
    "reference": dict,
}
STREAM_KEYS = ("name", "tasks", "held_out_tasks", "steps_per_task", "cycles", "eval_every", "eval_episodes", "total_steps")
SHARD_KEYS = ("seeds", "code_revision", "packages", "python", "platform", "device", "device_name", "wall_seconds")


# ---- streams ------------------------------------------------------------------------------------------------
def stream_of(config: dict):
    """Build the stream a run configuration describes, with its perturbation events (no environment is created)."""
    protocol = config.get("protocol")
    require(isinstance(protocol, dict) and isinstance(protocol.get("name"), str), "the configuration has no protocol name")
    family = get_protocol(protocol["name"])
    try:
        stream = family.build(family.config(**protocol))
        events = parse_events(list(config.get("events") or []), stream.total_steps)
    except TypeError as error:
        raise ConfigError(f"protocol {protocol['name']}: {error}") from None
    return dataclasses.replace(stream, events=tuple(stream.events) + events) if events else stream


def describe_stream(stream) -> dict:
    return {
        "name": stream.name,
        "tasks": [t.name for t in stream.tasks],
        "held_out_tasks": [t.name for t in getattr(stream, "held_out", ())],
        "steps_per_task": stream.steps_per_task,
        "cycles": stream.cycles,
        "eval_every": stream.eval_every,
        "eval_episodes": stream.eval_episodes,
        "total_steps": stream.total_steps,
    }


def eval_steps(stream: dict, total: int | None = None) -> list[int]:
    """Every evaluation step of a stream: 0, eval_every, ..., total_steps; streams scored on their training windows
    (no evaluation episodes) have no evaluation at step 0."""
    first = 0 if stream["eval_episodes"] > 0 else stream["eval_every"]
    return list(range(first, (total or stream["total_steps"]) + 1, stream["eval_every"]))


# ---- run directories ----------------------------------------------------------------------------------------
class RunRecord:
    """What a finished run directory holds, read as plain data."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        require((self.path / "config.yaml").is_file(), f"{self.path} is not a run directory: it has no config.yaml")
        require(
            (self.path / "summary.json").is_file(),
            f"{self.path} is an unfinished run (no summary.json); finish it with `cyclic-bench run resume={self.path}`",
        )
        self.config = OmegaConf.to_container(OmegaConf.load(self.path / "config.yaml"), resolve=True)
        self.meta = _read_json(self.path / "meta.json", default={})
        self.summary = _read_json(self.path / "summary.json", default={})
        self.stream = describe_stream(stream_of(self.config))
        self.seeds = list(range(self.config["first_seed"], self.config["first_seed"] + self.config["seeds"]))
        self.tables = {
            name: _read_csv(self.path / f"{name}.csv") for name in ("evaluations", "diagnostics", "online", "failures", "events")
        }
        steps = {int(float(r["step"])) for r in self.tables["evaluations"]}
        every_seed_failed = {int(r["seed"]) for r in self.tables["failures"]} >= set(self.seeds)  # such a run stops early
        require(
            max(steps, default=-1) == self.stream["total_steps"] or every_seed_failed,
            f"{self.path} has no evaluation at the end of its stream (step {self.stream['total_steps']}); resume it first",
        )

    @property
    def result_config(self) -> dict:
        """The configuration without the keys that do not change results (seeds, device, bookkeeping)."""
        return {k: v for k, v in self.config.items() if k not in RESULT_NEUTRAL}

    @property
    def is_single_task(self) -> bool:
        return len(self.stream["tasks"]) == 1 and self.stream["cycles"] == 1


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings where two configuration trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in _differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _protocol_without_stream_shape(config: dict) -> dict:
    return {k: v for k, v in config["protocol"].items() if k not in ("tasks", "cycles")}


def group_runs(paths: list[str | Path]) -> list[tuple[list[RunRecord], list[RunRecord]]]:
    """Split run directories into board rows: (shards of one configuration, its single-task reference runs).

    Runs with the same configuration (seeds, device and bookkeeping aside) are shards of one row. A single-task,
    single-cycle run is a reference of the row with the same method and protocol settings whose stream has its task;
    if no row takes it, it is a row of its own.
    """
    runs = [RunRecord(p) for p in paths]
    require(len({r.path.resolve() for r in runs}) == len(runs), "a run directory is given twice")
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[json.dumps(run.result_config, sort_keys=True)].append(run)
    rows, references = [], []
    for shards in groups.values():
        (references if shards[0].is_single_task else rows).append(shards)
    taken: list[tuple[list[RunRecord], list[RunRecord]]] = [(shards, []) for shards in rows]
    for shards in references:
        ref = shards[0]
        owners = [
            refs
            for main, refs in taken
            if main[0].config["method"] == ref.config["method"]
            and _protocol_without_stream_shape(main[0].config) == _protocol_without_stream_shape(ref.config)
            and ref.stream["tasks"][0] in main[0].stream["tasks"]
            and ref.stream["steps_per_task"] == main[0].stream["steps_per_task"]
        ]
        if owners:
            for refs in owners:
                refs.extend(shards)
        else:
            taken.append((shards, []))
    return taken


# ---- building an entry --------------------------------------------------------------------------------------
def entry_from_runs(shards: list[RunRecord], references: list[RunRecord] = (), label: str | None = None) -> dict:
    """Merge the shards of one configuration (disjoint seeds) into an entry; references give single-task AUCs."""
    first = shards[0]
    for run in shards[1:]:
        changed = _differences(first.result_config, run.result_config)
        require(not changed, f"{run.path} is not a shard of {first.path}: their configurations differ in {', '.join(changed)}")
    seeds = _disjoint_seeds(shards)
    stream = first.stream
    label = label or method_label(first.config["method"]["name"], first.config["method"].get("base"))
    require(bool(LABEL_PATTERN.match(label)), f"label {label!r} is not allowed: use letters, digits and _ . + = , - (at most 80)")
    entry = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "label": label,
        "method": first.config["method"]["name"],
        "protocol": first.config["protocol"]["name"],
        "size": first.config["protocol"].get("size"),
        "stream": stream,
        "config": first.result_config,
        "seeds": seeds,
        "failures": sorted(
            (
                {"seed": int(r["seed"]), "step": int(float(r["step"])), "reason": r["reason"]}
                for run in shards
                for r in run.tables["failures"]
            ),
            key=lambda f: (f["seed"], f["step"]),
        ),
        "shards": [_shard_record(run) for run in sorted(shards, key=lambda r: r.seeds[0])],
        "evaluations": _evaluations(shards, seeds, stream),
        "diagnostics": _series(shards, seeds, "diagnostics"),
        "online": _series(shards, seeds, "online"),
        "events": _events(shards),
        "reference": _references(references, stream),
    }
    return validate_entry(json.loads(dumps_entry(entry)), label)


def _disjoint_seeds(runs: list[RunRecord]) -> list[int]:
    owner: dict[int, Path] = {}
    for run in runs:
        for seed in run.seeds:
            require(seed not in owner, f"seed {seed} is in both {owner.get(seed)} and {run.path}: shards must have disjoint seeds")
            owner[seed] = run.path
    return sorted(owner)


def _shard_record(run: RunRecord) -> dict:
    return {
        "seeds": run.seeds,
        "code_revision": str(run.meta.get("code_revision", "unknown")),
        "packages": {str(k): (None if v is None else str(v)) for k, v in dict(run.meta.get("packages", {})).items()},
        "python": str(run.meta.get("python", "unknown")),
        "platform": str(run.meta.get("platform", "unknown")),
        "device": str(run.meta.get("device", "unknown")),
        "device_name": str(run.meta.get("device_name", "unknown")),
        "wall_seconds": float(run.summary.get("wall_seconds", 0.0)),
    }


def _evaluations(runs: list[RunRecord], seeds: list[int], stream: dict) -> dict:
    steps = eval_steps(stream)
    tasks = stream["tasks"] + stream["held_out_tasks"]
    index = {name: {v: i for i, v in enumerate(values)} for name, values in (("seed", seeds), ("step", steps), ("task", tasks))}
    score = [[[None] * len(tasks) for _ in steps] for _ in seeds]
    returns = [[[None] * len(tasks) for _ in steps] for _ in seeds]
    for run in runs:
        for r in run.tables["evaluations"]:
            where = f"{run.path}/evaluations.csv"
            seed, step, task = int(r["seed"]), int(float(r["step"])), r["eval_task"]
            require(seed in index["seed"] and step in index["step"] and task in index["task"], f"{where}: unexpected row {dict(r)}")
            i, j, k = index["seed"][seed], index["step"][step], index["task"][task]
            require(score[i][j][k] is None, f"{where}: seed {seed}, step {step}, task {task} appears twice")
            score[i][j][k], returns[i][j][k] = float(r["score"]), float(r["return"])
    return {"steps": steps, "tasks": tasks, "score": score, "return": returns}


def _series(runs: list[RunRecord], seeds: list[int], table: str) -> dict:
    """A (seed, step, name, value) table as arrays [seed][step][name]; null where a value was not recorded."""
    rows = [r for run in runs for r in run.tables[table]]
    steps = sorted({int(float(r["step"])) for r in rows})
    names = sorted({r["name"] for r in rows})
    seed_index, step_index, name_index = ({v: i for i, v in enumerate(x)} for x in (seeds, steps, names))
    values = [[[None] * len(names) for _ in steps] for _ in seeds]
    for r in rows:
        value = float(r["value"])
        if math.isfinite(value):
            values[seed_index[int(r["seed"])]][step_index[int(float(r["step"]))]][name_index[r["name"]]] = value
    return {"steps": steps, "names": names, "values": values}


def _events(runs: list[RunRecord]) -> list[dict]:
    """Perturbation events; every shard of a configuration has the same schedule, so the first shard's are taken."""
    return [
        {"step": int(float(r["step"])), "kind": r["kind"], "task": r.get("task") or "", "detail": r.get("detail") or ""}
        for r in runs[0].tables["events"]
    ]


def _references(references: list[RunRecord], stream: dict) -> dict:
    """Per task: the single-task reference runs' score curves on that task, [seed][evaluation step]."""
    result: dict[str, dict] = {}
    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    for run in references:
        by_task[run.stream["tasks"][0]].append(run)
    for task, runs in sorted(by_task.items()):
        seeds = _disjoint_seeds(runs)
        evaluations = _evaluations(runs, seeds, runs[0].stream)
        column = evaluations["tasks"].index(task)
        result[task] = {
            "seeds": seeds,
            "steps": evaluations["steps"],
            "score": [[row[column] for row in per_seed] for per_seed in evaluations["score"]],
            "return": [[row[column] for row in per_seed] for per_seed in evaluations["return"]],
        }
    return result


def dumps_entry(entry: dict) -> str:
    """JSON text of an entry: one top-level key per line (readable diffs), arrays compact, keys sorted."""
    lines = [
        f"  {json.dumps(key)}: {json.dumps(entry[key], sort_keys=True, separators=(',', ':'), allow_nan=False)}" for key in sorted(entry)
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_entry(path: str | Path, entry: dict) -> Path:
    from cyclic_bench.results import write_text

    path = Path(path)
    write_text(path, dumps_entry(entry))
    return path


# ---- reading and checking an entry (untrusted input) --------------------------------------------------------
def load_entry(path: str | Path) -> dict:
    """Read and validate an entry file; anything malformed or inconsistent raises ConfigError (one line)."""
    path = Path(path)
    require(path.is_file(), f"entry {path} does not exist")
    size = path.stat().st_size
    require(size <= MAX_ENTRY_BYTES, f"entry {path} is {size} bytes; entries are at most {MAX_ENTRY_BYTES}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"entry {path} is not valid JSON: {str(error).splitlines()[0]}") from None
    return validate_entry(data, str(path))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def check(self, condition: bool, where: str, message: str) -> None:
        if not condition:
            raise ConfigError(f"entry {self.source}: {where} {message}")

    def of_type(self, value, kind, where: str):
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        self.check(ok, where, f"must be {_kind_name(kind)}, not {type(value).__name__}")
        return value

    def number(self, value, where: str, nullable: bool = False) -> float | None:
        if value is None and nullable:
            return None
        self.check(isinstance(value, int | float) and not isinstance(value, bool), where, "must be a number")
        self.check(math.isfinite(value), where, "must be finite")
        return float(value)

    def names(self, value, where: str, unique: bool = True) -> list[str]:
        self.of_type(value, list, where)
        for i, name in enumerate(value):
            self.of_type(name, str, f"{where}[{i}]")
        if unique:
            self.check(len(set(value)) == len(value), where, f"names something twice: {value}")
        return value

    def ints(self, value, where: str, unique: bool = True) -> list[int]:
        self.of_type(value, list, where)
        for i, v in enumerate(value):
            self.of_type(v, int, f"{where}[{i}]")
        if unique:
            duplicated = sorted({v for v in value if value.count(v) > 1})
            self.check(not duplicated, where, f"repeats {duplicated}")
        return value

    def cube(self, value, shape: tuple[int, int, int], where: str) -> list:
        """A [a][b][c] nested list of numbers or nulls."""
        self.of_type(value, list, where)
        self.check(len(value) == shape[0], where, f"has {len(value)} rows; expected {shape[0]}")
        for i, plane in enumerate(value):
            self.of_type(plane, list, f"{where}[{i}]")
            self.check(len(plane) == shape[1], f"{where}[{i}]", f"has {len(plane)} rows; expected {shape[1]}")
            for j, row in enumerate(plane):
                self.of_type(row, list, f"{where}[{i}][{j}]")
                self.check(len(row) == shape[2], f"{where}[{i}][{j}]", f"has {len(row)} values; expected {shape[2]}")
                for k, v in enumerate(row):
                    self.number(v, f"{where}[{i}][{j}][{k}]", nullable=True)
        return value


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}.get(k, "null") for k in kinds
    )


def validate_entry(data: Any, source: str) -> dict:
    """Check an entry's structure and its consistency with the protocol it names; returns it unchanged."""
    c = _Checker(source)
    c.of_type(data, dict, "the entry")
    missing, unknown = sorted(set(TOP_KEYS) - set(data)), sorted(set(data) - set(TOP_KEYS))
    c.check(not missing, "the entry", f"lacks {', '.join(missing)}")
    c.check(not unknown, "the entry", f"has unknown fields {', '.join(unknown)}")
    for key, kind in TOP_KEYS.items():
        c.of_type(data[key], kind, key)
    c.check(data["format"] == FORMAT, "format", f"is {data['format']!r}; expected {FORMAT!r}")
    c.check(
        data["format_version"] == FORMAT_VERSION, "format_version", f"is {data['format_version']}; this cyclic-bench reads {FORMAT_VERSION}"
    )
    c.check(
        bool(LABEL_PATTERN.match(data["label"])), "label", f"{data['label']!r} is not allowed: letters, digits and _ . + = , - (at most 80)"
    )

    config = data["config"]
    c.of_type(config.get("method"), dict, "config.method")
    c.of_type(config.get("protocol"), dict, "config.protocol")
    c.check(config["method"].get("name") == data["method"], "method", f"{data['method']!r} differs from config.method.name")
    c.check(config["protocol"].get("name") == data["protocol"], "protocol", f"{data['protocol']!r} differs from config.protocol.name")
    c.check(config["protocol"].get("size") == data["size"], "size", f"{data['size']!r} differs from config.protocol.size")
    try:
        stream = stream_of(config)
    except ConfigError as error:
        raise ConfigError(f"entry {source}: config.protocol cannot be built: {error}") from None
    expected = describe_stream(stream)
    _check_stream(c, data["stream"], expected)

    seeds = c.ints(data["seeds"], "seeds")
    c.check(len(seeds) > 0 and all(s >= 0 for s in seeds), "seeds", "must list at least one seed id, all >= 0")
    failed_at = _check_failures(c, data["failures"], seeds, expected["total_steps"])
    _check_shards(c, data["shards"], seeds)
    for table in SERIES:
        _check_series(c, data[table], table, len(seeds), expected["total_steps"])
    _check_evaluations(c, data, seeds, expected, stream, failed_at)
    _check_events(c, data["events"], stream)
    _check_reference(c, data["reference"], expected, stream)
    return data


def _check_stream(c: _Checker, stream: dict, expected: dict) -> None:
    c.check(sorted(stream) == sorted(STREAM_KEYS), "stream", f"must have exactly the fields {', '.join(STREAM_KEYS)}")
    for key in STREAM_KEYS:
        c.check(stream[key] == expected[key], f"stream.{key}", f"is {stream[key]!r}, but the entry's configuration gives {expected[key]!r}")


def _check_failures(c: _Checker, failures: list, seeds: list[int], total_steps: int) -> dict[int, int]:
    failed_at: dict[int, int] = {}
    for i, failure in enumerate(failures):
        where = f"failures[{i}]"
        c.of_type(failure, dict, where)
        c.check(sorted(failure) == ["reason", "seed", "step"], where, "must have exactly seed, step and reason")
        c.check(failure["seed"] in seeds, f"{where}.seed", f"{failure['seed']!r} is not one of the entry's seeds")
        c.of_type(failure["step"], int, f"{where}.step")
        c.check(0 <= failure["step"] <= total_steps, f"{where}.step", f"must be within the stream (0..{total_steps})")
        c.of_type(failure["reason"], str, f"{where}.reason")
        failed_at[failure["seed"]] = min(failure["step"], failed_at.get(failure["seed"], total_steps))
    return failed_at


def _check_shards(c: _Checker, shards: list, seeds: list[int]) -> None:
    c.check(len(shards) > 0, "shards", "must list at least one shard")
    covered: list[int] = []
    for i, shard in enumerate(shards):
        where = f"shards[{i}]"
        c.of_type(shard, dict, where)
        c.check(sorted(shard) == sorted(SHARD_KEYS), where, f"must have exactly the fields {', '.join(SHARD_KEYS)}")
        covered += c.ints(shard["seeds"], f"{where}.seeds")
        for key in ("code_revision", "python", "platform", "device", "device_name"):
            c.of_type(shard[key], str, f"{where}.{key}")
        c.of_type(shard["packages"], dict, f"{where}.packages")
        for name, version in shard["packages"].items():
            c.check(version is None or isinstance(version, str), f"{where}.packages.{name}", "must be a string or null")
        c.number(shard["wall_seconds"], f"{where}.wall_seconds")
    c.check(sorted(covered) == sorted(seeds), "shards", "must cover the entry's seeds exactly once")


def _check_evaluations(c: _Checker, data: dict, seeds: list[int], stream: dict, built, failed_at: dict[int, int]) -> None:
    evaluations = data["evaluations"]
    c.check(sorted(evaluations) == ["return", "score", "steps", "tasks"], "evaluations", "must have exactly steps, tasks, score, return")
    steps = c.ints(evaluations["steps"], "evaluations.steps")
    expected_steps = eval_steps(stream)
    c.check(
        steps == expected_steps, "evaluations.steps", f"must be {expected_steps[0]}, {stream['eval_every']}, ..., {stream['total_steps']}"
    )
    tasks = c.names(evaluations["tasks"], "evaluations.tasks")
    expected_tasks = stream["tasks"] + stream["held_out_tasks"]
    c.check(tasks == expected_tasks, "evaluations.tasks", f"is {tasks}; the protocol evaluates {expected_tasks}")
    shape = (len(seeds), len(steps), len(tasks))
    score = c.cube(evaluations["score"], shape, "evaluations.score")
    returns = c.cube(evaluations["return"], shape, "evaluations.return")
    eval_tasks = list(built.tasks) + list(getattr(built, "held_out", ()))
    windows = stream["eval_episodes"] == 0  # scored on training windows: only the task trained in the window has a score
    online = _online_lookup(data["online"])
    for i, seed in enumerate(seeds):
        for j, step in enumerate(steps):
            trained = built.position(step - 1)[1] if step > 0 else -1
            for k, task in enumerate(eval_tasks):
                where = f"evaluations.score[{i}][{j}][{k}] (seed {seed}, step {step}, {task.name})"
                s, r = score[i][j][k], returns[i][j][k]
                if windows and k != trained:
                    c.check(s is None and r is None, where, "must be null: the task was not trained in that window")
                    continue
                if s is None or r is None:
                    c.check(s is None and r is None, where, "and its return must both be null or both be numbers")
                    c.check(seed in failed_at and step >= failed_at[seed], where, "is missing, but the seed had not failed by then")
                    continue
                c.check(abs(s) <= SCORE_LIMIT, where, f"is {s:g}, outside [-{SCORE_LIMIT:g}, {SCORE_LIMIT:g}]")
                if windows:
                    means = online.get((i, step), {})
                    try:
                        expected = float(task.online_score({name: np.array([v]) for name, v in means.items()})[0])
                    except (KeyError, ValueError, IndexError):
                        c.check(False, where, "has no online values (online table) to re-derive it from")
                    c.check(
                        math.isclose(s, expected, rel_tol=1e-6, abs_tol=1e-9), where, f"is {s:g}, but its online values give {expected:g}"
                    )
                else:
                    expected = float(task.normalize(r))
                    c.check(
                        math.isclose(s, expected, rel_tol=1e-6, abs_tol=1e-9),
                        where,
                        f"is {s:g}, but the protocol normalises its return {r:g} to {expected:g}",
                    )


def _online_lookup(online: dict) -> dict[tuple[int, int], dict[str, float]]:
    """(seed row, step) -> {name: value} of the online table (already shape-checked)."""
    result: dict[tuple[int, int], dict[str, float]] = {}
    for i, per_seed in enumerate(online.get("values", [])):
        for j, row in enumerate(per_seed):
            result[(i, online["steps"][j])] = {n: v for n, v in zip(online["names"], row, strict=True) if v is not None}
    return result


def _check_series(c: _Checker, series: dict, table: str, n_seeds: int, total_steps: int) -> None:
    c.check(sorted(series) == ["names", "steps", "values"], table, "must have exactly steps, names, values")
    steps = c.ints(series["steps"], f"{table}.steps")
    c.check(
        steps == sorted(steps) and all(0 <= s <= total_steps for s in steps), f"{table}.steps", f"must increase within 0..{total_steps}"
    )
    names = c.names(series["names"], f"{table}.names")
    for i, name in enumerate(names):
        c.check(
            bool(NAME_PATTERN.match(name)),
            f"{table}.names[{i}]",
            f"{name[:40]!r} is not allowed: letters, digits and _ . : / + - (at most 80)",
        )
    c.cube(series["values"], (n_seeds, len(steps), len(names)), f"{table}.values")


def _check_events(c: _Checker, events: list, built) -> None:
    expected = [(e.step, e.kind) for e in built.events]
    for i, event in enumerate(events):
        where = f"events[{i}]"
        c.of_type(event, dict, where)
        c.check(sorted(event) == ["detail", "kind", "step", "task"], where, "must have exactly step, kind, task and detail")
        c.of_type(event["step"], int, f"{where}.step")
        c.check(isinstance(event["kind"], str) and 0 < len(event["kind"]) <= 80, f"{where}.kind", "must be a string of 1 to 80 characters")
        c.check(isinstance(event["task"], str) and len(event["task"]) <= 80, f"{where}.task", "must be a string of at most 80 characters")
        c.check(
            isinstance(event["detail"], str) and len(event["detail"]) <= 200,
            f"{where}.detail",
            "must be a string of at most 200 characters",
        )
    recorded = [(e["step"], e["kind"]) for e in events]
    c.check(recorded == expected, "events", f"are {recorded}, but the entry's configuration schedules {expected} (step, kind)")


def _check_reference(c: _Checker, reference: dict, stream: dict, built) -> None:
    tasks = {task.name: task for task in built.tasks}
    steps_expected = eval_steps(stream, total=stream["steps_per_task"])
    for name, ref in reference.items():
        where = f"reference.{name}"
        c.check(name in tasks, where, f"names a task the stream does not train ({', '.join(tasks)})")
        c.check(stream["eval_episodes"] > 0, where, "is not allowed: forward transfer needs streams with evaluation episodes")
        c.of_type(ref, dict, where)
        c.check(sorted(ref) == ["return", "score", "seeds", "steps"], where, "must have exactly seeds, steps, score and return")
        seeds = c.ints(ref["seeds"], f"{where}.seeds")
        c.check(len(seeds) > 0, f"{where}.seeds", "must list at least one seed")
        c.check(c.ints(ref["steps"], f"{where}.steps") == steps_expected, f"{where}.steps", f"must be {steps_expected}")
        shape = (1, len(seeds), len(steps_expected))
        score = c.cube([ref["score"]], shape, f"{where}.score")[0]
        returns = c.cube([ref["return"]], shape, f"{where}.return")[0]
        for i in range(len(seeds)):
            for j in range(len(steps_expected)):
                s, r = score[i][j], returns[i][j]
                here = f"{where}.score[{i}][{j}]"
                c.check(s is not None and r is not None, here, "must be a number (reference runs must not fail)")
                normalised = float(tasks[name].normalize(r))
                c.check(
                    math.isclose(s, normalised, rel_tol=1e-6, abs_tol=1e-9),
                    here,
                    f"is {s:g}, but the protocol normalises {r:g} to {normalised:g}",
                )
