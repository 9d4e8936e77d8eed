"""Two claims of the Hebbian meta-learning paper (Najarro & Risi, NeurIPS 2020, arXiv 2007.02686), tested with the
suite's `hebbian` and `static_es` methods (same network, same ES, same stream) on the paper's quadruped protocol.

Training (shared by both claims): `ant_morphology` with `variant=paper`: every generation, each member plays one
episode of the authors' quadruped episode (40-step burn-in, distance walked, early stops) on each training
morphology (the standard Ant and the one with a short back-right leg), and its fitness is the mean; the short
front-left Ant is held out. Both methods train in parallel processes with the same settings.

morphology  "On the held-out Ant morphology the Hebbian network beats static-weight ES." Each seed's final ES centre
            plays `--episodes` distance episodes on every morphology (Hebbian: from fresh random weights each
            episode). Reported: the mean distance walked per morphology and seed, and Hebbian minus static on the
            held-out morphology, per seed.
damage      "Zeroing a third of the weights mid-episode, the Hebbian policy's per-step reward recovers within tens of
            steps" (the paper's figure, on the walking quadruped). On the standard Ant, each seed's final centre plays
            `--episodes` episodes twice, from the same environment seeds and the same initial weights: intact, and
            with a third of each episode's weights set to zero at step L/2. Reported: whether the intact policy
            walks forward at all (a recovery needs something to recover to), the mean per-step distance in windows
            before and after the damage, the recovery time (the first step after the damage from which the
            damaged runs' 10-step mean stays at or above 90% of the intact runs'; undefined unless the intact
            policy walks forward), and the cosine similarity of the damaged and intact weights after the damage.

Scale. The paper: population 200, 300 generations, 1000-step episodes, 2 training morphologies: 1.2e8 steps per run.
The defaults here keep the paper's population, ES settings and episodes and cut the generations (`--generations`);
`--population` below 200 scales the ES learning rate by sqrt(population / 200), which keeps the paper's expected
step per coefficient and generation (lr / (sigma sqrt(population))). BENCHMARKS.md gives the budget that was run.

Run from the repository root (OMP_NUM_THREADS=1 on a small machine):
    python benchmarks/hebbian_claims.py morphology --out runs/hebbian_claims                 # trains, then analyses
    python benchmarks/hebbian_claims.py damage --out runs/hebbian_claims                     # the same trained runs
    python benchmarks/hebbian_claims.py morphology --population 8 --generations 2 --episode-steps 60 --episodes 2 \\
        --out runs/hebbian_check                                                              # a plumbing check
Training runs are reused when both finished in `--out` with the same settings (`--retrain` trains again).
Writes <out>/<claim>.json (settings, command, wall time, every number) beside the two run directories.
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
from omegaconf import OmegaConf

from cyclic_bench.cli import compose_config
from cyclic_bench.config import load_run_config, plan_run
from cyclic_bench.events import zero_fraction
from cyclic_bench.method import Method
from cyclic_bench.results import RunDir
from cyclic_bench.rng import SeedRNG
from cyclic_bench.run import train
from cyclic_bench.stream import ActionAdapter, ObservationAdapter, Stream

METHODS = ("hebbian", "static_es")
PAPER_POPULATION, PAPER_LR, PAPER_GENERATIONS = 200, 0.2, 300
DAMAGE_FRACTION = 1 / 3
DAMAGE_STREAM = 77  # random-stream id of the damage draw in this script
ROLLOUT_SEED = 90_000  # environment seeds of the analysis rollouts start here (apart from the engine's)
SMOOTH = 10  # steps in the moving mean of the recovery criterion
RECOVERED = 0.9  # recovered: damaged moving mean >= this fraction of the intact one, from then to the episode's end


def training_overrides(args: argparse.Namespace, method: str) -> list[str]:
    """The paper's protocol at this script's scale: one episode per member per visit, a generation per cycle."""
    lr = PAPER_LR * math.sqrt(min(args.population, PAPER_POPULATION) / PAPER_POPULATION)
    visit = args.population * args.episode_steps
    return [
        f"method={method}",
        f"method.population={args.population}",
        f"method.generation_steps={2 * args.episode_steps}",
        f"method.lr={lr:.4f}",
        "protocol=ant_morphology",
        "protocol.variant=paper",
        f"protocol.max_episode_steps={args.episode_steps}",
        f"protocol.steps_per_task={visit}",
        f"protocol.cycles={args.generations}",
        f"protocol.eval_every={visit}",
        f"protocol.eval_episodes={args.eval_episodes}",
        f"seeds={args.seeds}",
        f"first_seed={args.first_seed}",
        "progress=false",
    ]


def train_run(overrides: list[str], run_dir: str) -> dict:
    """One training run in a worker process."""
    torch.set_num_threads(1)
    return train(compose_config(overrides), run_dir)


def train_both(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """Train `hebbian` and `static_es` with the same settings in parallel processes (or reuse finished runs)."""
    dirs = {name: out / f"paper-{name}" for name in METHODS}
    jobs = {name: training_overrides(args, name) for name in METHODS}
    if not args.retrain and all(finished_with(dirs[name], jobs[name]) for name in METHODS):
        return dirs
    with ProcessPoolExecutor(max_workers=len(METHODS), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(train_run, jobs[name], str(dirs[name])) for name in METHODS}
        for name, future in futures.items():
            summary = future.result()
            print(f"{name}: trained in {summary['wall_seconds']:.0f} s ({summary['seed_steps_per_second']:.0f} seed-steps/s)", flush=True)
    return dirs


def finished_with(run_dir: Path, overrides: list[str]) -> bool:
    """True if `run_dir` holds a finished run of exactly these settings."""
    if not (run_dir / "summary.json").exists():
        return False
    wanted = OmegaConf.to_container(compose_config(overrides), resolve=True)
    saved = OmegaConf.to_container(load_run_config(run_dir / "config.yaml"))
    return all(wanted[k] == saved.get(k) for k in ("method", "protocol", "seeds", "first_seed"))


def load_trained(run_dir: Path) -> tuple[Method, Stream]:
    """The method of a finished run, with its final state, and the run's stream."""
    plan = plan_run(load_run_config(run_dir / "config.yaml"))
    method = plan.build_method()
    method.load_state_dict(RunDir(run_dir).load_checkpoint()["method"])
    return method, plan.stream


