"""Captured gradient updates: a capturable learner's update (the batch draw included) replayed from CUDA graphs.

A CUDA graph records the kernels of one call and the addresses of every tensor they touch; replaying it launches the
same kernels on the same memory at the cost of one launch, which is what makes a 30-seed update fast on a GPU (the
eager update spends most of its time launching hundreds of small kernels from Python). It is valid only while
(a) nothing inside reads a tensor's value on the host or branches on one (the learner's `learn` does neither; the
policy delay is decided on the host by `plan_update`, from a Python counter), (b) every shape is fixed (the batch
size is; the buffer's fill level is a device tensor, `SeedReplay.size_now`), and (c) every tensor it touches keeps its
address: interventions change weights, masks, optimizer moments, learning rates and random counters in place, between
replays. A change of structure (an injected head, a new optimizer, a mask set for the first time) changes the set of
addresses; `UpdateGraphs` notices (it compares the addresses of everything an update can touch before every replay)
and captures again.

The policy delay is two graphs, keyed by what `plan_update` says the update steps (critics alone, or critics, actor
and targets): the critic-only update does no actor work at all, and the eager code path is the same function with
the same Python branch, so the eager results stay bit-identical. (One graph with a masked actor step would do the
actor's forward and backward at every update and multiply its step by 0 or 1: more work, and a different eager path.)

Each key runs `WARMUP_CALLS` times eagerly (on a side stream, as CUDA graph capture requires, so lazy allocations
and library handles exist before capture), then is captured and replayed. Every call, warm-up or replay, is one real
update: capture itself does not run the kernels, so the capturing call replays once after recording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

WARMUP_CALLS = 3  # eager calls of each graph's function before it is captured


def tensors_in(value: Any) -> Iterable[torch.Tensor]:
    """Every tensor in nested dicts, lists and tuples (an optimizer's or a random stream's state)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tensors_in(item)


def update_addresses(learner, intervention) -> tuple:
    """The identity of everything a learner's update can touch: tensor addresses (modules' parameters and buffers,
    optimizer states, random counters, replay, recorded losses, the active mask, the exploration scale, initial
    parameters) and the objects the update calls (networks, optimizers, loss terms). Equal tuples: a captured graph
    still computes what the eager update would."""
    modules = [*learner.modules().values(), *intervention.modules().values()]
    tensors = [t for module in modules for t in (*module.parameters(), *module.buffers())]
    streams = [*learner.random_streams().values(), *intervention.random_streams().values()]
    tensors += [rng.counter for rng in streams]
    tensors += list(tensors_in([opt.state_dict() for opt in learner.optimizers()]))
    tensors += [*learner.replay.data.values(), learner.replay.size_now, learner.replay.position_now, *learner.last.values()]
    tensors += [learner.active, *(net_initial for net in learner.networks.values() for net_initial in net.initial)]
    if learner.exploration_scale is not None:
        tensors.append(learner.exploration_scale)
    objects = [(id(net.module), id(net.target), id(net.optimizer), *map(id, net.loss_terms)) for net in learner.networks.values()]
    masks = [getattr(layer, "mask", None) is None for module in modules for layer in module.modules()]
    return tuple(t.data_ptr() for t in tensors), tuple(objects), tuple(masks), learner.exploration_scale is None


def warm_on_side_stream(fn: Callable[[], Any]) -> Any:
    """One eager call on a side stream, as CUDA graph capture wants its warm-up."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fn()
    torch.cuda.current_stream().wait_stream(side)
    return out


def capture_cuda_graph(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Record fn's kernels (without running them) into a CUDA graph; returns the replay, which gives fn's outputs."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay() -> Any:
        graph.replay()
        return out  # the graph writes the same output tensors at every replay

    return replay


class UpdateGraphs:
    """CUDA graphs of a learner's update, one per key; captured after `WARMUP_CALLS` eager calls, dropped and captured
    again whenever `addresses()` changes. `warm` and `capture` are CUDA's unless given (a test passes stand-ins)."""

    def __init__(self, addresses: Callable[[], tuple], warm=warm_on_side_stream, capture=capture_cuda_graph):
        self.addresses, self.warm, self.capture = addresses, warm, capture
        self.seen: tuple | None = None
        self.replays: dict[Any, Callable[[], Any]] = {}
        self.calls: dict[Any, int] = {}
        self.captures = 0  # graphs captured so far (tests and the benchmarks read it)

    def run(self, key: Any, fn: Callable[[], Any]) -> Any:
        """fn() (one update), replayed from the graph of `key` once there is one."""
        now = self.addresses()
        if now != self.seen:
            self.replays.clear(), self.calls.clear()
            self.seen = now
        if key not in self.replays:
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] <= WARMUP_CALLS:
                return self.warm(fn)
            self.replays[key] = self.capture(fn)  # recorded, not run: the replay below is this call's update
            self.captures += 1
        return self.replays[key]()
