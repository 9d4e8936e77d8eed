"""The `cyclic-bench` command.

cyclic-bench quickstart                 TD3 and Reset on a small cyclic MuJoCo stream, then a result table
cyclic-bench run [key=value ...]        one run (hydra overrides: method=, protocol=, seeds=, device=, ...)
cyclic-bench run -m seeds=10 first_seed=0,10,20   a hydra multirun (sweep) over the listed values
cyclic-bench run resume=RUN_DIR         continue a killed run from its last checkpoint
cyclic-bench random-returns protocol=NAME [episodes=N]   measure the random-policy returns used to normalise
cyclic-bench list                       the registered learners, interventions (and the learners each runs on), methods, protocols
cyclic-bench board build INPUTS...      a leaderboard (rliable statistics, plots, README.md, index.html) from runs or entries
cyclic-bench board submit RUN_DIRS...   a leaderboard entry (plain JSON) from a method's run directories (shards merged)
cyclic-bench board reproduce ENTRY      re-run seeds of an entry from its recorded configuration and compare

A single run is checked in full (every value, the folder's lock, the method against the stream) before its folder
is created; a multirun checks every job's configuration before hydra starts. Errors are one line on stderr: exit
code 2 for a bad value or input file, 1 when a run's files cannot be written (the line says which checkpoint is safe).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from cyclic_bench.errors import ConfigError, StorageError, require

RUN_DIR = "runs/${protocol.name}-${protocol.size}/${method_label:}/${now:%Y%m%d-%H%M%S-%f}"  # method_label: redo, redo-sac
HYDRA_DEFAULTS = {
    "hydra.run.dir": RUN_DIR,
    "hydra.sweep.dir": "runs/sweeps/${now:%Y%m%d-%H%M%S}",
    "hydra.sweep.subdir": "${hydra.job.num}",
    "hydra.output_subdir": "null",
    "hydra/job_logging": "none",
    "hydra/hydra_logging": "none",
}
QUICKSTART_METHODS = ("td3", "reset_switch")
QUICKSTART_NETWORKS = ["method.actor_hidden=[64,64]", "method.critic_hidden=[64,64]"]  # minutes, not hours, on 2 CPU cores


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="cyclic-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    quick = commands.add_parser("quickstart", help="TD3 and Reset on a small cyclic MuJoCo stream, then a result table")
    quick.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    quick.add_argument("--size", default="demo", help="cyclic_mujoco size (default demo)")
    quick.add_argument("--out", default="runs/quickstart", help="where the runs go (default runs/quickstart)")
    commands.add_parser("run", help="one run; arguments are hydra overrides", add_help=False)
    commands.add_parser("random-returns", help="measure random-policy returns of a protocol's tasks", add_help=False)
    commands.add_parser("list", help="registered learners, interventions, methods and protocols")
    add_board_parser(commands)
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "run":
            return run_command(rest)
        if args.command == "random-returns":
            return random_returns_command(rest)
        if rest:
            raise ConfigError(f"unrecognised arguments: {' '.join(rest)}")
        if args.command == "quickstart":
            return quickstart(args.seeds, args.size, Path(args.out))
        if args.command == "board":
            return board_command(args)
        return list_command()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except StorageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_command(overrides: list[str]) -> int:
    from cyclic_bench.config import plan_run, sweep_jobs
    from cyclic_bench.registry import resolve_method_overrides
    from cyclic_bench.run import check_run, resume, train

    settings = _typed_settings([o for o in overrides if not o.startswith(("hydra", "-"))])
    if "resume" in settings:
        others = {k: v for k, v in settings.items() if k != "resume"}
        summary = resume(str(settings["resume"]), **others)
        _print_finished([summary], [Path(str(settings["resume"]))])
        return 0
    flags = [o for o in overrides if o.startswith("-")]  # hydra's argparse wants its flags before the overrides
    plain = resolve_method_overrides([o for o in overrides if not o.startswith("-")])  # method.base -> the pair's config node
    if not flags:  # one run: checked in full and started here, so a refusal leaves no folder behind
        config, run_dir = compose_run(plain)
        summary = train(config, run_dir)
        _print_finished([summary], [run_dir])
        return 0
    if any(o in ("-m", "--multirun") for o in flags):
        for job in sweep_jobs(plain):
            check_run(compose_config(job))  # a bad job is one line before hydra starts any, and makes no folder
    else:
        plan_run(compose_config(plain))  # hydra only prints (--cfg, --help, ...): the values are still checked
    hydra_args = [f"{k}={v}" for k, v in HYDRA_DEFAULTS.items() if not any(o.startswith(k + "=") for o in plain)]
    sys.argv = ["cyclic-bench run", *flags, *hydra_args, *plain]
    _hydra_run()
    return 0


def _typed_settings(overrides: list[str]) -> dict:
    """key -> value of plain `key=value` overrides, values typed as hydra reads them (true, 2, 1e-3, [1,2])."""
    parsed = [_parse(o) for o in overrides if "=" in o]
    return {o.key_or_group: o.value() for o in parsed if not o.is_sweep_override()}


def _hydra_run() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from cyclic_bench.config import register_run_config
    from cyclic_bench.run import train

    register_run_config()

    @hydra.main(config_path=None, config_name="run", version_base=None)
    def task(config) -> None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            summary = train(config, run_dir)
        except (ConfigError, StorageError) as error:
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()  # the empty folder hydra made for this job: a refused job leaves nothing behind
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2 if isinstance(error, ConfigError) else 1) from None
        _print_finished([summary], [run_dir])

    task()


def compose_run(overrides: list[str]):
    """The configuration of one run and its folder (`hydra.run.dir`, by default runs/<protocol>-<size>/<method>/<time>)."""
    from omegaconf import open_dict

    defaults = [] if any(o.startswith("hydra.run.dir=") for o in overrides) else [f"hydra.run.dir={RUN_DIR}"]
    config = compose_config([*defaults, *overrides], with_hydra=True)
    run_dir = Path(config.hydra.run.dir)
    with open_dict(config):
        del config["hydra"]
    return config, run_dir


def compose_config(overrides: list[str], with_hydra: bool = False):
    """The run configuration for `overrides` (with hydra's own node if asked); bad names or values raise ConfigError (one line)."""
    from hydra import compose, initialize
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from cyclic_bench.config import override_error, register_run_config
    from cyclic_bench.registry import get_protocol, resolve_method_overrides

    register_run_config()
    plain = [o for o in overrides if not o.startswith("-")]
    parsed = [_parse(o) for o in plain]
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    require(not sweeps, f"{sweeps[0] if sweeps else ''} gives several values: run a sweep with -m (multirun), or give one value")
    for o in parsed:
        if o.key_or_group == "protocol":
            get_protocol(o.get_value_element_as_str())
    plain = resolve_method_overrides(plain)  # checks method names and settings; method.base picks the pair's config node
    single = [o for o in plain if with_hydra or not o.startswith("hydra")]
    try:
        with initialize(version_base=None, config_path=None):
            return compose(config_name="run", overrides=single, return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(override_error(plain) or str(error).strip().splitlines()[0]) from None


def _parse(override: str):
    """One hydra override, parsed; ConfigError naming it if hydra cannot read it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(override)
    except HydraException as error:
        raise ConfigError(f"{override} cannot be read as key=value ({str(error).strip().splitlines()[0]})") from None


def quickstart(seeds: int, size: str, out: Path) -> int:
    """Train each quick-start method on `cyclic_mujoco` of `size`, build a small leaderboard of the runs (ranking with
    intervals, plots, README.md and index.html) under `<out>/<time>/board`, and print what each method learned on
    each task and kept of it to the end of the stream."""
    from cyclic_bench.board.build import build_board
    from cyclic_bench.run import train

    base = out / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dirs = []
    for method in QUICKSTART_METHODS:
        print(f"== {method}: {seeds} seeds on cyclic_mujoco size={size}, 64-unit networks", flush=True)
        config = compose_config(
            [f"method={method}", "protocol=cyclic_mujoco", f"protocol.size={size}", f"seeds={seeds}", *QUICKSTART_NETWORKS]
        )
        run_dirs.append(base / method)
        train(config, run_dirs[-1])
    board, folder = build_board(run_dirs, base / "board")
    print("\n" + _learned_and_kept(folder))
    for run_dir in run_dirs:
        print(f"run files: {run_dir.resolve()}  (evaluations.csv, diagnostics.csv, summary.json, config.yaml)")
    print("\n== leaderboard of these runs (rliable: IQM of the final scores, 95% stratified-bootstrap intervals)", flush=True)
    _print_board(board, folder)
    return 0


def _learned_and_kept(board_folder: Path) -> str:
    """Per method and task: the score at the end of the task's last training visit and at the end of the stream, with
    what 0 and 1 mean, for a reader who has never seen the suite."""
    from cyclic_bench.board import scores as sc
    from cyclic_bench.board.build import collect_entries, normalization
    from cyclic_bench.run import mean_interval

    entries = sorted(collect_entries([board_folder / "entries"]), key=lambda e: QUICKSTART_METHODS.index(e["method"]))
    ends = normalization(entries[0]["config"])
    lines = ["What you are looking at: each task's return, normalised so that"]
    for task, e in ends.items():
        lines.append(f"  {task}: 0 = return {e['random_return']:.1f}: {e['random_source']};")
        lines.append(f"  {' ' * len(task)}  1 = return {e['reference_return']:.1f}: {e['reference_source']}")
    lines += [
        "learned: the score on a task at the end of its own (last) training visit; kept: at the end of the stream, after the",
        "tasks trained later. Mean over seeds [95% bootstrap interval]; an interval above 0 means every seed beats a random policy.",
        "",
        f"{'method':<14} {'task':<18} {'learned':<24} {'kept':<24}",
    ]
    for entry in entries:
        row = sc.row_from_entry(entry)
        final = sc.final_scores(row)
        for i, task in enumerate(row.tasks):
            end = row.score[:, sc.eval_index(row, sc.visit_end_step(row, row.stream["cycles"] - 1, i)), i]
            learned, kept = (_interval_text(mean_interval(list(v))) for v in (end, final[:, i]))
            lines.append(f"{row.label:<14} {task:<18} {learned:<24} {kept:<24}")
    return "\n".join(lines)


def _interval_text(triple: tuple[float, float, float]) -> str:
    from math import isnan

    mean, low, high = triple
    return f"{mean:.2f}" if isnan(low) else f"{mean:.2f} [{low:.2f}, {high:.2f}]"


# ---- leaderboards ---------------------------------------------------------------------------------------------
def add_board_parser(commands) -> None:
    board = commands.add_parser("board", help="leaderboards: build, submit, reproduce")
    actions = board.add_subparsers(dest="board_command", required=True)
    build = actions.add_parser("build", help="a leaderboard from run directories and/or entries of one protocol")
    build.add_argument("inputs", nargs="+", help="run directories, folders of runs, entry files (.json) or folders of entries")
    build.add_argument("--out", help="board folder (default: the board folder given as input, else leaderboards/<protocol>/<size>)")
    # settings left out are taken from the board.json already in the folder written (a rebuild keeps them), else the defaults
    build.add_argument("--baseline", help="row the others are compared with (default td3 if present, else the first)")
    build.add_argument("--reps", type=int, help="bootstrap resamples per interval (default 2000)")
    build.add_argument("--bootstrap-seed", dest="seed", type=int, help="numpy seed set before every rliable call (default 0)")
    build.add_argument("--last", type=int, help="final evaluations averaged into the final score (default 1)")
    build.add_argument("--tolerance", type=float, help="recovery: relative distance to the pre-event score (default 0.1)")
    build.add_argument("--target-seeds", type=int, help="rows with fewer seeds are flagged (default 30)")
    build.add_argument("--score", help="ranked score matrix: final (end of the stream, default) or auc (whole stream)")
    submit = actions.add_parser("submit", help="a leaderboard entry from one method's run directories")
    submit.add_argument("runs", nargs="+", help="the run directories (shards with disjoint seeds; single-task reference runs)")
    submit.add_argument("--label", help="the entry's name on the board (default the method name)")
    submit.add_argument("--out", help="entry file (default leaderboards/<protocol>/<size>/entries/<label>.json)")
    again = actions.add_parser("reproduce", help="re-run seeds of an entry and compare with it")
    again.add_argument("entry", help="an entry file (.json)")
    again.add_argument("--seeds", type=int, default=3, help="seeds to re-run, the entry's first ones (default 3)")
    again.add_argument("--out", help="run directory for the re-run (default a new temporary folder)")
    again.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    again.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the interval check (default 2000)")


def board_command(args) -> int:
    from cyclic_bench.board.build import BoardOptions, build_board
    from cyclic_bench.board.entry import entry_from_runs, group_runs, write_entry
    from cyclic_bench.board.reproduce import report_text, reproduce

    if args.board_command == "build":
        given = {name: getattr(args, name) for name in BoardOptions.fields() if getattr(args, name, None) is not None}
        _print_board(*build_board(args.inputs, args.out, given))
        return 0
    if args.board_command == "submit":
        groups = group_runs(args.runs)
        methods = sorted({shards[0].config["method"]["name"] for shards, _ in groups})
        require(
            len(groups) == 1,
            f"submit takes one configuration's runs (shards and single-task references); these hold {len(groups)}: {', '.join(methods)}",
        )
        entry = entry_from_runs(*groups[0], label=args.label)
        size = entry["size"] or "custom"
        path = write_entry(args.out or Path("leaderboards") / entry["protocol"] / size / "entries" / f"{entry['label']}.json", entry)
        references = ", ".join(entry["reference"]) or "none"
        tasks, revisions = ", ".join(entry["stream"]["tasks"]), ", ".join(sorted({s["code_revision"] for s in entry["shards"]}))
        print(f"entry {entry['label']}: {entry['protocol']} size {size}, {len(entry['seeds'])} seeds, tasks {tasks}")
        print(f"single-task references: {references}; code revision(s): {revisions}")
        print(f"written to {path}\nnext: cyclic-bench board build {path.parent}")
        return 0
    report = reproduce(args.entry, args.seeds, args.out, args.device, args.reps)
    print(report_text(report))
    return 0 if report["verdict"] in ("exact", "agrees") else 1


def _print_board(board: dict, out: Path) -> None:
    from cyclic_bench.board.build import board_summary

    print(board_summary(board))
    print(f"board: {(out / 'README.md').resolve()} and {(out / 'index.html').resolve()}")
    print(f"plots: {(out / 'plots').resolve()}/ ({', '.join(Path(p).name for p in board['plots'].values())})")


def list_command() -> int:
    from cyclic_bench.registry import intervention_names, learner_names, learners_of, method_names, plugins, protocol_names

    learners, interventions = learner_names(), intervention_names()
    width = max(map(len, interventions), default=0)
    print("learners:      " + ", ".join(learners) + "   (method=<learner>)")
    print("interventions: method=<intervention> [method.base=<learner>]; the learners each runs on, its default first:")
    for name in interventions:
        print(f"  {name:<{width}}  {', '.join(learners_of(name))}")
    print("methods:       " + ", ".join(n for n in method_names() if n not in learners and n not in interventions) + "   (standalone)")
    print("protocols:     " + ", ".join(protocol_names()))
    for plugin in plugins():
        package = f"{plugin['package']} {plugin['version']}" if plugin["package"] else "no package"
        provides = ", ".join(plugin["methods"] + plugin["protocols"]) or "nothing"
        state = f"failed to import: {plugin['error']}" if plugin["error"] else f"provides {provides}"
        print(f"plug-in:       {plugin['name']} ({package}): {state}")
    return 0


def random_returns_command(overrides: list[str]) -> int:
    from cyclic_bench.config import plan_run
    from cyclic_bench.normalization import measure_random_returns

    episodes = [o.partition("=")[2] for o in overrides if o.startswith("episodes=")] or ["100"]
    require(episodes[-1].isdigit() and int(episodes[-1]) > 1, f"episodes={episodes[-1]} is not allowed: it must be an integer > 1")
    plan = plan_run(compose_config([o for o in overrides if not o.startswith("episodes=")] + ["seeds=1"]))
    print(json.dumps(measure_random_returns(plan.stream, int(episodes[-1])), indent=2))
    return 0


def _print_finished(summaries: list[dict], run_dirs: list[Path]) -> None:
    from cyclic_bench.run import results_table

    if summaries:
        print("\nFinal normalised scores (last evaluation; mean [95% bootstrap CI] over seeds):")
        print(results_table(summaries))
    for summary in summaries:
        failed = ", ".join(f"{f['seed']} (step {f['step']}: {f['reason']})" for f in summary["failed_seeds"])
        if failed:
            print(f"{summary['method']}: seeds that failed, stopped and have no final score: {failed}")
        if summary.get("completed_steps", summary["steps_per_seed"]) < summary["steps_per_seed"]:
            print(f"{summary['method']}: every seed failed, so the run stopped at step {summary['completed_steps']}")
    for run_dir in run_dirs:
        print(f"run files: {run_dir.resolve()}  (evaluations.csv, diagnostics.csv, summary.json, config.yaml)")


if __name__ == "__main__":
    sys.exit(main())
