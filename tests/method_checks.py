"""Checks every learner and (intervention, learner) pair must pass: a seed trains the same alone and in a batch; a
checkpoint loses nothing. `make` builds any pair with tiny networks."""

from __future__ import annotations

import io
from collections.abc import Callable, Collection

import torch
from helpers import SMALL, transitions

from cyclic_bench.agent import Agent
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.registry import get_method

LEARNERS = ("td3", "sac")  # every mechanism test of an intervention runs on each


def spec(seed_ids, n_tasks: int = 2, total_steps: int = 500) -> MethodSpec:
    """Obs size 4 and action size 2, like `helpers.transitions`."""
    return MethodSpec(
        obs_dim=4,
        action_dim=2,
        action_kind="continuous",
        seed_ids=tuple(seed_ids),
        n_tasks=n_tasks,
        total_steps=total_steps,
        device=torch.device("cpu"),
    )


def make(name: str, learner: str, seed_ids=(0, 1), n_tasks: int = 2, total_steps: int = 500, **overrides) -> Agent:
    """`method=<name> method.base=<learner>` with SMALL settings (tiny networks, batch 16) and `overrides`."""
    method_cls, config_cls = get_method(name, learner)
    return method_cls(config_cls(**{**SMALL, **overrides}), spec(seed_ids, n_tasks, total_steps))


def trained(agent: Agent, steps: int = 30, seed: int = 0) -> Agent:
    """`agent` after `steps` random transitions (updates start once its buffer holds a batch)."""
    for t in transitions(agent.spec.n_seeds, steps, seed=seed):
        agent.observe(t)
    return agent


def pick(t: Transition, row: int) -> Transition:
    return Transition(**{k: (v[row : row + 1] if isinstance(v, torch.Tensor) else v) for k, v in vars(t).items()})


def play(agents_and_rows: list[tuple[Method, int | None]], data: list[Transition], first: int, switches: Collection[int]) -> None:
    """Feed `data` (numbered from `first`) to each agent, its own row only where a row is given; task switches at `switches`."""
    for k, t in enumerate(data, start=first):
        for agent, row in agents_and_rows:
            if k in switches:
                agent.on_task_start(1)
            agent.observe(t if row is None else pick(t, row))


def assert_seed_independent(
    make: Callable[[tuple[int, ...]], Method], steps: int = 60, switches: Collection[int] = ()
) -> tuple[Method, Method]:
    """Seed 5 alone and as row 1 of seeds (4, 5, 6): bit-identical start, equal (to float tolerance) after training.

    Returns (alone, batch), for the caller to check that its mechanism did act.
    """
    batch, alone = make((4, 5, 6)), make((5,))
    for name, module in alone.modules().items():
        for a, b in zip(module.parameters(), batch.modules()[name].parameters(), strict=True):
            assert torch.equal(a[0], b[1])
    play([(batch, None), (alone, 1)], list(transitions(3, steps)), 0, switches)
    assert_same_modules(alone, batch, row=1, exact=False)
    mine, theirs = alone.diagnostics(), batch.diagnostics()
    for name, value in mine.items():
        torch.testing.assert_close(value[0], theirs[name][1], rtol=1e-4, atol=1e-5, equal_nan=True, msg=name)
    return alone, batch


def assert_round_trip(make: Callable[[tuple[int, ...]], Method], steps: int = 50, split: int = 30, switches: Collection[int] = ()) -> None:
    """Save after `split` steps (through bytes, as a checkpoint does), load into a fresh agent, continue both: identical."""
    data = list(transitions(2, steps))
    first = make((0, 1))
    play([(first, None)], data[:split], 0, switches)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make((0, 1))
    second.load_state_dict(torch.load(buffer, weights_only=False))
    play([(first, None), (second, None)], data[split:], split, switches)
    assert_same_modules(first, second, row=None, exact=True)
    mine, theirs = first.diagnostics(), second.diagnostics()
    assert mine.keys() == theirs.keys()
    for name, value in mine.items():
        torch.testing.assert_close(value, theirs[name], rtol=0, atol=0, equal_nan=True, msg=name)


def assert_same_modules(a: Method, b: Method, row: int | None, exact: bool) -> None:
    """Every module parameter and buffer of `a` equals `b`'s (row `row` of `b` against row 0 of `a` when given)."""
    assert a.modules().keys() == b.modules().keys()
    for name, module in a.modules().items():
        mine, theirs = module.state_dict(), b.modules()[name].state_dict()
        assert mine.keys() == theirs.keys(), name
        for key, value in mine.items():
            other = theirs[key] if row is None else theirs[key][row : row + 1]
            if exact:
                assert torch.equal(value, other), f"{name}.{key}"
            else:
                torch.testing.assert_close(value, other, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
