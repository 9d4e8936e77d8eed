"""A learner with its intervention, as one Method to the engine.

`Agent.observe` is where the hooks meet the learner's update:

    store the step
    for each update the step calls for (`Agent.update`):
        batch = learner.sample(intervention.sample_positions)
        intervention.before_update(batch)
        stepped = learner.update(batch)            # what a CUDA graph replays on a GPU (with the batch draw)
        intervention.after_update(batch, stepped)
    intervention.after_step(step)

The registry makes one Agent subclass per (intervention, learner) pair (`method=redo method.base=sac`); a learner
alone is the pair with the hook-less base `Intervention`.

On CUDA (and `MethodSpec.capture`, the run's `capture=true`, the default) a capturable learner's update is replayed
from CUDA graphs (`cyclic_bench.capture`): `learner.plan_update()` decides on the host what the update steps, and
`update_step` (the batch draw and `learner.learn`) is what a graph replays. An intervention that draws its own
batch positions or looks at the batch before the update keeps those hooks eager: its batch is copied into fixed
tensors that the graph reads. Everything else an intervention does runs between replays, in place.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from cyclic_bench.capture import UpdateGraphs, update_addresses
from cyclic_bench.intervention import Intervention
from cyclic_bench.learner import Batch, Learner
from cyclic_bench.method import Method, MethodSpec, Transition
from cyclic_bench.nn import SeedAdam


class Agent(Method):
    """`Learner` and `Intervention` are set by the registry on each pair's subclass."""

    Learner: ClassVar[type[Learner]]
    Intervention: ClassVar[type[Intervention]] = Intervention

    def __init__(self, config, spec: MethodSpec):
        super().__init__(config, spec)
        options = self.Learner.network_options(config)
        self.Intervention.shape_networks(config, options)
        self.learner = self.Learner(config, spec, options, self.active)
        self.intervention = self.Intervention(config, self.learner)
        hooks = type(self.intervention)
        self.draws_inside = hooks.sample_positions is Intervention.sample_positions and hooks.before_update is Intervention.before_update
        self.batch: Batch | None = None  # the fixed batch tensors a graph reads, where the intervention draws the batch
        self.graphs: UpdateGraphs | None = None
        self.runner = None  # stepping -> batch: runs `update_step` (from CUDA graphs, compiled, ...); None: the eager update
        if spec.capture and spec.device.type == "cuda" and self.learner.capturable:
            self.graphs = UpdateGraphs(lambda: (update_addresses(self.learner, self.intervention), self.batch_addresses()))
            self.runner = lambda stepping: self.graphs.run(stepping, lambda: self.update_step(stepping))

    @classmethod
    def check_resources(cls, config, spec: MethodSpec) -> None:
        cls.Learner.check_resources(config, spec)

    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        with self.intervention.computing():
            return self.learner.act(obs, explore)

    def observe(self, transition: Transition) -> None:
        self.learner.store(transition)
        for _ in range(self.learner.updates_due(transition)):
            self.update()
        self.intervention.after_step(transition)

    def update(self) -> None:
        """One gradient update on a fresh batch, with the intervention's hooks around it."""
        learner, intervention = self.learner, self.intervention
        if self.runner is None:
            batch = learner.sample(intervention.sample_positions)
            intervention.before_update(batch)
            with intervention.computing():
                stepped = learner.update(batch)
        else:
            stepped = learner.plan_update()
            if not self.draws_inside:
                self.hold_batch(learner.sample(intervention.sample_positions))
                intervention.before_update(self.batch)
            batch = self.runner(stepped)
        intervention.after_update(batch, stepped)

    def update_step(self, stepping: tuple[str, ...]) -> Batch:
        """The update a graph replays: the batch draw (unless the intervention draws it) and the learner's tensor work."""
        with self.intervention.computing():
            batch = self.learner.sample() if self.draws_inside else self.batch
            self.learner.learn(batch, stepping)
        return batch

    def hold_batch(self, batch: Batch) -> None:
        """Copy a batch drawn outside the graph into the fixed tensors it reads."""
        if self.batch is None:
            self.batch = {name: torch.empty_like(values) for name, values in batch.items()}
        for name, values in batch.items():
            self.batch[name].copy_(values)

    def batch_addresses(self) -> tuple:
        return () if self.batch is None else tuple(values.data_ptr() for values in self.batch.values())

    def on_task_start(self, task_index: int) -> None:
        self.intervention.on_task_start(task_index)

    def on_episode_start(self, mask: torch.Tensor, explore: bool) -> None:
        self.learner.on_episode_start(mask, explore)
        self.intervention.on_episode_start(mask, explore)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {**self.learner.diagnostics(), **self.intervention.diagnostics()}

    def policy_weights(self) -> list[torch.Tensor]:
        return self.learner.policy_weights()

    def optimizers(self) -> list[SeedAdam]:
        return self.learner.optimizers()

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**self.learner.modules(), **self.intervention.modules()}

    def extra_state(self) -> dict:
        return {"learner": self.learner.extra_state(), "intervention": self.intervention.extra_state()}

    def load_extra_state(self, state: dict) -> None:
        self.learner.load_extra_state(state["learner"])
        self.intervention.load_extra_state(state["intervention"])

    def load_state_dict(self, state: dict) -> None:
        self.intervention.restore_structure(state["extra"]["intervention"])  # the saved structure first, then its values
        super().load_state_dict(state)
