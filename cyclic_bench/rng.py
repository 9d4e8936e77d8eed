"""Counter-based per-seed random numbers.

Every draw is a hash of (seed id, stream, counter, element index), so seed k's numbers are the same whether it
runs alone or inside a batch of any size, on the CPU or a GPU, and the whole generator state is one integer
counter (cheap to checkpoint, and an in-place tensor op that a captured CUDA graph can replay).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2**32 for x < 2**32, split in 16-bit halves so int64 never overflows."""
    low = (x & 0xFFFF) * constant
    high = ((x >> 16) * constant) & 0xFFFF
    return (low + (high << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (lowbias32) on int64 tensors holding values below 2**32."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class SeedRNG:
    """Independent random streams for S seeds; every draw has a leading seed axis."""

    def __init__(self, seed_ids: Sequence[int] | torch.Tensor, stream: int, device: torch.device | str = "cpu"):
        ids = torch.as_tensor(seed_ids, dtype=torch.int64, device=device)
        self.keys = hash32(hash32(ids) ^ hash32(torch.tensor(stream * 0x9E3779B9, device=device)))
        self.counter = torch.zeros((), dtype=torch.int64, device=device)

    def bits(self, *shape: int) -> torch.Tensor:
        """Uniform 32-bit integers, shape [S, *shape]; advances the counter by one."""
        index = torch.arange(math.prod(shape), dtype=torch.int64, device=self.keys.device)
        draw_key = hash32(hash32(self.keys ^ hash32(self.counter)))
        self.counter.add_(1)
        return hash32(draw_key[:, None] + index * 0x9E3779B9).view(len(self.keys), *shape)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """Float32 uniform on [low, high), shape [S, *shape]."""
        unit = (self.bits(*shape) >> 8).to(torch.float32) * (1.0 / (1 << 24))
        return low + (high - low) * unit

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal (Box-Muller), shape [S, *shape]."""
        u1, u2 = self.uniform(2, *shape).unbind(1)
        return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos(2.0 * math.pi * u2)  # log1p(-u1): u1 < 1, finite

    def randint(self, high: int | torch.Tensor, *shape: int) -> torch.Tensor:
        """Integers in [0, high), shape [S, *shape]; 24 random bits scaled, so bias is below 2**-24 * high."""
        return ((self.bits(*shape) >> 8) * high) >> 24

    def state_dict(self) -> dict:
        return {"counter": self.counter.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.counter.copy_(state["counter"])
