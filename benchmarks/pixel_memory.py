"""Memory of DrQ from pixels: bytes per seed per stored transition, bytes one update holds, and what fits where.

1. The frame replay's bytes per seed per transition, read from an allocated buffer (84 x 84 frames, 6 actions).
2. What one DrQ update keeps for its backward pass, per seed and batch sample: measured on the CPU (every tensor
   autograd saves, counted once per storage, through torch.autograd.graph.saved_tensors_hooks) beside the estimate
   the memory check uses (`update_bytes`).
3. The plan for S seeds: replay plus updates against 90% of a device, and the largest replay per seed that fits.

Run from the repository root:
    python benchmarks/pixel_memory.py                       # 30 seeds, the GPU machine (139 GiB) and its host (128 GB)
    python benchmarks/pixel_memory.py --seeds 10 --batch 256
"""

from __future__ import annotations

import argparse
import math

import torch
from cyclic_bench.methods.learners.drq import MEMORY_USE, parameter_bytes, update_bytes

from cyclic_bench.frame_replay import FrameReplay, planned_bytes
from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import get_method

IMAGE, ACTIONS, MEASURED_BATCH = (9, 84, 84), 6, 16
DEVICES = {"GPU (139 GiB)": 139 * 2**30, "host (128 GB)": 128 * 10**9}


def replay_bytes_per_transition(capacity: int = 5000, seeds: int = 2) -> float:
    replay = FrameReplay(seeds, capacity, (3, *IMAGE[1:]), IMAGE[0] // 3, ACTIONS, "cpu")
    return replay.nbytes() / (seeds * capacity)


def measured_update_bytes(batch: int) -> int:
    """Bytes one seed's update on `batch` samples holds at its peak, the critic's backward pass of one shifted copy
    (the actor's saves far less): what autograd saves and the four shifted copies, each storage counted once."""
    method_cls, config_cls = get_method("drq")
    spec = MethodSpec(math.prod(IMAGE), ACTIONS, "continuous", (0,), 1, 10_000, torch.device("cpu"), obs_shape=IMAGE)
    agent = method_cls(config_cls(batch_size=batch), spec)
    learner = agent.learner
    images = torch.randint(0, 256, (1, batch, *IMAGE), dtype=torch.uint8)
    batch_data = {"obs": images, "next_obs": images, "action": torch.zeros(1, batch, ACTIONS), "reward": torch.zeros(1, batch)}
    batch_data["done"] = torch.zeros(1, batch)
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    views = learner.views(batch_data, learner.shift_rng)
    target = learner.critic_target(batch_data, learner.noise_rng, views["next_obs"])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        learner.view_loss(batch_data, views["obs"][0], target)  # the update's backward passes take one shifted copy at a time
    alive = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for key in views for v in views[key]}  # the shifted copies
    return sum((seen | alive).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--buffer", type=int, default=100_000)
    args = parser.parse_args()
    config = get_method("drq")[1](batch_size=args.batch, buffer_size=args.buffer)

    per_transition = replay_bytes_per_transition()
    print(f"replay: {per_transition:,.0f} bytes per seed per stored transition (one 3x84x84 uint8 frame is {3 * 84 * 84:,})")
    measured = measured_update_bytes(MEASURED_BATCH) / MEASURED_BATCH
    estimated = update_bytes(config, IMAGE) / args.batch
    print(f"update: {measured:,.0f} bytes per seed per batch sample measured, {estimated:,.0f} estimated by the memory check")

    replay = planned_bytes(args.seeds, args.buffer, (3, *IMAGE[1:]), IMAGE[0] // 3, ACTIONS)
    networks = args.seeds * parameter_bytes(config, IMAGE, ACTIONS)
    update = args.seeds * update_bytes(config, IMAGE) + networks
    print(f"networks: {networks / args.seeds / 1e6:.0f} MB per seed (parameters, gradients, Adam moments, targets)")
    plan = f"{args.seeds} seeds, buffer {args.buffer:,}, batch {args.batch}"
    print(f"{plan}: replay {replay / 1e9:.1f} GB + networks and updates {update / 1e9:.1f} GB")
    per_slot = (
        planned_bytes(args.seeds, 200_000, (3, *IMAGE[1:]), 3, ACTIONS) - planned_bytes(args.seeds, 100_000, (3, *IMAGE[1:]), 3, ACTIONS)
    ) / 1e5
    for name, have in DEVICES.items():
        room = MEMORY_USE * have - update
        largest = int(room / per_slot) if room > 0 else 0
        verdict = "fits" if replay + update <= MEMORY_USE * have else "does not fit"
        print(
            f"  {name}: {verdict} in {MEMORY_USE:.0%} ({MEMORY_USE * have / 1e9:.1f} GB); largest buffer per seed that fits: ~{largest:,}"
        )


if __name__ == "__main__":
    main()
