"""The non-stationary bandit comparison: every bandit method, many seeds, through the engine, with 95% intervals.

Runs each method on the `bandit` protocol (default: size full, the public config, with 100 seeds) with
`cyclic_bench.run.train`, reads each run's online.csv and prints, per method, mean over seeds with a 95%
percentile-bootstrap interval of:
  cumulative regret         sum over the stream of (best mean - chosen arm's mean)
  regret after switches     the same summed over the first `after_switch_steps` steps after each context change
  regret per switch         that sum divided by the seed's number of context changes (seeds with at least one)
  reward rate               mean reward per step
  score                     mean over windows of (chosen - uniform) / (oracle - uniform)
All methods meet the same bandit instances, switch schedules and reward noise (they depend only on the seed), so
the second table gives paired per-seed differences against the reference method (negative = fewer regret).

    python benchmarks/bandit_comparison.py                      # 100 seeds, size full, every bandit method
    python benchmarks/bandit_comparison.py --seeds 10 --size lite --methods achna achna_constant
    python benchmarks/bandit_comparison.py --methods achna --set method.mask_probability=1.0
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.registry import get_method, method_names
from cyclic_bench.run import mean_interval, train

METRICS = ("cumulative_regret", "regret_after_switches", "regret_per_switch", "reward_rate", "score")


def bandit_methods() -> list[str]:
    """Registered methods that play discrete actions."""
    return [name for name in method_names() if "discrete" in get_method(name)[0].action_kinds]


def per_seed_metrics(run_dir: Path, eval_every: int) -> dict[str, dict[int, float]]:
    """{metric: {seed: value}} from a run's online.csv (window means times the window length are window sums)."""
    sums: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    windows: dict[int, int] = defaultdict(int)
    with open(run_dir / "online.csv", newline="") as f:
        for row in csv.DictReader(f):
            seed, name, value = int(row["seed"]), row["name"], float(row["value"])
            sums[name][seed] += value * eval_every
            windows[seed] += name == "reward"
    with open(run_dir / "evaluations.csv", newline="") as f:
        scores: dict[int, list[float]] = defaultdict(list)
        for row in csv.DictReader(f):
            scores[int(row["seed"])].append(float(row["score"]))
    seeds = sorted(windows)
    return {
        "cumulative_regret": {s: sums["regret"][s] for s in seeds},
        "regret_after_switches": {s: sums["regret_after_switch"][s] for s in seeds},
        "regret_per_switch": {
            s: sums["regret_after_switch"][s] / round(sums["context_change"][s]) for s in seeds if round(sums["context_change"][s]) > 0
        },
        "reward_rate": {s: sums["reward"][s] / (windows[s] * eval_every) for s in seeds},
        "score": {s: float(np.mean(scores[s])) for s in seeds},
    }


def cell(values: list[float]) -> str:
    mean, low, high = mean_interval(values)
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="seeds per method (default 100, the public config)")
    parser.add_argument("--size", default="full", help="bandit size (default full)")
    parser.add_argument("--methods", nargs="*", default=None, help="methods (default: every discrete-action method)")
    parser.add_argument("--reference", default="achna", help="method the paired differences are taken against")
    parser.add_argument("--out", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every method, e.g. method.mask_probability=1.0")
    args = parser.parse_args()

    methods = args.methods or bandit_methods()
    out = Path(args.out or tempfile.mkdtemp(prefix="bandit-comparison-"))
    results, seconds = {}, {}
    for method in methods:
        config = compose_config(
            [f"method={method}", "protocol=bandit", f"protocol.size={args.size}", f"seeds={args.seeds}", "progress=false", *args.set]
        )
        started = time.perf_counter()
        train(config, out / method)
        seconds[method] = time.perf_counter() - started
        results[method] = per_seed_metrics(out / method, plan_run(config).stream.eval_every)

    settings = f" with {' '.join(args.set)}" if args.set else ""
    print(f"bandit size={args.size}, {args.seeds} seeds per method{settings}; mean over seeds [95% bootstrap interval]; runs in {out}\n")
    print("| method | " + " | ".join(METRICS) + " | wall s |")
    print("|" + "---|" * (len(METRICS) + 2))
    for method in methods:
        cells = [cell(list(results[method][metric].values())) for metric in METRICS]
        print(f"| {method} | " + " | ".join(cells) + f" | {seconds[method]:.0f} |")

    if args.reference in results:
        reference = results[args.reference]
        print(f"\nPaired per-seed differences, {args.reference} minus each method (negative: {args.reference} has less regret)\n")
        paired = ("cumulative_regret", "regret_after_switches", "regret_per_switch")
        print("| method | " + " | ".join(paired) + " |")
        print("|" + "---|" * (len(paired) + 1))
        for method in methods:
            if method == args.reference:
                continue
            cells = []
            for metric in paired:
                seeds = sorted(set(reference[metric]) & set(results[method][metric]))
                cells.append(cell([reference[metric][s] - results[method][metric][s] for s in seeds]))
            print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
