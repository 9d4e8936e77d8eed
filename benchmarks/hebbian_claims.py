"""Two claims of the Hebbian meta-learning paper (Najarro & Risi, NeurIPS 2020, arXiv 2007.02686), reproduced at a
reduced scale with the suite's `hebbian` and `static_es` methods (same network, same ES, same stream).

damage      "Zeroing a third of the weights mid-episode, the Hebbian policy's per-step reward recovers within about
            100 steps." Both methods train on HalfCheetah-v5 (episodes of L steps). Then each seed's ES centre plays
            K episodes twice, from the same environment seeds and the same initial weights: intact, and with a third
            of each episode's weights set to zero at step L/2. Reported: the mean per-step reward in windows before
            and after the damage (damaged and intact), and the recovery time: the first step after the damage from
            which the damaged runs' 10-step mean reward stays at or above 90% of the intact runs' (means over
            seeds x episodes; undefined where the intact reward is not positive). Also the cosine similarity of
            the damaged and the intact runs' weights at steps after the damage (does plasticity rebuild them?).
morphology  "On the held-out Ant morphology the Hebbian network beats static-weight ES." Both methods train on the
            `ant_morphology` stream (standard Ant and front-left lower leg shortened, visited in turn); every
            evaluation also plays the unseen back-right-shortened Ant. Reported: returns per morphology and seed at
            the last two evaluations, and Hebbian minus static on the held-out morphology.

Scale. The paper evolved population 200 for 300 generations of 1000-step episodes (tens of millions of steps per
run). Each claim here must finish within about 20 minutes of wall time on 2 shared CPU cores, so the defaults are:
population 20, 200-step episodes, 2 seeds per method, 240k (damage) and 136k (morphology) environment steps per
seed, i.e. about 60 and 32 generations; the two methods train in parallel processes. The ES learning rate is the
paper's 0.2 scaled by sqrt(population / 200) = 0.063, which keeps the paper's expected step per coefficient and
generation (lr / (sigma sqrt(population))); sigma and the decays are the paper's. The rewards are Gymnasium's
(the paper's quadruped was PyBullet's Ant scored on distance walked). Expect a gap to the paper's numbers.

Run from the repository root (OMP_NUM_THREADS=1 recommended on a small machine):
    python benchmarks/hebbian_claims.py damage --out runs/hebbian_claims
    python benchmarks/hebbian_claims.py morphology --out runs/hebbian_claims
    python benchmarks/hebbian_claims.py damage --steps 8000 --episodes 2 --out runs/hebbian_check  # a plumbing check in a minute
    python benchmarks/hebbian_claims.py damage --reuse --out runs/hebbian_claims            # analyse finished runs again
Writes <out>/<claim>.json (settings, command, wall time, every number) and the two run directories beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.config import load_run_config, plan_run
from cyclic_bench.events import zero_fraction
from cyclic_bench.method import Method
from cyclic_bench.results import RunDir
from cyclic_bench.rng import SeedRNG
from cyclic_bench.run import train
from cyclic_bench.stream import ActionAdapter, ObservationAdapter, Stream

METHODS = ("hebbian", "static_es")
PAPER_POPULATION, PAPER_LR = 200, 0.2
DAMAGE_FRACTION = 1 / 3
DAMAGE_STREAM = 77  # random-stream id of the damage draw in this script
ROLLOUT_SEED = 90_000  # environment seeds of the damage rollouts start here (apart from the engine's)
SMOOTH = 10  # steps in the moving mean of the recovery criterion
RECOVERED = 0.9  # recovered: damaged moving mean >= this fraction of the intact one, from then to the episode's end


def train_run(overrides: list[str], run_dir: str) -> dict:
    """One training run in a worker process."""
    torch.set_num_threads(1)
    return train(compose_config(overrides), run_dir)


def train_both(common: list[str], population: int, out: Path, claim: str, reuse: bool) -> dict[str, Path]:
    """Train `hebbian` and `static_es` with the same settings, in parallel processes; returns their run directories.

    With `reuse`, runs that already finished in `out` are analysed again instead.
    """
    lr = PAPER_LR * math.sqrt(population / PAPER_POPULATION)
    dirs = {name: out / f"{claim}-{name}" for name in METHODS}
    if reuse and all((d / "summary.json").exists() for d in dirs.values()):
        return dirs
    jobs = {name: [f"method={name}", f"method.population={population}", f"method.lr={lr:.4f}", *common] for name in METHODS}
    with ProcessPoolExecutor(max_workers=len(METHODS), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(train_run, jobs[name], str(dirs[name])) for name in METHODS}
        for name, future in futures.items():
            summary = future.result()
            print(f"{name}: trained in {summary['wall_seconds']:.0f} s ({summary['seed_steps_per_second']:.0f} seed-steps/s)", flush=True)
    return dirs


def load_trained(run_dir: Path) -> tuple[Method, Stream]:
    """The method of a finished run, with its final state, and the run's stream."""
    plan = plan_run(load_run_config(run_dir / "config.yaml"))
    method = plan.build_method()
    method.load_state_dict(RunDir(run_dir).load_checkpoint()["method"])
    return method, plan.stream