def training_record(run_dir: Path) -> dict:
    """Speed, and per generation (diagnostics at every evaluation) the seeds' mean and best fitness."""
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "diagnostics.csv") as f:
        rows = list(csv.DictReader(f))
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["name"] in ("generations", "fitness_mean", "fitness_max", "fitness_episodes", "fitness_step_fraction"):
            curves[r["name"]][int(r["step"])].append(round(float(r["value"]), 3))
    return {
        **{key: summary[key] for key in ("wall_seconds", "seed_steps_per_second", "steps_per_seed", "seeds")},
        **{name: {step: values for step, values in sorted(by_step.items())} for name, by_step in curves.items()},
    }


@torch.no_grad()
def rollout(
    method: Method,
    stream: Stream,
    task_index: int,
    episodes: int,
    length: int,
    damage_at: int | None = None,
    snapshot_at: Sequence[int] = (),
) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
    """Per-step rewards [S, K, length] of the ES centre on eval task `task_index` (NaN after an episode ended), and
    each episode's weights [S*K, N] after the steps in `snapshot_at`. With `damage_at`, a third of each episode's
    weights are set to zero before that step."""
    S, task = method.spec.n_seeds, stream.eval_tasks[task_index]
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
        action = method.act(torch.as_tensor(observe(obs, task_index)).view(S, episodes, -1), explore=False)
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


def mean_over_episodes(rewards: np.ndarray) -> np.ndarray:
    """[S, K, L] per-step rewards -> [L]: the mean over the episodes still running at each step (0 where none is)."""
    running = np.isfinite(rewards)
    return np.where(running, rewards, 0.0).sum(axis=(0, 1)) / np.maximum(running.sum(axis=(0, 1)), 1)


# ---- claim (b): held-out morphology ---------------------------------------------------------------------------
def morphology_claim(args: argparse.Namespace, dirs: dict[str, Path]) -> dict:
    result: dict = {}
    for name, run_dir in dirs.items():
        method, stream = load_trained(run_dir)
        distances = {}
        for j, task in enumerate(stream.eval_tasks):
            rewards, _ = rollout(method, stream, j, args.episodes, args.episode_steps)
            per_episode = np.nansum(rewards, axis=2)  # [S, K]: distance walked per episode
            distances[task.name] = {
                "per_seed_mean": [round(float(x), 2) for x in per_episode.mean(axis=1)],
                "per_seed_std": [round(float(x), 2) for x in per_episode.std(axis=1)],
                "episode_steps": [round(float(x), 1) for x in np.isfinite(rewards).sum(axis=2).mean(axis=1)],
            }
        result[name] = {"final_distance": distances, "held_out": [t.name for t in stream.held_out], "training": training_record(run_dir)}
        print(f"{name}: final distance walked {json.dumps(distances)}", flush=True)
    held_out = result["hebbian"]["held_out"][0]
    hebbian, static = (np.array(result[m]["final_distance"][held_out]["per_seed_mean"]) for m in METHODS)
    result["held_out_difference_hebbian_minus_static"] = [round(float(x), 2) for x in hebbian - static]
    return result


