"""Perturbation events: at a given step, zero a fraction of the method's weights or change a task's dynamics.

`zero_weights` is the Hebbian meta-learning paper's damage test (Najarro & Risi 2020): per seed, exactly
round(fraction * N) of the method's N policy weights are set to zero, chosen at random from the seed's own stream.
`dynamics` multiplies a physical quantity of the task being trained at that step (every body's mass, every geom's
sliding friction, or gravity) for the rest of the stream, on its training and evaluation environments alike.
The engine records every event in the run's `events.csv`; the board measures recovery time from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cyclic_bench.errors import require
from cyclic_bench.rng import SeedRNG

EVENT_KINDS = ("zero_weights", "dynamics")
DYNAMICS_QUANTITIES = ("body_mass", "friction", "gravity")


@dataclass(frozen=True)
class Event:
    step: int  # environment step per seed at which the event happens (before that step is taken)
    kind: str  # zero_weights | dynamics
    fraction: float = 0.0  # zero_weights: fraction of the policy's weights set to zero, per seed
    quantity: str = "body_mass"  # dynamics: body_mass | friction | gravity
    scale: float = 1.0  # dynamics: factor applied to the quantity

    def describe(self) -> str:
        return f"fraction={self.fraction:g}" if self.kind == "zero_weights" else f"{self.quantity} x{self.scale:g}"


def parse_events(items: Sequence[dict], total_steps: int) -> tuple[Event, ...]:
    """Events from plain config dicts, validated against a stream of `total_steps` steps per seed."""
    events = []
    for item in items:
        item = dict(item)
        unknown = sorted(set(item) - {"step", "kind", "fraction", "quantity", "scale"})
        require(not unknown, f"an event has no setting {', '.join(unknown)}; allowed: step, kind, fraction, quantity, scale")
        require("step" in item and "kind" in item, f"event {item} needs a step and a kind")
        event = Event(**item)
        require(event.kind in EVENT_KINDS, f"event kind={event.kind!r} is not allowed; allowed: {', '.join(EVENT_KINDS)}")
        require(
            isinstance(event.step, int) and not isinstance(event.step, bool) and 0 < event.step < total_steps,
            f"event step={event.step} is outside the stream: it must be an integer in 1..{total_steps - 1}",
        )
        if event.kind == "zero_weights":
            require(
                _number(event.fraction) and 0 < event.fraction <= 1, f"event fraction={event.fraction} is not allowed: it must be in (0, 1]"
            )
        else:
            require(
                event.quantity in DYNAMICS_QUANTITIES,
                f"event quantity={event.quantity!r} is not allowed; allowed: {', '.join(DYNAMICS_QUANTITIES)}",
            )
            require(_number(event.scale) and event.scale > 0, f"event scale={event.scale} is not allowed: it must be a finite number > 0")
        events.append(event)
    return tuple(sorted(events, key=lambda e: e.step))


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@torch.no_grad()
def zero_fraction(weights: Sequence[torch.Tensor], fraction: float, rng: SeedRNG) -> torch.Tensor:
    """Set exactly round(fraction * N) of each seed's N entries (over all `weights`, [S, ...] each) to zero.

    Returns how many entries were zeroed per seed, [S].
    """
    flat = [w.reshape(w.shape[0], -1) for w in weights]
    sizes = [f.shape[1] for f in flat]
    count = round(fraction * sum(sizes))
    chosen = torch.zeros(flat[0].shape[0], sum(sizes), dtype=torch.bool, device=flat[0].device)
    chosen.scatter_(1, rng.uniform(sum(sizes)).topk(count, dim=1).indices, True)
    for w, keep in zip(weights, torch.split(~chosen, sizes, dim=1), strict=True):
        w.mul_(keep.reshape(w.shape).to(w.dtype))
    return chosen.sum(dim=1)
