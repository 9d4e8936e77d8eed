"""The engine: plays a method through a stream, step-budgeted, evaluating, checkpointing and resuming.

One loop trains all seeds of a run at once. Budgets count environment steps per seed: each loop iteration
is E (envs per seed) steps of every seed. All seeds switch task at the same step, and the last transition of a
task visit is marked truncated. Evaluation runs on separate environments and never spends training budget.

A seed fails, and stops, when its actions are not finite (or not valid arms) or its parameters are not; the
others go on exactly as they would without it (seeds never interact, and diagnostics are NaN-safe per seed). Its
rows stop at its failure. Once every seed has failed the run stops early: nothing is left to train or evaluate.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from cyclic_bench.envs import EnvPool
from cyclic_bench.errors import ConfigError, require
from cyclic_bench.events import zero_fraction
from cyclic_bench.method import Method, Transition
from cyclic_bench.nn import seed_view
from cyclic_bench.results import TABLES, RunDir
from cyclic_bench.rng import SeedRNG
from cyclic_bench.stream import ActionAdapter, ObservationAdapter, Stream
from cyclic_bench.workers import ProcessPool

WARMUP_STREAM = 1000  # random-stream id of the engine's warm-up actions (methods use small ids)
EVENT_STREAM = 1001  # random-stream id of perturbation events


@dataclass
class EngineOptions:
    checkpoint_every: int  # environment steps per seed between checkpoints
    progress: bool  # show a progress bar
    env_workers: int = 0  # worker processes stepping the environments; 0 = step them in this process


def env_seed(*key: int) -> int:
    """A 32-bit environment seed from an integer key (seed id, purpose, cycle, task, ...)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


