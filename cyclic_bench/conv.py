"""Seed-batched convolutional building blocks for learners from pixels: a grouped convolution (one group per seed),
the DrQ encoder built from it, and random-shift augmentation drawn per seed.

As in cyclic_bench/nn.py every parameter has a leading seed axis and draws its initial values from a `SeedRNG`, so
seed k starts bit-identical alone or in any batch; a grouped convolution computes each seed's group on its own
input only, so seed k's outputs do not depend on the other seeds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cyclic_bench.nn import seed_view
from cyclic_bench.plasticity import active_fraction, dormant_ratio
from cyclic_bench.rng import SeedRNG


class BatchedConv2d(nn.Module):
    """A 2-d convolution with weights [S, out, in, k, k] and bias [S, out]; inputs [S, N, in, H, W]."""

    def __init__(self, n_seeds: int, in_channels: int, out_channels: int, kernel: int, stride: int, rng: SeedRNG):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel, self.stride = in_channels, out_channels, kernel, stride
        self.weight = nn.Parameter(torch.empty(n_seeds, out_channels, in_channels, kernel, kernel, device=rng.keys.device))
        self.bias = nn.Parameter(torch.empty(n_seeds, out_channels, device=rng.keys.device))
        self.reset_parameters(rng)

    def reset_parameters(self, rng: SeedRNG, seeds: torch.Tensor | None = None) -> None:
        """PyTorch's default Conv2d init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); only `seeds` (bool [S]) if given."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel * self.kernel)
        with torch.no_grad():
            for param in (self.weight, self.bias):
                fresh = rng.uniform(*param.shape[1:], low=-bound, high=bound)
                param.copy_(fresh if seeds is None else torch.where(seed_view(seeds, param), fresh, param))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S, N, C, H, W = x.shape
        grouped = x.transpose(0, 1).reshape(N, S * C, H, W)
        weight = self.weight.reshape(S * self.out_channels, C, self.kernel, self.kernel)
        y = nn.functional.conv2d(grouped, weight, self.bias.reshape(-1), stride=self.stride, groups=S)
        return y.view(N, S, self.out_channels, *y.shape[-2:]).transpose(0, 1)


def conv_output_size(size: int, layers: int) -> int:
    """Height (= width) after the DrQ encoder's convolutions: 3x3, the first with stride 2, the others stride 1."""
    return (size - 3) // 2 + 1 - 2 * (layers - 1)


class ConvEncoder(nn.Module):
    """DrQ's convolutional encoder: `layers` 3x3 convolutions of `channels` (the first with stride 2), a ReLU after each,
    on images scaled to [0, 1]; outputs the flattened feature map [S, N, channels * h * w]."""

    def __init__(self, n_seeds: int, image_shape: tuple[int, int, int], channels: int, layers: int, rng: SeedRNG):
        super().__init__()
        in_channels, height, _ = image_shape
        self.layers = nn.ModuleList(
            BatchedConv2d(n_seeds, in_channels if i == 0 else channels, channels, 3, 2 if i == 0 else 1, rng) for i in range(layers)
        )
        self.output_dim = channels * conv_output_size(height, layers) ** 2

    def reset_parameters(self, rng: SeedRNG, seeds: torch.Tensor | None = None) -> None:
        for layer in self.layers:
            layer.reset_parameters(rng, seeds)

    def forward(self, images: torch.Tensor, hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
        """images [S, N, C, H, W] (0-255) -> [S, N, output_dim]; appends each layer's output to `hidden` if given."""
        x = images / 255.0
        for layer in self.layers:
            x = torch.relu(layer(x))
            if hidden is not None:
                hidden.append(x)
        return x.flatten(2)


def random_shift(images: torch.Tensor, pad: int, rng: SeedRNG) -> torch.Tensor:
    """DrQ's augmentation: pad each image by `pad` pixels (replicating its border) and crop it back at a random offset,
    drawn per seed and image from `rng`. images [S, N, C, H, W] -> float [S, N, C, H, W]."""
    S, N, C, H, W = images.shape
    offsets = rng.randint(2 * pad + 1, N, 2)  # [S, N, 2]: rows, columns
    padded = nn.functional.pad(images.float().reshape(S * N, C, H, W), (pad, pad, pad, pad), mode="replicate")
    rows = offsets[..., 0].reshape(-1, 1) + torch.arange(H, device=images.device)  # [S*N, H]
    cols = offsets[..., 1].reshape(-1, 1) + torch.arange(W, device=images.device)
    every = torch.arange(S * N, device=images.device)[:, None, None]
    cropped = padded[every, :, rows[:, :, None], cols[:, None, :]]  # [S*N, H, W, C]
    return cropped.permute(0, 3, 1, 2).reshape(S, N, C, H, W)


@torch.no_grad()
def encoder_diagnostics(prefix: str, encoder: ConvEncoder, images: torch.Tensor, initial: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The plasticity diagnostics of a convolutional encoder on probe images: a channel is a unit, scored on its mean
    |activation| over the batch and every position (as ReDo scores convolutional layers)."""
    hidden: list[torch.Tensor] = []
    encoder(images, hidden=hidden)
    units = [h.permute(0, 1, 3, 4, 2).flatten(1, 3) for h in hidden]  # [S, N * h * w, channels]
    params = list(encoder.parameters())
    S = params[0].shape[0]
    weights = torch.cat([layer.weight.detach().reshape(S, -1) for layer in encoder.layers], dim=1)
    squares = [(p.detach() - p0).square().reshape(S, -1).sum(dim=1) for p, p0 in zip(params, initial, strict=True)]
    return {
        f"{prefix}_dormant_ratio_tau0": dormant_ratio(units, 0.0),
        f"{prefix}_dormant_ratio_tau0.1": dormant_ratio(units, 0.1),
        f"{prefix}_active_units": active_fraction(units),
        f"{prefix}_weight_magnitude": weights.abs().mean(dim=1),
        f"{prefix}_distance_from_init": torch.stack(squares).sum(dim=0).sqrt(),
        f"{prefix}_parameters": torch.full((S,), float(sum(p[0].numel() for p in params)), device=weights.device),
    }
