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
the next tables give paired per-seed differences, each method minus each baseline (negative = less regret than the
baseline). Last, for the methods that report a `learning_rate` diagnostic (the ACh/NA agents), the response of
their learning rate and temperature to a context change: per seed, their mean over the `--after` steps from each
change divided by their mean over the `--before` steps preceding it, averaged over the seed's changes (1 = no
response), and the median over seeds of both at a few evaluations (the run's diagnostics.csv). The trace plays the
method once more on the same environments, step by step, outside the engine.

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
import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.method import Transition
from cyclic_bench.registry import get_method, method_names
from cyclic_bench.run import mean_interval, train
from cyclic_bench.trainer import env_seed

METRICS = ("cumulative_regret", "regret_after_switches", "regret_per_switch", "reward_rate", "score")
PAIRED = ("cumulative_regret", "regret_after_switches", "regret_per_switch", "score")
MODULATED = ("learning_rate", "temperature")


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


@torch.no_grad()
def switch_response(config, before: int, after: int) -> dict[str, list[float]]:
    """{quantity: per-seed ratios} of each modulated quantity's mean over `after` steps from a context change to its
    mean over the `before` steps preceding it, averaged over the seed's changes; {} for methods without one."""
    plan = plan_run(config)
    method = plan.build_method()
    names = [name for name in MODULATED if name in method.diagnostics()]
    if not names:
        return {}
    pool = plan.stream.tasks[0].make_pool([env_seed(seed, 1, 0, 0, 0) for seed in plan.spec.seed_ids])  # the engine's seeds
    obs, done = torch.zeros(plan.spec.n_seeds, 1, 1), torch.zeros(plan.spec.n_seeds, 1, dtype=torch.bool)
    trace, changes = defaultdict(list), []
    for _ in range(plan.stream.total_steps):
        action = method.act(obs, explore=True)
        step = pool.step(action[:, 0].numpy())
        reward = torch.as_tensor(step.reward)[:, None]
        method.observe(Transition(obs, action, reward, obs, done, done, learn=True))
        diagnostics = method.diagnostics()
        for name in names:
            trace[name].append(diagnostics[name].double().numpy())
        changes.append(step.info["context_change"] > 0)
    changed = np.stack(changes)  # [steps, seeds]
    ratios: dict[str, list[float]] = {}
    for name in names:
        values = np.stack(trace[name])
        per_seed = []
        for s in range(values.shape[1]):
            starts = [t for t in np.flatnonzero(changed[:, s]) if t >= before and t + after <= len(values)]
            if starts:
                per_seed.append(float(np.mean([values[t : t + after, s].mean() / values[t - before : t, s].mean() for t in starts])))
        ratios[name] = per_seed
    return ratios


def modulated_medians(run_dir: Path, steps: list[int]) -> dict[str, list[float]]:
    """{quantity: median over seeds at each of `steps`} of the modulated diagnostics in a run's diagnostics.csv."""
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    with open(run_dir / "diagnostics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["name"] in MODULATED and int(row["step"]) in steps:
                values[row["name"], int(row["step"])].append(float(row["value"]))
    return {name: [float(np.median(values[name, step])) for step in steps] for name in MODULATED}


def cell(values: list[float]) -> str:
    mean, low, high = mean_interval(values)
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="seeds per method (default 100, the public config)")
    parser.add_argument("--size", default="full", help="bandit size (default full)")
    parser.add_argument("--methods", nargs="*", default=None, help="methods (default: every discrete-action method)")
    parser.add_argument(
        "--baselines", nargs="*", default=["achna_constant", "epsilon_greedy"], help="methods the paired differences are taken against"
    )
    parser.add_argument("--before", type=int, default=50, help="steps before a context change in the switch response (default 50)")
    parser.add_argument("--after", type=int, default=10, help="steps from a context change in the switch response (default 10)")
    parser.add_argument("--out", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every method, e.g. method.mask_probability=1.0")
    args = parser.parse_args()

    methods = args.methods or bandit_methods()
    out = Path(args.out or tempfile.mkdtemp(prefix="bandit-comparison-"))
    results, seconds, responses, medians = {}, {}, {}, {}
    for method in methods:
        config = compose_config(
            [f"method={method}", "protocol=bandit", f"protocol.size={args.size}", f"seeds={args.seeds}", "progress=false", *args.set]
        )
        started = time.perf_counter()
        train(config, out / method)
        seconds[method] = time.perf_counter() - started
        results[method] = per_seed_metrics(out / method, plan_run(config).stream.eval_every)
        responses[method] = switch_response(config, args.before, args.after)
        stream = plan_run(config).stream
        median_steps = [stream.eval_every, stream.total_steps // 2, stream.total_steps]
        if responses[method]:
            medians[method] = modulated_medians(out / method, median_steps)

    settings = f" with {' '.join(args.set)}" if args.set else ""
    print(f"bandit size={args.size}, {args.seeds} seeds per method{settings}; mean over seeds [95% bootstrap interval]; runs in {out}\n")
    print("| method | " + " | ".join(METRICS) + " | wall s |")
    print("|" + "---|" * (len(METRICS) + 2))
    for method in methods:
        cells = [cell(list(results[method][metric].values())) for metric in METRICS]
        print(f"| {method} | " + " | ".join(cells) + f" | {seconds[method]:.0f} |")

    for baseline in [b for b in args.baselines if b in results]:
        print(f"\nPaired per-seed differences, each method minus {baseline} (negative regret: less regret than {baseline})\n")
        print("| method | " + " | ".join(PAIRED) + " |")
        print("|" + "---|" * (len(PAIRED) + 1))
        for method in methods:
            if method == baseline:
                continue
            cells = []
            for metric in PAIRED:
                seeds = sorted(set(results[baseline][metric]) & set(results[method][metric]))
                cells.append(cell([results[method][metric][s] - results[baseline][metric][s] for s in seeds]))
            print(f"| {method} | " + " | ".join(cells) + " |")

    modulated = [method for method in methods if responses[method]]
    if modulated:
        print(f"\nSwitch response: mean over the {args.after} steps from a context change / mean over the {args.before} steps before\n")
        print("| method | seeds | " + " | ".join(MODULATED) + " |")
        print("|---|---|" + "---|" * len(MODULATED))
        for method in modulated:
            ratios = responses[method]
            print(f"| {method} | {len(ratios['learning_rate'])} | " + " | ".join(cell(ratios[name]) for name in MODULATED) + " |")
        print(f"\nMedian over seeds at steps {' / '.join(f'{s:,}' for s in median_steps)}\n")
        print("| method | " + " | ".join(MODULATED) + " |")
        print("|---|" + "---|" * len(MODULATED))
        for method in modulated:
            print(f"| {method} | " + " | ".join(" / ".join(f"{v:.2g}" for v in medians[method][name]) for name in MODULATED) + " |")


if __name__ == "__main__":
    main()