# ---- claim (a): weight zeroing on the trained quadruped -------------------------------------------------------
def damage_claim(args: argparse.Namespace, dirs: dict[str, Path]) -> dict:
    length, damage_at = args.episode_steps, args.episode_steps // 2
    result = {}
    for name, run_dir in dirs.items():
        method, stream = load_trained(run_dir)
        standard = [t.name for t in stream.eval_tasks].index("standard")
        state = method.eval_rng.state_dict()
        offsets = [o for o in (-1, 0, 1, 5, 10, 25, 50, 100) if damage_at + o < length]
        snapshot_at = [damage_at + o for o in offsets]
        intact, intact_weights = rollout(method, stream, standard, args.episodes, length, None, snapshot_at)
        method.eval_rng.load_state_dict(state)  # the same initial weights for the damaged episodes
        damaged, damaged_weights = rollout(method, stream, standard, args.episodes, length, damage_at, snapshot_at)
        cosine = {  # how close the damaged network's weights come back to the intact one's (1 = the same direction)
            f"{o:+d}": round(float(torch.cosine_similarity(intact_weights[t], damaged_weights[t], dim=1).mean()), 4)
            for o, t in zip(offsets, snapshot_at, strict=True)
            if t in intact_weights and t in damaged_weights
        }
        curves = {"intact": mean_over_episodes(intact), "damaged": mean_over_episodes(damaged)}
        windows = {
            f"{lo - damage_at:+d}..{hi - damage_at:+d}": {k: round(float(v[lo:hi].mean()), 5) for k, v in curves.items()}
            for lo, hi in [(damage_at - 50, damage_at), (damage_at, damage_at + 10), (damage_at + 10, damage_at + 25)]
            + [(damage_at + 25, damage_at + 50), (damage_at + 50, damage_at + 100), (damage_at + 100, length)]
            if 0 <= lo < hi <= length
        }
        before = float(curves["intact"][max(damage_at - 50, 0) : damage_at].mean())
        walks_forward = before > 0 and float(np.nansum(intact, axis=2).mean()) > 0
        recovery = recovery_steps(curves["intact"], curves["damaged"], damage_at) if walks_forward else None
        result[name] = {
            "walks_forward": walks_forward,
            "per_step_distance_windows": windows,
            "recovery_steps": recovery,
            "weight_cosine_damaged_vs_intact": cosine,
            "distance_intact": [round(float(x), 2) for x in np.nansum(intact, axis=2).mean(axis=1)],
            "distance_damaged": [round(float(x), 2) for x in np.nansum(damaged, axis=2).mean(axis=1)],
            "episodes_running_at_damage": int(np.isfinite(intact[:, :, damage_at]).sum()),
            "curves": {k: [round(float(x), 5) for x in v] for k, v in curves.items()},
        }
        print(f"{name}: walks forward {walks_forward}  windows {windows}  recovery {recovery} steps  weight cosine {cosine}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("claim", choices=["damage", "morphology"])
    parser.add_argument("--out", default="runs/hebbian_claims", help="folder for the runs and <claim>.json")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per method")
    parser.add_argument("--first-seed", type=int, default=0, help="global id of the first seed (another --out adds seeds to a study)")
    parser.add_argument("--population", type=int, default=PAPER_POPULATION, help="ES members per seed")
    parser.add_argument("--generations", type=int, default=12, help="ES generations (the paper: 300)")
    parser.add_argument("--episode-steps", type=int, default=1000, help="episode length (policy steps)")
    parser.add_argument("--eval-episodes", type=int, default=2, help="episodes per morphology at each evaluation during training")
    parser.add_argument("--episodes", type=int, default=10, help="analysis episodes per seed (and morphology, or damage condition)")
    parser.add_argument("--retrain", action="store_true", help="train again even if finished runs of these settings are in --out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dirs = train_both(args, out)
    result = (damage_claim if args.claim == "damage" else morphology_claim)(args, dirs)
    steps_per_run = args.population * args.episode_steps * 2 * args.generations
    record = {
        "claim": args.claim,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "retrain")},
        "training_overrides": training_overrides(args, "<method>"),
        "steps_per_seed": steps_per_run,
        "fraction_of_the_papers_budget": round(steps_per_run / (PAPER_POPULATION * 1000 * 2 * PAPER_GENERATIONS), 5),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "result": result,
    }
    (out / f"{args.claim}.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / f'{args.claim}.json'} after {record['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
