"""A replay buffer per seed, stored as tensors [S, capacity, ...] on the method's device.

All seeds step in lockstep, so they share one write position and one size; the contents are per seed.
"""

from __future__ import annotations

import torch


class SeedReplay:
    """Ring buffer of transitions for S seeds; `fields` maps a name to its per-transition shape."""

    def __init__(self, n_seeds: int, capacity: int, fields: dict[str, tuple[int, ...]], device: torch.device | str):
        self.n_seeds, self.capacity = n_seeds, capacity
        self.data = {name: torch.zeros(n_seeds, capacity, *shape, device=device) for name, shape in fields.items()}
        self.position = 0
        self.size = 0

    def add(self, **batch: torch.Tensor) -> None:
        """Each value is [S, E, *shape]: E transitions per seed, written at the same slots for every seed."""
        n = next(iter(batch.values())).shape[1]
        slots = (self.position + torch.arange(n)) % self.capacity
        for name, values in batch.items():
            self.data[name][:, slots.to(values.device)] = values.to(self.data[name].dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def chronological(self, logical: torch.Tensor) -> torch.Tensor:
        """Slot of the i-th oldest stored transition (0 = oldest), for age-aware sampling."""
        return (self.position - self.size + logical) % self.capacity

    def get(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        """slots: [S, B] int64 -> each field as [S, B, *shape] (seed s reads only its own rows)."""
        rows = torch.arange(self.n_seeds, device=slots.device)[:, None]
        return {name: values[rows, slots] for name, values in self.data.items()}

    def state_dict(self) -> dict:
        return {"position": self.position, "size": self.size, "data": {k: v[:, : self.size] for k, v in self.data.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.position, self.size = state["position"], state["size"]
        for name, values in state["data"].items():
            self.data[name][:, : self.size] = values.to(self.data[name].device)
