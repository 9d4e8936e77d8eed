"""A replay buffer per seed, stored as tensors [S, capacity, ...] on the method's device.

All seeds step in lockstep, so they share one write position and one size; the contents are per seed. The position
and size are kept twice: as Python ints (for host-side decisions) and as 0-d device tensors updated in place, which
sampling reads, so a captured update (a CUDA graph) samples from the buffer as it is at each replay.
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
        device = next(iter(self.data.values())).device
        self.position_now = torch.zeros((), dtype=torch.int64, device=device)  # = position, on the device
        self.size_now = torch.zeros((), dtype=torch.int64, device=device)  # = size, on the device

    def add(self, **batch: torch.Tensor) -> None:
        """Each value is [S, E, *shape]: E transitions per seed, written at the same slots for every seed."""
        n = next(iter(batch.values())).shape[1]
        slots = (self.position + torch.arange(n)) % self.capacity
        for name, values in batch.items():
            self.data[name][:, slots.to(values.device)] = values.to(self.data[name].dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.sync_counters()

    def sync_counters(self) -> None:
        """Copy the host position and size into their device tensors, in place (their addresses never change)."""
        self.position_now.fill_(self.position)
        self.size_now.fill_(self.size)

    def chronological(self, logical: torch.Tensor) -> torch.Tensor:
        """Slot of the i-th oldest stored transition (0 = oldest), for age-aware sampling."""
        return (self.position_now - self.size_now + logical) % self.capacity

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
        self.sync_counters()
