"""Cost of the safe checkpoint format (tensors + JSON, read with weights_only) against a plain pickle of the same state.

Builds a real engine state: TD3 with S seeds whose replay buffer holds `--transitions` steps per seed, a MuJoCo pool
snapshot, and the rows a run of `--evaluations` evaluations has written by then (4 tasks, TD3's ~25 diagnostics). Then
times, interleaved (so the machine's load falls on both alike), writing and reading it in both formats into a folder:

  pickle   torch.save(state) / torch.load(weights_only=False), the format before (unsafe to load)
  safe     cyclic_bench.checkpoint.save / load, the format now

and prints the median of each and the ratio safe / pickle, plus the file sizes.

    python benchmarks/checkpoint_format.py                              # 30 seeds, 50k transitions, 160 evaluations
    python benchmarks/checkpoint_format.py --seeds 3 --transitions 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cyclic_bench import checkpoint
from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.results import RunDir
from cyclic_bench.trainer import Engine, EngineOptions


def engine_state(seeds: int, transitions: int, evaluations: int) -> dict:
    """What Engine.save writes, for a TD3 run of `seeds` seeds at a late point of a full-size stream."""
    overrides = ["method=td3", "protocol.size=full", f"seeds={seeds}", f"method.buffer_size={transitions}", "device=cpu"]
    plan = plan_run(compose_config(overrides))
    method = plan.build_method()
    replay = method.replay
    for values in replay.data.values():
        values.normal_()
    replay.position, replay.size = 0, transitions
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(plan.stream, method, RunDir(folder), EngineOptions(plan.checkpoint_every, False))
        engine.start_visit(0)
        engine.step = transitions
        names = [f"diagnostic_{k}" for k in range(25)]
        for e in range(evaluations):
            common = {"step": e * 50_000, "cycle": 0, "trained_task": "HalfCheetah"}
            engine.rows["evaluations"] += [
                {"seed": s, **common, "eval_task": t, "return": 1234.5678 + s, "return_std": 12.3, "score": 0.123456789}
                for s in range(seeds)
                for t in ("HalfCheetah", "Hopper", "Walker2d", "Ant")
            ]
            engine.rows["diagnostics"] += [{"seed": s, **common, "name": n, "value": 0.1 * s + e} for s in range(seeds) for n in names]
        state = {
            "step": engine.step,
            "method": method.state_dict(),
            "warmup_rng": engine.warmup_rng.state_dict(),
            "event_rng": engine.event_rng.state_dict(),
            "window": engine.window,
            "pool": engine.pool.get_state(),
            "obs": engine.obs,
            "rows": engine.rows,
            "wall_seconds": 1.0,
        }
        engine.pool.close()
    return state


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--transitions", type=int, default=50_000, help="replay transitions per seed")
    parser.add_argument("--evaluations", type=int, default=160, help="evaluations whose rows the state holds")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    state = engine_state(args.seeds, args.transitions, args.evaluations)
    times: dict[str, list[float]] = {"pickle write": [], "pickle read": [], "safe write": [], "safe read": []}
    with tempfile.TemporaryDirectory() as folder:
        old, new = Path(folder) / "pickle.pt", Path(folder) / "safe.pt"
        for _ in range(args.repeats):
            times["pickle write"].append(timed(lambda: torch.save(state, old)))
            times["safe write"].append(timed(lambda: _write(state, new)))
            times["pickle read"].append(timed(lambda: torch.load(old, weights_only=False)))
            times["safe read"].append(timed(lambda: checkpoint.load(new)))
        sizes = {"pickle": old.stat().st_size, "safe": new.stat().st_size}
    rows = len(state["rows"]["evaluations"]) + len(state["rows"]["diagnostics"])
    print(f"state: {args.seeds} seeds, {args.transitions} replay transitions per seed, {rows} table rows; {args.repeats} repeats")
    for what in ("write", "read"):
        old_s, new_s = statistics.median(times[f"pickle {what}"]), statistics.median(times[f"safe {what}"])
        print(f"{what:5}  pickle {old_s:7.3f} s   safe {new_s:7.3f} s   safe / pickle {new_s / old_s:5.2f}x")
    print(f"size   pickle {sizes['pickle'] / 2**20:7.1f} MiB safe {sizes['safe'] / 2**20:7.1f} MiB")


def _write(state: dict, path: Path) -> None:
    with open(path, "wb") as f:
        checkpoint.save(state, f)


if __name__ == "__main__":
    main()
