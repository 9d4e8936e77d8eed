"""Per-unit surgery on seed-batched layers: give chosen hidden units a fresh start (ReDo, Continual Backprop).

Hidden unit i of `layer` owns its incoming column `layer.weight[..., :, i]` and bias `layer.bias[..., i]`, and its
outgoing row `next_layer.weight[..., i, :]`. A fresh start draws the incoming weights and bias from the layer's
initial distribution, zeroes the outgoing weights (so the network's output does not jump) and forgets the Adam
moments of all of them (Sokar et al. 2023, ReDo; Dohare et al. 2024, continual backprop).
"""

from __future__ import annotations

import copy

import torch

from cyclic_bench.nn import BatchedLayerNorm, BatchedLinear, SeedAdam
from cyclic_bench.rng import SeedRNG


@torch.no_grad()
def reinit_units(
    layer: BatchedLinear,
    next_layer: BatchedLinear,
    units: torch.Tensor,
    rng: SeedRNG,
    optimizer: SeedAdam | None,
    norm: BatchedLayerNorm | None = None,
) -> None:
    """Re-initialise the hidden units where `units` (bool [S, *members, out]) is True.

    Draws a whole fresh layer from `rng` whatever `units` holds, so a seed's stream advances the same way alone or
    in a batch; the caller leaves out seeds that must not change. `norm` is the LayerNorm between the two layers, if
    any: its gain and offset of those units return to 1 and 0.
    """
    incoming = units.unsqueeze(-2)  # [S, *members, 1, out]: broadcasts over the weight's rows and the bias
    outgoing = units.unsqueeze(-1)  # [S, *members, out, 1]: broadcasts over the next weight's columns
    fresh = copy.deepcopy(layer)
    fresh.reset_parameters(rng)
    changed = [(layer.weight, incoming), (layer.bias, incoming), (next_layer.weight, outgoing)]
    layer.weight.copy_(torch.where(incoming, fresh.weight, layer.weight))
    layer.bias.copy_(torch.where(incoming, fresh.bias, layer.bias))
    next_layer.weight.masked_fill_(outgoing, 0.0)
    if norm is not None:
        norm.weight.masked_fill_(incoming, 1.0)
        norm.bias.masked_fill_(incoming, 0.0)
        changed += [(norm.weight, incoming), (norm.bias, incoming)]
    if optimizer is not None:
        for param, where in changed:
            forget_moments(optimizer, param, where)


@torch.no_grad()
def forget_moments(optimizer: SeedAdam, param: torch.nn.Parameter, where: torch.Tensor) -> None:
    """Zero Adam's first and second moments of `param` where `where` (broadcastable to it) is True."""
    for moment in optimizer.moments(param):
        moment.masked_fill_(where, 0.0)
