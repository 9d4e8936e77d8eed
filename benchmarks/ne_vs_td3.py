"""NE's update cost against TD3's: S seeds each, HalfCheetah-v5 sizes, in the same run, updates interleaved.

One TD3 and one NE agent (defaults of both: 256-256 actor and critics, batch 256; NE starts sparse and grows on the
cosine schedule of a 1M-update stream, whose growth span is its first 500k updates) train on replays pre-filled
with the same random transitions. Their updates alternate (TD3, NE, TD3, NE, ...), each timed alone, so a change of
load on the machine slows both alike. One repetition is a block of `topology_every` x `policy_delay` (200) updates
of each, one full cycle of NE's topology: the critic changes every 100 updates, the actor every 100 of its own
(delayed) updates, so NE's block holds two critic and one actor topology change (dense gradients, dormant scores,
growth and pruning, the review trigger): its figure is amortised as in training. Each repetition gives one ratio
NE/TD3; the table reports the median and the range over the repetitions. The cost of one topology change of both
networks alone is timed afterwards, in TD3 updates.

Run from the repository root:
    python benchmarks/ne_vs_td3.py                               # S = 30, device auto (CUDA if available)
    python benchmarks/ne_vs_td3.py --device cpu --threads 1 --repeats 3 --json ne_vs_td3.json

The ratio is the figure that matters: the absolute times drift with the load of the machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

import torch
from seed_batching import ACTION_DIM, OBS_DIM, PREFILL, WARMUP, device_name, prefill, sync

from cyclic_bench.agent import Agent
from cyclic_bench.method import MethodSpec
from cyclic_bench.plasticity import density
from cyclic_bench.registry import get_method

SCHEDULE_UPDATES = 1_000_000  # NE's schedules as in a stream of 1M updates (the replays stay small)


def make_agents(n_seeds: int, hidden: list[int], device: torch.device) -> dict[str, Agent]:
    spec = MethodSpec(OBS_DIM, ACTION_DIM, "continuous", tuple(range(n_seeds)), n_tasks=1, total_steps=PREFILL, device=device)
    sizes = dict(actor_hidden=list(hidden), critic_hidden=list(hidden))
    (TD3, TD3Config), (NE, NEConfig) = get_method("td3"), get_method("ne")
    return {"td3": TD3(TD3Config(**sizes), spec), "ne": NE(NEConfig(**sizes, schedule_updates=SCHEDULE_UPDATES), spec)}


def time_interleaved(agents: dict[str, Agent], count: int, device: torch.device) -> dict[str, float]:
    """Seconds per update of each agent over `count` updates each, one update of each in turn, as `observe` runs
    them (sample, then update): a change of load on the machine slows both alike."""
    seconds = dict.fromkeys(agents, 0.0)
    for _ in range(count):
        for name, agent in agents.items():
            sync(device)
            start = time.perf_counter()
            agent.update()
            sync(device)
            seconds[name] += time.perf_counter() - start
    return {name: total / count for name, total in seconds.items()}


def time_topology_change(agent: Agent, repeats: int, device: torch.device) -> float:
    """Seconds of one topology change of both networks alone (on a fresh batch), the median of `repeats`."""
    seconds = []
    for _ in range(repeats):
        batch = agent.learner.sample()
        sync(device)
        start = time.perf_counter()
        agent.intervention.topology_step(batch)
        sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(n_seeds: int, hidden: list[int], repeats: int, device: torch.device) -> dict:
    agents = make_agents(n_seeds, hidden, device)
    prefill(list(agents.values()), n_seeds, PREFILL)
    block = agents["ne"].config.topology_every * agents["ne"].config.policy_delay
    time_interleaved(agents, WARMUP, device)  # untimed first calls; any `block` updates in a row then hold one full cycle
    blocks: dict[str, list[float]] = {"td3": [], "ne": []}
    for _ in range(repeats):
        for name, seconds in time_interleaved(agents, block, device).items():
            blocks[name].append(seconds)
        print(f"  TD3 {blocks['td3'][-1] * 1e3:.1f} ms/update, NE {blocks['ne'][-1] * 1e3:.1f} ms/update", file=sys.stderr, flush=True)
    ratios = [ne / td3 for ne, td3 in zip(blocks["ne"], blocks["td3"], strict=True)]
    topology = time_topology_change(agents["ne"], max(3, repeats), device)
    td3_update = statistics.median(blocks["td3"])
    return {
        "seeds": n_seeds,
        "block_updates": block,
        "td3_ms_per_update": td3_update * 1e3,
        "ne_ms_per_update": statistics.median(blocks["ne"]) * 1e3,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": ratios,
        "topology_change_ms": topology * 1e3,
        "topology_change_in_td3_updates": topology / td3_update,
        "ne_density": {name: float(density(net.module).mean()) for name, net in agents["ne"].learner.networks.items()},  # at the end
    }


def markdown(row: dict) -> str:
    lines = [
        "| S | TD3 ms/update | NE ms/update (amortised) | NE / TD3, median [min, max] | one topology change (both networks) |",
        "|---:|---:|---:|---:|---:|",
        f"| {row['seeds']} | {row['td3_ms_per_update']:.1f} | {row['ne_ms_per_update']:.1f} | "
        f"{row['ratio_median']:.2f}x [{row['ratio_min']:.2f}, {row['ratio_max']:.2f}] | "
        f"{row['topology_change_ms']:.0f} ms = {row['topology_change_in_td3_updates']:.1f} TD3 updates |",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = cuda if available")
    parser.add_argument("--seeds", type=int, default=30, help="S, seeds trained together by each agent")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="actor and critic hidden sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks of 200 interleaved updates of each agent")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 avoids spinning on a busy machine")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python " + shlex.join(sys.argv)
    print(f"device: {device_name(device)} | torch {torch.__version__} | hidden {args.hidden} | command: `{command}`", flush=True)
    row = measure(args.seeds, args.hidden, args.repeats, device)
    print("per update: sample + gradient update; NE's blocks each hold one full topology cycle (2 critic, 1 actor changes)")
    print(markdown(row))
    if args.json:
        report = {"command": command, "device": device_name(device), "torch": torch.__version__, "hidden": args.hidden}
        with open(args.json, "w") as f:
            json.dump(report | row, f, indent=2)


if __name__ == "__main__":
    main()
