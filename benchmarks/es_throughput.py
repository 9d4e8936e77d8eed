"""Evolution strategies through the engine against the bare environment pool: steps/s on the same environments.

The engine's per-step path for `hebbian` / `static_es` (observation adapter, the population's forward pass and
Hebbian update, the pool step, the transition, fitness bookkeeping, episode starts, the ES update at the end of each
window) against `pool.step` alone on a second pool built exactly like the engine's (same task, size and seeds: S
seeds x P members Ant-v5 environments of `ant_morphology`), replaying the actions the engine sent, so both pools
follow the same trajectories and do the same simulation work. Blocks of `--steps` iterations of the two alternate `--repeats` times
(the machine is shared and noisy), and the figure is the ratio engine / bare per repetition: median and range, in
wall-clock time and, with in-process environments, in this process's CPU time (the work each path costs, which
other jobs on a loaded machine do not distort). Evaluation and checkpoints are left out of both: they spend no
training budget.

Run from the repository root (OMP_NUM_THREADS=1 on a small machine):
    python benchmarks/es_throughput.py                                      # hebbian, population 200, 1 seed, in-process
    python benchmarks/es_throughput.py --method static_es --workers 2 --reward distance
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time

import numpy as np
import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.results import RunDir
from cyclic_bench.trainer import Engine, EngineOptions


def build_engine(args: argparse.Namespace, folder: str) -> Engine:
    visit = args.population * args.steps * (args.repeats + 1)  # one visit holds every timed block
    overrides = [
        f"method={args.method}",
        f"method.population={args.population}",
        f"method.generation_steps={args.generation_steps}",
        "protocol=ant_morphology",
        f"protocol.reward={args.reward}",
        f"protocol.steps_per_task={visit}",
        f"protocol.eval_every={visit}",
        "protocol.cycles=1",
        f"seeds={args.seeds}",
        "device=cpu",
        f"env_workers={args.workers}",
        "progress=false",
    ]
    plan = plan_run(compose_config(overrides))
    engine = Engine(plan.stream, plan.build_method(), RunDir(folder), EngineOptions(plan.stream.eval_every, False, args.workers))
    engine.start_visit(0)
    return engine


class RecordingPool:
    """The engine's pool, keeping the actions of every step (for the bare pool to replay)."""

    def __init__(self, pool):
        self.pool, self.actions = pool, []

    def step(self, actions, which=None, autoreset=True):
        self.actions.append(actions.copy())
        return self.pool.step(actions, which, autoreset)

    def __getattr__(self, name):
        return getattr(self.pool, name)


def engine_block(engine: Engine, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds for `steps` iterations of the engine's training step."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        engine.train_step(0)
        engine.step += engine.E
    return time.perf_counter() - wall, time.process_time() - cpu


def bare_block(pool, actions: list[np.ndarray]) -> tuple[float, float]:
    """(wall, CPU) seconds for stepping the pool once with each of `actions` ([N, A] each)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for a in actions:
        pool.step(a)
    return time.perf_counter() - wall, time.process_time() - cpu


def replay(engine: Engine, bare, steps: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """An engine block, then the bare pool stepping the same actions: their (wall, CPU) seconds."""
    timed = engine_block(engine, steps)
    actions, engine.pool.actions = engine.pool.actions, []
    return timed, bare_block(bare, actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="hebbian", choices=["hebbian", "static_es"])
    parser.add_argument("--population", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--generation-steps", type=int, default=1000, help="window length (iterations per generation)")
    parser.add_argument("--reward", default="gymnasium", choices=["gymnasium", "distance"])
    parser.add_argument("--workers", type=int, default=0, help="environment worker processes (0 = in-process), for both")
    parser.add_argument("--steps", type=int, default=250, help="iterations per timed block")
    parser.add_argument("--repeats", type=int, default=4, help="timed blocks of each; the defaults span one generation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        engine = build_engine(args, folder)
        bare = engine.make_visit_pool(0)  # the same environments, seeds and all
        bare.reset()
        engine.pool = RecordingPool(engine.pool)
        replay(engine, bare, 5)  # warm-up
        rows = [replay(engine, bare, args.steps) for _ in range(args.repeats)]
        bare.close()
        engine.pool.close()
        generations = int(engine.method.es.generation[0])
    n = engine.S * engine.E
    work = n * args.steps
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"{args.method}, population {args.population}, {args.seeds} seed(s), {n} Ant-v5 envs ({args.reward} reward)")
    print(f"environment workers: {args.workers or 'none (in-process)'}")
    print(f"{args.repeats} repetitions of {args.steps} iterations each; {generations} ES generations inside the engine's blocks")
    print("| repetition | engine env-steps/s (wall) | bare pool (wall) | ratio (wall) | engine (CPU) | bare pool (CPU) | ratio (CPU) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k, ((ew, ec), (bw, bc)) in enumerate(rows):
        print(f"| {k + 1} | {work / ew:,.0f} | {work / bw:,.0f} | {bw / ew:.3f} | {work / ec:,.0f} | {work / bc:,.0f} | {bc / ec:.3f} |")
    for name, column in (("wall", 0), ("CPU", 1)):
        ratios = sorted(bare[column] / engine[column] for engine, bare in rows)
        overall = sum(bare[column] for _, bare in rows) / sum(engine[column] for engine, _ in rows)
        print(
            f"ratio engine / bare ({name}): overall {overall:.3f} (all blocks, the ES updates amortised as in training), "
            f"median {ratios[len(ratios) // 2]:.3f} [min {ratios[0]:.3f}, max {ratios[-1]:.3f}]"
        )
    if args.workers:
        print("(with workers the environments step in other processes: only the wall-clock ratio counts)")


if __name__ == "__main__":
    main()