def evaluation_returns(run_dir: Path) -> dict[tuple[int, int, str], float]:
    """(seed, step, evaluated task) -> mean evaluation return, from the run's evaluations.csv."""
    with open(run_dir / "evaluations.csv") as f:
        return {(int(r["seed"]), int(r["step"]), r["eval_task"]): float(r["return"]) for r in csv.DictReader(f)}


def training_speed(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {key: summary[key] for key in ("wall_seconds", "seed_steps_per_second", "steps_per_seed", "seeds")}


def final_diagnostic(run_dir: Path, name: str) -> dict[int, float]:
    with open(run_dir / "diagnostics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] == name]
    last = max(int(r["step"]) for r in rows)
    return {int(r["seed"]): float(r["value"]) for r in rows if int(r["step"]) == last}


# ---- claim (a): damage ----------------------------------------------------------------------------------------
@torch.no_grad()
def rollout(
    method: Method, stream: Stream, episodes: int, length: int, damage_at: int | None, snapshot_at: Sequence[int] = ()
) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
    """Per-step rewards [S, K, length] of the ES centre on the stream's first task (NaN after an episode ended), and
    each episode's weights [S*K, N] after the steps in `snapshot_at`.

    With `damage_at`, a third of each episode's weights are set to zero before that step.
    """
    S, task = method.spec.n_seeds, stream.tasks[0]
    observe, to_env = ObservationAdapter(stream), ActionAdapter(task)
    seeds = [ROLLOUT_SEED + k for _ in range(S) for k in range(episodes)]
    pool = task.make_pool(seeds)
    obs = pool.reset(seeds)
    method.on_episode_start(torch.ones(S, episodes, dtype=torch.bool), explore=False)
    method.eval_weights = [w.clone() for w in method.eval_weights]  # own copies (the static network's are views of its centre)
    rewards = np.full((S * episodes, length), np.nan)
    running = np.ones(S * episodes, dtype=bool)
    snapshots = {}
    for t in range(length):
        if t == damage_at:
            per_episode = [w.view(S * episodes, *w.shape[2:]) for w in method.eval_weights]
            zero_fraction(per_episode, DAMAGE_FRACTION, SeedRNG(range(S * episodes), stream=DAMAGE_STREAM))
        action = method.act(torch.as_tensor(observe(obs, 0)).view(S, episodes, -1), explore=False)
        if t in snapshot_at:
            snapshots[t] = torch.cat([w.reshape(S * episodes, -1) for w in method.eval_weights], dim=1).clone()
        result = pool.step(to_env(action.reshape(S * episodes, -1).numpy()), which=running, autoreset=False)
        rewards[running, t] = result.reward[running]
        obs = np.where(running[:, None], result.final_obs, obs)
        running &= ~(result.terminated | result.truncated)
        if not running.any():
            break
    pool.close()
    return rewards.reshape(S, episodes, length), snapshots


def recovery_steps(intact: np.ndarray, damaged: np.ndarray, damage_at: int) -> int | None:
    """Steps after the damage until the damaged moving mean stays >= RECOVERED x the intact one; None if never."""
    kernel = np.ones(SMOOTH) / SMOOTH
    a, b = np.convolve(intact, kernel, mode="valid"), np.convolve(damaged, kernel, mode="valid")  # index i: steps i..i+SMOOTH-1
    ok = b >= RECOVERED * a
    for start in range(damage_at, len(a)):
        if ok[start:].all():
            return start + SMOOTH - 1 - damage_at  # the window's last step, counted from the damage
    return None


def damage_claim(args: argparse.Namespace, out: Path) -> dict:
    length, damage_at = args.episode_steps, args.episode_steps // 2
    common = [
        "protocol=cyclic_mujoco",
        "protocol.tasks=[HalfCheetah]",
        f"protocol.steps_per_task={args.steps}",
        "protocol.cycles=1",
        f"protocol.eval_every={args.steps // 4}",
        "protocol.eval_episodes=3",
        f"protocol.max_episode_steps={length}",
        f"seeds={args.seeds}",
        "progress=false",
    ]
    dirs = train_both(common, args.population, out, "damage", args.reuse)
    result = {}
    for name, run_dir in dirs.items():
        method, stream = load_trained(run_dir)
        state = method.eval_rng.state_dict()
        offsets = [o for o in (-1, 0, 1, 5, 10, 25, 50, 100) if damage_at + o < length]
        intact, intact_weights = rollout(method, stream, args.episodes, length, None, [damage_at + o for o in offsets])
        method.eval_rng.load_state_dict(state)  # the same initial weights for the damaged episodes
        damaged, damaged_weights = rollout(method, stream, args.episodes, length, damage_at, [damage_at + o for o in offsets])
        cosine = {  # how close the damaged network's weights come back to the intact one's (1 = the same direction)
            f"{o:+d}": round(float(torch.cosine_similarity(intact_weights[damage_at + o], damaged_weights[damage_at + o], dim=1).mean()), 4)
            for o in offsets
        }
        curves = {"intact": np.nanmean(intact, axis=(0, 1)), "damaged": np.nanmean(damaged, axis=(0, 1))}
        windows = {
            f"{lo - damage_at:+d}..{hi - damage_at:+d}": {k: round(float(v[lo:hi].mean()), 4) for k, v in curves.items()}
            for lo, hi in [(damage_at - 50, damage_at), (damage_at, damage_at + 10), (damage_at + 10, damage_at + 25)]
            + [(damage_at + 25, damage_at + 50), (damage_at + 50, damage_at + 100), (damage_at + 100, length)]
            if 0 <= lo < hi <= length
        }
        before = float(curves["intact"][damage_at - 50 : damage_at].mean())
        recovery = recovery_steps(curves["intact"], curves["damaged"], damage_at) if before > 0 else None
        returns = evaluation_returns(run_dir)
        last = max(step for _, step, _ in returns)
        result[name] = {
            "per_step_reward_windows": windows,
            "recovery_steps": recovery,
            "recovery_defined": before > 0,
            "weight_cosine_damaged_vs_intact": cosine,
            "episode_return_intact": [round(float(x), 1) for x in np.nansum(intact, axis=2).mean(axis=1)],
            "episode_return_damaged": [round(float(x), 1) for x in np.nansum(damaged, axis=2).mean(axis=1)],
            "final_evaluation_return": {seed: round(v, 1) for (seed, step, _), v in returns.items() if step == last},
            "generations": final_diagnostic(run_dir, "generations"),
            "training": training_speed(run_dir),
            "curves": {k: [round(float(x), 4) for x in v] for k, v in curves.items()},
        }
        print(f"{name}: windows {windows}  recovery {recovery} steps  weight cosine {cosine}", flush=True)
    return result


# ---- claim (b): held-out morphology ---------------------------------------------------------------------------
def morphology_claim(args: argparse.Namespace, out: Path) -> dict:
    common = [
        "protocol=ant_morphology",
        "protocol.size=lite",
        f"protocol.steps_per_task={args.steps // 4}",
        "protocol.cycles=2",
        f"protocol.eval_every={args.steps // 8}",
        "protocol.eval_episodes=3",
        f"protocol.max_episode_steps={args.episode_steps}",
        f"seeds={args.seeds}",
        "progress=false",
    ]
    dirs = train_both(common, args.population, out, "morphology", args.reuse)
    result: dict = {}
    for name, run_dir in dirs.items():
        returns = evaluation_returns(run_dir)
        steps = sorted({step for _, step, _ in returns})
        table: dict[str, dict[int, float]] = defaultdict(dict)
        for (seed, step, task), value in returns.items():
            if step in steps[-2:]:
                table[task][seed] = table[task].get(seed, 0.0) + value / 2  # mean of the last two evaluations
        result[name] = {
            "last_two_evaluations_mean_return": {task: {s: round(v, 1) for s, v in seeds.items()} for task, seeds in table.items()},
            "start_return": {
                task: round(float(np.mean([v for (_, st, t), v in returns.items() if st == 0 and t == task])), 1) for task in table
            },
            "generations": final_diagnostic(run_dir, "generations"),
            "training": training_speed(run_dir),
        }
    held_out = "short_back_right"
    hebbian, static = (result[m]["last_two_evaluations_mean_return"][held_out] for m in METHODS)
    result["held_out_difference_hebbian_minus_static"] = {s: round(hebbian[s] - static[s], 1) for s in hebbian}
    print(json.dumps(result, indent=1), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("claim", choices=["damage", "morphology"])
    parser.add_argument("--out", default="runs/hebbian_claims", help="folder for the runs and <claim>.json")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per method")
    parser.add_argument("--population", type=int, default=20, help="ES members per seed")
    parser.add_argument("--steps", type=int, help="environment steps per seed (default: 240000 damage, 136000 morphology)")
    parser.add_argument("--episode-steps", type=int, default=200, help="episode length limit")
    parser.add_argument("--episodes", type=int, default=16, help="damage: rollout episodes per seed and condition")
    parser.add_argument("--reuse", action="store_true", help="analyse finished runs found in --out instead of training again")
    args = parser.parse_args()
    args.steps = args.steps or {"damage": 240_000, "morphology": 136_000}[args.claim]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = (damage_claim if args.claim == "damage" else morphology_claim)(args, out)
    record = {
        "claim": args.claim,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "es_lr": round(PAPER_LR * math.sqrt(args.population / PAPER_POPULATION), 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "result": result,
    }
    (out / f"{args.claim}.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / f'{args.claim}.json'} after {record['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