class Engine:
    def __init__(self, stream: Stream, method: Method, run_dir: RunDir, options: EngineOptions):
        self.stream, self.method, self.run_dir, self.options = stream, method, run_dir, options
        self.spec = method.spec
        self.S, self.E = self.spec.n_seeds, method.envs_per_seed
        for name, value in (
            ("steps_per_task", stream.steps_per_task),
            ("eval_every", stream.eval_every),
            ("checkpoint_every", options.checkpoint_every),
        ):
            require(
                value % self.E == 0,
                f"{name}={value} is not allowed: it must be a multiple of the method's {self.E} environments per seed "
                "(an ES method's population)",
            )
        for event in stream.events:
            require(event.step % self.E == 0, f"event step={event.step} is not allowed: it must be a multiple of {self.E} envs per seed")
            require(
                event.kind != "zero_weights" or method.policy_weights(),
                f"method {type(method).__name__} has no policy weights to zero; drop the zero_weights event",
            )
        self.obs_adapter = ObservationAdapter(stream)
        self.action_adapters = [ActionAdapter(task) for task in stream.eval_tasks]
        self.warmup_rng = SeedRNG(self.spec.seed_ids, stream=WARMUP_STREAM, device=self.spec.device)
        self.event_rng = SeedRNG(self.spec.seed_ids, stream=EVENT_STREAM, device=self.spec.device)
        self.step = 0
        self.pool: EnvPool | None = None  # the training environments of the current task visit
        self.obs: np.ndarray | None = None  # their current observations, [S*E, task obs]
        self.eval_pools: dict[int, EnvPool] = {}
        self.rows: dict[str, list[dict]] = {table: [] for table in TABLES}
        self.window: dict[str, np.ndarray] = {}  # per-seed sums of training-time quantities since the last evaluation
        self.seconds_before = 0.0  # training wall time of earlier sessions of this run (before a resume)
        self.started_at = time.perf_counter()  # when this session's training began (reset by run)
        self.checkpoint_step: int | None = None  # step of the last checkpoint written or loaded

    # ---- the loop -----------------------------------------------------------------------------------------
    def run(self) -> None:
        checkpoint = self.run_dir.load_checkpoint()
        if checkpoint is not None:
            self.restore(checkpoint)
        else:
            self.run_dir.rewrite_tables(self.rows)
            self.evaluate()
        total = self.stream.total_steps
        self.started_at = time.perf_counter()
        interval = 0.5 if sys.stderr.isatty() else 30.0  # a log file gets a line every 30 s, not a flood
        bar = tqdm(total=total, initial=self.step, unit="step", disable=not self.options.progress, dynamic_ncols=True, mininterval=interval)
        try:
            while self.step < total and self.method.active.any():
                cycle, task_index = self.stream.position(self.step)
                self.apply_events(task_index)
                if self.pool is None:
                    self.start_visit(task_index)
                self.train_step(task_index)
                self.step += self.E
                if self.step % self.stream.steps_per_task == 0:
                    self.end_visit()
                if self.step % self.stream.eval_every == 0:
                    self.check_health()
                    self.evaluate()
                if self.step % self.options.checkpoint_every == 0 or self.step == total:
                    self.save()
                bar.update(self.E)
                rate = bar.format_dict.get("rate") or 0.0
                bar.set_postfix_str(
                    f"task {self.stream.tasks[task_index].name} cycle {cycle + 1}/{self.stream.cycles} seed-steps/s {rate * self.S:,.0f}",
                    refresh=False,
                )
            if self.step < total and self.checkpoint_step != self.step:
                self.save()  # every seed failed: the run stops here, and a resume stops here too
        finally:
            bar.close()
            for pool in [self.pool, *self.eval_pools.values()]:
                if pool is not None:
                    pool.close()

    def elapsed(self) -> float:
        """Wall-clock seconds of training so far, across resumes."""
        return self.seconds_before + time.perf_counter() - self.started_at

    def make_visit_pool(self, task_index: int) -> EnvPool:
        """The training environments of the current task visit, seeded by (seed, cycle, task, env)."""
        cycle, _ = self.stream.position(self.step)
        seeds = [env_seed(seed, 1, cycle, task_index, e) for seed in self.spec.seed_ids for e in range(self.E)]
        return self.make_pool(task_index, seeds)

    def make_pool(self, task_index: int, seeds: list[int]) -> EnvPool:
        """Environments of a task, with every dynamics change that has happened to it so far."""
        make = self.stream.eval_tasks[task_index].make_pool
        pool = ProcessPool(make, seeds, self.options.env_workers) if self.options.env_workers else make(seeds)
        for event in self.stream.events:
            if event.kind == "dynamics" and event.step < self.step and self.stream.position(event.step)[1] == task_index:
                pool.scale_dynamics(event.quantity, event.scale)
        return pool

    def start_visit(self, task_index: int) -> None:
        self.pool = self.make_visit_pool(task_index)
        self.obs = self.pool.reset()
        if self.stream.boundaries_visible:
            self.method.on_task_start(task_index)
        self.method.on_episode_start(torch.ones(self.S, self.E, dtype=torch.bool, device=self.spec.device), explore=True)

    def end_visit(self) -> None:
        self.pool.close()
        self.pool, self.obs = None, None

    def train_step(self, task_index: int) -> None:
        S, E, device = self.S, self.E, self.spec.device
        obs = self.to_tensor(self.obs_adapter(self.obs, task_index))
        if self.step < self.stream.warmup_steps and self.method.uses_random_warmup:
            action = self.random_actions()
        else:
            action = self.safe_actions(self.method.act(obs, explore=True))
        result = self.pool.step(self.env_actions(action, task_index))
        for name, values in {"reward": result.reward, **result.info}.items():
            self.window[name] = self.window.get(name, 0.0) + np.asarray(values, dtype=np.float64).reshape(S, E).sum(axis=1)
        visit_ends = (self.step + E) % self.stream.steps_per_task == 0
        truncated = result.truncated | (visit_ends & ~result.terminated)
        self.method.observe(
            Transition(
                obs=obs,
                action=action,
                reward=self.to_tensor(result.reward),
                next_obs=self.to_tensor(self.obs_adapter(result.final_obs, task_index)),
                terminated=self.to_tensor(result.terminated, torch.bool),
                truncated=self.to_tensor(truncated, torch.bool),
                learn=self.step >= self.stream.warmup_steps,
            )
        )
        self.obs = result.obs
        ended = result.terminated | result.truncated
        if ended.any() and not visit_ends:
            self.method.on_episode_start(torch.as_tensor(ended, device=device).view(S, E), explore=True)

    def to_tensor(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[S*E, ...] numpy -> [S, E, ...] tensor on the method's device."""
        return torch.as_tensor(array, device=self.spec.device).to(dtype).view(self.S, -1, *array.shape[1:])

    def env_actions(self, action: torch.Tensor, task_index: int) -> np.ndarray:
        """[S, n, ...] agent actions -> [S*n, ...] actions of the task (first dims, rescaled to its bounds)."""
        return self.action_adapters[task_index](action.reshape(-1, *action.shape[2:]).cpu().numpy())

    def random_actions(self) -> torch.Tensor:
        if self.spec.action_kind == "discrete":
            return self.warmup_rng.randint(self.spec.action_dim, self.E)
        return self.warmup_rng.uniform(self.E, self.spec.action_dim, low=-1.0, high=1.0)

    def safe_actions(self, action: torch.Tensor) -> torch.Tensor:
        """Fail seeds whose actions are not finite (or not arms of the stream); failed seeds act with zeros so their
        environments stay valid."""
        flat = action.reshape(self.S, -1)
        if action.is_floating_point():
            bad, reason = ~torch.isfinite(flat).all(dim=1), "non-finite action"
        else:
            bad, reason = ((flat < 0) | (flat >= self.spec.action_dim)).any(dim=1), "action outside the stream's arms"
        bad &= self.method.active
        if bad.any():
            self.fail(bad, reason)
        return torch.where(seed_view(self.method.active, action), action, torch.zeros_like(action))

    # ---- failure ------------------------------------------------------------------------------------------
    def check_health(self) -> None:
        bad = self.method.nonfinite_seeds() & self.method.active
        if bad.any():
            self.fail(bad, "non-finite parameters")

    def fail(self, seeds: torch.Tensor, reason: str) -> None:
        self.method.deactivate(seeds)
        rows = [{"seed": self.spec.seed_ids[i], "step": self.step, "reason": reason} for i in torch.nonzero(seeds).flatten().tolist()]
        self.record("failures", rows)

    # ---- evaluation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> None:
        """Every task of the stream (held-out ones too), K deterministic episodes per seed, on environments of their own."""
        K, eval_index = self.stream.eval_episodes, self.step // self.stream.eval_every
        cycle, trained = self.stream.position(max(self.step - 1, 0))
        trained_name = self.stream.tasks[trained].name if self.step > 0 else "none"
        episode_seeds = [
            [env_seed(seed, 2, eval_index, j, k) for seed in self.spec.seed_ids for k in range(K)]
            for j in range(len(self.stream.eval_tasks))
        ]
        episodes = [self.run_episodes(j, seeds).reshape(self.S, K) for j, seeds in enumerate(episode_seeds)] if K > 0 else []
        live = self.method.active.cpu().numpy()  # after the episodes: a seed that failed while playing them has no rows
        rows = self.online_evaluation(cycle, trained, live) if K == 0 else []
        for task, returns in zip(self.stream.eval_tasks, episodes, strict=False):
            for i, seed in enumerate(self.spec.seed_ids):
                if live[i]:
                    mean = float(returns[i].mean())
                    rows.append(
                        {
                            "seed": seed,
                            "step": self.step,
                            "cycle": cycle,
                            "trained_task": trained_name,
                            "eval_task": task.name,
                            "return": mean,
                            "return_std": float(returns[i].std()),
                            "score": float(task.normalize(mean)),
                        }
                    )
        diagnostics = {name: values.detach().cpu().numpy() for name, values in self.method.diagnostics().items()}
        diag_rows = [
            {"seed": seed, "step": self.step, "cycle": cycle, "trained_task": trained_name, "name": name, "value": float(values[i])}
            for name, values in diagnostics.items()
            for i, seed in enumerate(self.spec.seed_ids)
            if live[i] and np.isfinite(values[i])
        ]
        online_rows = [
            {
                "seed": seed,
                "step": self.step,
                "cycle": cycle,
                "trained_task": trained_name,
                "name": name,
                "value": float(sums[i] / self.stream.eval_every),
            }
            for name, sums in self.window.items()
            for i, seed in enumerate(self.spec.seed_ids)
            if live[i]
        ]
        self.window = {}
        for table, new in (("evaluations", rows), ("diagnostics", diag_rows), ("online", online_rows)):
            self.record(table, new)

    def online_evaluation(self, cycle: int, trained: int, live: np.ndarray) -> list[dict]:
        """Evaluation rows of a stream scored on its training window: mean reward per step, and the task's score."""
        if not self.window:
            return []
        task = self.stream.tasks[trained]
        means = {name: sums / self.stream.eval_every for name, sums in self.window.items()}
        scores = task.online_score(means)
        return [
            {
                "seed": seed,
                "step": self.step,
                "cycle": cycle,
                "trained_task": task.name,
                "eval_task": task.name,
                "return": float(means["reward"][i]),
                "return_std": float("nan"),
                "score": float(scores[i]),
            }
            for i, seed in enumerate(self.spec.seed_ids)
            if live[i]
        ]

    def record(self, table: str, new_rows: list[dict]) -> None:
        self.rows[table] += new_rows
        self.run_dir.append(table, new_rows)

    # ---- perturbation events ------------------------------------------------------------------------------
    def apply_events(self, task_index: int) -> None:
        for event in self.stream.events:
            if event.step != self.step:
                continue
            detail = event.describe()
            if event.kind == "zero_weights":
                zeroed = zero_fraction(self.method.policy_weights(), event.fraction, self.event_rng)
                detail += f" ({int(zeroed[0])} weights per seed)"
            else:
                for pool in [self.pool, self.eval_pools.get(task_index)]:
                    if pool is not None:
                        pool.scale_dynamics(event.quantity, event.scale)
            self.record("events", [{"step": self.step, "kind": event.kind, "task": self.stream.tasks[task_index].name, "detail": detail}])

    def run_episodes(self, task_index: int, seeds: list[int]) -> np.ndarray:
        """One deterministic episode per seed in `seeds` (seed-major over S), returns [len(seeds)]."""
        S, K = self.S, len(seeds) // self.S
        if task_index not in self.eval_pools:
            self.eval_pools[task_index] = self.make_pool(task_index, seeds)
        pool = self.eval_pools[task_index]
        obs = pool.reset(seeds)
        self.method.on_episode_start(torch.ones(S, K, dtype=torch.bool, device=self.spec.device), explore=False)
        returns, running = np.zeros(len(seeds)), np.ones(len(seeds), bool)
        while running.any():
            x = torch.as_tensor(self.obs_adapter(obs, task_index), device=self.spec.device).view(S, K, -1)
            action = self.safe_actions(self.method.act(x, explore=False))
            result = pool.step(self.env_actions(action, task_index), which=running, autoreset=False)
            returns += np.where(running, result.reward, 0.0)
            obs = np.where(running[:, None], result.final_obs, obs)
            running &= ~(result.terminated | result.truncated)
        return returns

    # ---- checkpoints --------------------------------------------------------------------------------------
    def save(self) -> None:
        self.run_dir.save_checkpoint(
            {
                "step": self.step,
                "method": self.method.state_dict(),
                "warmup_rng": self.warmup_rng.state_dict(),
                "event_rng": self.event_rng.state_dict(),
                "window": self.window,
                "pool": None if self.pool is None else self.pool.get_state(),
                "obs": self.obs,
                "rows": self.rows,
                "wall_seconds": self.elapsed(),
            }
        )
        self.checkpoint_step = self.step

    def restore(self, state: dict) -> None:
        try:
            self.step, self.seconds_before = int(state["step"]), float(state["wall_seconds"])
            self.rows = {table: list(state["rows"].get(table, [])) for table in TABLES}
            self.method.load_state_dict(_to_device(state["method"], self.spec.device))
            self.warmup_rng.load_state_dict(_to_device(state["warmup_rng"], self.spec.device))
            self.event_rng.load_state_dict(_to_device(state["event_rng"], self.spec.device))
            self.window, pool_state, obs = dict(state["window"]), state["pool"], state["obs"]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as error:  # a state of another run
            raise self.foreign_checkpoint(f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}") from None
        if not (0 <= self.step <= self.stream.total_steps and self.step % self.E == 0):
            raise self.foreign_checkpoint(f"step {self.step} of a {self.stream.total_steps}-step stream")
        self.checkpoint_step = self.step
        self.run_dir.rewrite_tables(self.rows)  # drops rows written after this checkpoint
        if pool_state is not None:
            self.pool = self.make_visit_pool(self.stream.position(self.step)[1])
            self.pool.reset()
            self.pool.set_state(pool_state)
            self.obs = obs

    def foreign_checkpoint(self, why: str) -> ConfigError:
        return ConfigError(
            f"checkpoint {self.run_dir.checkpoint} does not fit this run ({why}); move it away to restart the run from step 0"
        )


def _to_device(tree, device: torch.device):
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: _to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_to_device(v, device) for v in tree)
    return tree
