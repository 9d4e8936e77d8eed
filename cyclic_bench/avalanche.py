"""Avalanche interoperability (optional extra `avalanche`): streams, continual metrics and loggers in Avalanche's vocabulary.

Avalanche (Lomonaco et al. 2021, "Avalanche: an End-to-End Library for Continual Learning", CVPR Workshops; Carta
et al. 2023, JMLR 24(363)) describes continual learning as streams of experiences with task labels, measured by
forgetting and forward transfer and reported through loggers. This module speaks that vocabulary:

1. `as_scenario(stream)` / `protocol_scenario(name, **settings)`: a suite stream as an Avalanche `CLScenario` with
   a `train_stream` (one `TaskExperience` per task visit, in training order, cycles unrolled) and a `test_stream`
   (one per evaluated task: the stream's tasks, then its held-out ones). Each experience carries its task label,
   the task's spec (`cyclic_bench.stream.Task`), its step budget and a gymnasium environment factory. Avalanche's
   own RL scenario (Lucchesi et al. 2022, arXiv 2202.13657) wraps the old `gym`; these experiences use only
   Avalanche's generic stream types and gymnasium environments.
2. `continual_metrics(run_dir, references)`: forgetting, backward transfer and forward transfer computed with
   Avalanche's standalone metrics (`Forgetting`, `BWT`, `ForwardTransfer`) fed from a run's evaluations, beside the
   suite's own (cyclic_bench.board.scores, Continual World conventions, Wolczyk et al. 2021). Sign conventions:
   Avalanche's forgetting (initial - last) has the suite's sign, positive = performance lost; Avalanche's BWT is its
   negative (GEM, Lopez-Paz & Ranzato 2017). Avalanche's forward transfer is a difference `previous - initial`;
   its own plugin feeds it GEM's zero-shot transfer (score on a task just before training on it minus at
   initialisation). The suite's forward transfer is Continual World's (AUC_i - AUC_i^ref) / (1 - AUC_i^ref): the
   same difference fed with the learning curve's area and that of the same method trained on the task alone,
   then normalised. Both are returned; both are positive when the stream helps.
3. `log_run(run_dir, loggers=("tensorboard", "wandb"))`: a run's evaluation rows and its continual metrics through
   Avalanche's `TensorboardLogger` and `WandBLogger` (offline by default: nothing leaves the machine), with
   Avalanche's metric names and the environment step per seed on the x axis.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from omegaconf import OmegaConf

from cyclic_bench.board.entry import RunRecord, entry_from_runs
from cyclic_bench.board.scores import Row, eval_index, reference_auc, row_from_entry, trapezoid_mean, visit_end_step
from cyclic_bench.board.scores import forgetting as suite_forgetting
from cyclic_bench.board.scores import forward_transfer as suite_forward_transfer
from cyclic_bench.errors import require
from cyclic_bench.registry import get_protocol
from cyclic_bench.stream import ActionAdapter, ObservationAdapter, Stream, Task

try:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no QP solver found")  # qpsolvers serves Avalanche's GEM strategy, unused here
        from avalanche.benchmarks.scenarios.generic_scenario import CLExperience, CLScenario, EagerCLStream
        from avalanche.evaluation.metric_results import MetricValue
        from avalanche.evaluation.metrics import BWT, Forgetting, ForwardTransfer
        from avalanche.logging import TensorboardLogger, WandBLogger
except ImportError as error:
    raise ImportError(f"cyclic_bench.avalanche needs the optional extra: pip install 'cyclic-bench[avalanche]' ({error})") from error

LOGGERS = ("tensorboard", "wandb")
WANDB_MODES = ("offline", "online", "disabled")


# ---- environments -----------------------------------------------------------------------------------------------
class PoolEnv(gymnasium.Env):
    """One environment of a task as a gymnasium.Env, built from the task's own pool (so it works for every protocol).

    With `stream`, observations and actions go through that stream's adapters, so one agent fits every experience
    (observations padded to the stream's size, plus the one-hot task id if the stream is task-aware; continuous
    actions in [-1, 1]^A of the stream's action size). Without it the task's own spaces are used.
    `reset()` without a seed starts an episode seeded from the environment's generator, itself seeded with `seed`.
    """

    metadata = {"render_modes": []}

    def __init__(self, task: Task, seed: int = 0, stream: Stream | None = None):
        self.task = task
        self.pool = task.make_pool([seed])
        self._np_random, _ = seeding.np_random(seed)
        self.task_index = stream.eval_tasks.index(task) if stream is not None else 0
        self.observation_adapter = ObservationAdapter(stream) if stream is not None else None
        self.action_adapter = ActionAdapter(task) if stream is not None else None
        obs_dim = stream.obs_dim if stream is not None else task.obs_dim
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        if task.action_kind == "discrete":
            self.action_space = gymnasium.spaces.Discrete(stream.action_dim if stream is not None else task.action_dim)
        elif stream is not None:
            self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (stream.action_dim,), np.float32)
        else:
            low = np.asarray(task.action_low or (-1.0,) * task.action_dim, np.float32)
            high = np.asarray(task.action_high or (1.0,) * task.action_dim, np.float32)
            self.action_space = gymnasium.spaces.Box(low, high, dtype=np.float32)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        obs = obs.astype(np.float32)
        return self.observation_adapter(obs, self.task_index) if self.observation_adapter is not None else obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1))
        return self._observe(self.pool.reset([episode_seed])[0]), {}

    def step(self, action):
        actions = np.asarray(action)[None]
        if self.action_adapter is not None:
            actions = self.action_adapter(actions)
        result = self.pool.step(actions, autoreset=False)
        info = {name: float(value[0]) for name, value in result.info.items()}
        return self._observe(result.final_obs[0]), float(result.reward[0]), bool(result.terminated[0]), bool(result.truncated[0]), info

    def close(self) -> None:
        self.pool.close()


# ---- streams as Avalanche scenarios -----------------------------------------------------------------------------
class TaskExperience(CLExperience):
    """One task visit of a stream (train stream) or one evaluated task (test stream).

    task_label   index of the task in `stream.eval_tasks` (trained tasks first, then held-out ones); visible to a
                 strategy in train/eval mode only if the stream is task-aware (Avalanche's attribute masking)
    task         the suite's task spec: sizes, action kind and bounds, random and reference returns, pool factory
    step_budget  environment steps per seed of this visit (0 in the test stream: evaluation never trains)
    cycle        the visit's cycle (0-based; None in the test stream)
    start_step   the stream step at which the visit begins (None in the test stream)
    held_out     a task that is evaluated but never trained
    make_env     gymnasium environment factory (see PoolEnv)
    """

    def __init__(self, stream: Stream, task_label: int, cycle: int | None = None):
        super().__init__(current_experience=None, origin_stream=None)
        trained = cycle is not None
        self.suite_stream = stream
        self.task = stream.eval_tasks[task_label]
        self.task_label = task_label
        self.cycle = cycle
        self.step_budget = stream.steps_per_task if trained else 0
        self.start_step = (cycle * len(stream.tasks) + task_label) * stream.steps_per_task if trained else None
        self.held_out = task_label >= len(stream.tasks)
        self._as_attributes("task_label", use_in_train=stream.task_aware, use_in_eval=stream.task_aware)

    @property
    def task_labels(self) -> list[int]:
        """Avalanche's TaskAware protocol: the experience's task labels (one)."""
        return [self.task_label]

    def make_env(self, seed: int = 0, adapted: bool = True) -> PoolEnv:
        """A gymnasium environment of this experience's task, through the stream's adapters unless `adapted=False`."""
        return PoolEnv(self.task, seed, self.suite_stream if adapted else None)

    def __repr__(self) -> str:
        if self.cycle is None:
            return f"TaskExperience({self.task.name}, label {self._task_label_unmasked()}, evaluated)"
        span = f"steps {self.start_step}..{self.start_step + self.step_budget}"
        return f"TaskExperience({self.task.name}, label {self._task_label_unmasked()}, cycle {self.cycle}, {span})"

    def _task_label_unmasked(self) -> int:
        with self.no_attribute_masking():
            return self.task_label


def as_scenario(stream: Stream) -> CLScenario:
    """The stream as an Avalanche scenario: `train_stream` (every task visit, in order) and `test_stream` (every evaluated task)."""
    visits = [TaskExperience(stream, index, cycle) for cycle in range(stream.cycles) for index in range(len(stream.tasks))]
    evaluated = [TaskExperience(stream, index) for index in range(len(stream.eval_tasks))]
    scenario = CLScenario([EagerCLStream("train", visits), EagerCLStream("test", evaluated)])
    scenario.suite_stream = stream
    return scenario


def protocol_scenario(protocol: str, **settings) -> CLScenario:
    """The scenario of a registered protocol family, e.g. `protocol_scenario("cyclic_mujoco", size="smoke")`."""
    family = get_protocol(protocol)
    known = set(family.config.__dataclass_fields__) - {"name"}
    unknown = sorted(set(settings) - known)
    require(not unknown, f"protocol {protocol} has no setting {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    return as_scenario(family.build(family.config(**settings)))


# ---- continual metrics --------------------------------------------------------------------------------------------
def load_row(run_dir: str | Path, references: Sequence[str | Path] = ()) -> Row:
    """A finished run (and its single-task reference runs) as the board's score arrays."""
    return row_from_entry(entry_from_runs([RunRecord(run_dir)], [RunRecord(r) for r in references]))


def avalanche_forgetting(row: Row) -> tuple[np.ndarray, np.ndarray]:
    """([S, T] forgetting, [S, T] BWT) from Avalanche's standalone metrics, fed as its experience plugin feeds them.

    Keys are the test stream's experiences (task labels). Each evaluation first clears the last values; the
    evaluation that closes a visit of task k sets k's initial value (a later visit overwrites it, as when Avalanche
    trains an experience again); every other task's score at that evaluation is its last value. Forgetting =
    initial - last, BWT = last - initial, read after the final evaluation. The task trained last has no last value
    there, so Avalanche leaves it undefined (nan here) where the suite's forgetting is 0 by construction.
    """
    n_tasks = len(row.tasks)
    forgetting, bwt = np.full((row.n_seeds, n_tasks), np.nan), np.full((row.n_seeds, n_tasks), np.nan)
    closes = {eval_index(row, visit_end_step(row, c, k)): k for c in range(row.stream["cycles"]) for k in range(n_tasks)}
    for s in range(row.n_seeds):
        metrics = (Forgetting(), BWT())
        for j in range(len(row.steps)):
            for metric in metrics:
                metric.reset_last()
                for k in range(n_tasks):
                    metric.update(k, float(row.score[s, j, k]), initial=closes.get(j) == k)
        for out, metric in zip((forgetting, bwt), metrics, strict=True):
            for k, value in metric.result().items():
                out[s, k] = value
    return forgetting, bwt


def avalanche_zero_shot_transfer(row: Row) -> np.ndarray:
    """[S, T]: Avalanche's forward transfer as its plugin defines it (GEM's): the score on task k after training the
    visit before k's first one, minus the score at initialisation (step 0). nan for the first task, which has no
    previous visit."""
    result = np.full((row.n_seeds, len(row.tasks)), np.nan)
    for s in range(row.n_seeds):
        metric = ForwardTransfer()
        for k in range(len(row.tasks)):
            metric.update(k, float(row.score[s, 0, k]), initial=True)
            if k > 0:
                metric.update(k, float(row.score[s, eval_index(row, visit_end_step(row, 0, k - 1)), k]))
        for k, value in metric.result().items():
            result[s, k] = value
    return result


def avalanche_forward_transfer(row: Row) -> np.ndarray | None:
    """[S, T]: Continual World's forward transfer through Avalanche's standalone ForwardTransfer: initial = the
    reference runs' AUC on task k, previous = the AUC over k's first visit; the difference is divided by
    (1 - reference AUC). nan where no reference exists or its AUC >= 1; None without references."""
    references = reference_auc(row)
    if not references:
        return None
    B, every = row.stream["steps_per_task"], row.stream["eval_every"]
    result = np.full((row.n_seeds, len(row.tasks)), np.nan)
    for s in range(row.n_seeds):
        metric = ForwardTransfer()
        for k, task in enumerate(row.tasks):
            if task in references and references[task] < 1.0:
                window = slice(k * B // every, (k + 1) * B // every + 1)
                metric.update(k, float(references[task]), initial=True)
                metric.update(k, float(trapezoid_mean(row.steps[window], row.score[s, window, k])))
        for k, difference in metric.result().items():
            result[s, k] = difference / (1.0 - references[row.tasks[k]])
    return result


def continual_metrics(run_dir: str | Path, references: Sequence[str | Path] = ()) -> dict:
    """Per seed and trained task ([S, T] arrays, seeds in `seeds` order): Avalanche's metrics beside the suite's.

    forgetting / avalanche_forgetting               the suite's and Avalanche's: equal, but Avalanche leaves the task
                                                    trained last undefined (nan) where the suite has 0
    avalanche_bwt                                   Avalanche's backward transfer (= -forgetting)
    forward_transfer / avalanche_forward_transfer   Continual World's, from the suite and through Avalanche's
                                                    metric (None without single-task `references` runs)
    avalanche_zero_shot_transfer                    Avalanche's plugin definition (GEM); needs no references
    """
    return row_metrics(load_row(run_dir, references))


def row_metrics(row: Row) -> dict:
    """continual_metrics of a row already loaded."""
    forgetting, bwt = avalanche_forgetting(row)
    return {
        "seeds": [int(s) for s in row.seeds],
        "tasks": list(row.tasks),
        "forgetting": suite_forgetting(row),
        "avalanche_forgetting": forgetting,
        "avalanche_bwt": bwt,
        "forward_transfer": suite_forward_transfer(row),
        "avalanche_forward_transfer": avalanche_forward_transfer(row),
        "avalanche_zero_shot_transfer": avalanche_zero_shot_transfer(row),
    }


# ---- loggers ------------------------------------------------------------------------------------------------------
def _name(metric: str, label: int | None = None, seed: int | None = None) -> str:
    """Avalanche's metric naming: <metric>/eval_phase/test_stream[/Task<label>/Exp<label>][/Seed<id>]."""
    name = f"{metric}/eval_phase/test_stream"
    if label is not None:
        name += f"/Task{label:03d}/Exp{label:03d}"  # the test stream holds one experience per task, in label order
    return name if seed is None else f"{name}/Seed{seed}"


def run_metric_values(run_dir: str | Path, references: Sequence[str | Path] = (), per_seed: bool = False) -> list[MetricValue]:
    """A run's evaluations and continual metrics as Avalanche MetricValues, x = environment step per seed.

    At every evaluation step: Score_Exp and Return_Exp per evaluated task (mean over seeds), Score_Stream (mean over
    the trained tasks). At the last step: ExperienceForgetting, ExperienceBWT, ExperienceForwardTransfer (Avalanche's
    zero-shot definition) and, with references, ExperienceForwardTransferCW, each per task, plus their Stream means.
    `per_seed` adds every seed's value of each, suffixed /Seed<id>.
    """
    row = load_row(run_dir, references)
    returns = np.nan_to_num(np.array(row.entry["evaluations"]["return"], dtype=float))
    seeds = [int(s) for s in row.seeds]
    labels = range(len(row.tasks) + len(row.held_out))
    values: list[MetricValue] = []

    def add(metric: str, per_seed_values: np.ndarray, step: int, label: int | None = None) -> None:
        if not np.isfinite(per_seed_values).any():
            return
        values.append(MetricValue(None, _name(metric, label), float(np.nanmean(per_seed_values)), step))
        if per_seed:
            values.extend(
                MetricValue(None, _name(metric, label, s), float(v), step)
                for s, v in zip(seeds, per_seed_values, strict=True)
                if np.isfinite(v)
            )

    for j, step in enumerate(int(t) for t in row.steps):
        for label in labels:
            add("Score_Exp", row.score[:, j, label], step, label)
            add("Return_Exp", returns[:, j, label], step, label)
        add("Score_Stream", row.score[:, j, : len(row.tasks)].mean(axis=1), step)
    metrics = row_metrics(row)
    final = {
        "Forgetting": metrics["avalanche_forgetting"],
        "BWT": metrics["avalanche_bwt"],
        "ForwardTransfer": metrics["avalanche_zero_shot_transfer"],
        "ForwardTransferCW": metrics["avalanche_forward_transfer"],
    }
    last = int(row.steps[-1])
    for metric, per_task in final.items():
        if per_task is None:
            continue
        for k in range(len(row.tasks)):
            add(f"Experience{metric}", per_task[:, k], last, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a seed with no defined task (all nan) drops out of the mean
            add(f"Stream{metric}", np.nanmean(per_task, axis=1), last)
    return values


class _WandbAsAvalancheExpects:
    """The wandb module with the name Avalanche 0.6's WandBLogger looks up for every value it logs: wandb.viz.CustomChart,
    which wandb no longer exposes since 0.17 (CustomChart lives in wandb.plot; Avalanche issue #1674, open). Everything
    else is wandb's own."""

    def __init__(self, module):
        self._module = module
        self.viz = SimpleNamespace(CustomChart=module.plot.CustomChart)

    def __getattr__(self, name: str):
        return getattr(self._module, name)


class _WandBLogger(WandBLogger):
    """Avalanche's WandBLogger, unchanged but for the wandb module it is handed (see _WandbAsAvalancheExpects)."""

    def import_wandb(self) -> None:
        super().import_wandb()
        self.wandb = _WandbAsAvalancheExpects(self.wandb)


def log_run(
    run_dir: str | Path,
    loggers: Sequence[str] = LOGGERS,
    out_dir: str | Path | None = None,
    references: Sequence[str | Path] = (),
    per_seed: bool = False,
    wandb_project: str = "cyclic-bench",
    wandb_mode: str = "offline",
) -> dict[str, Path]:
    """Send a finished run's evaluation rows and continual metrics through Avalanche's loggers; returns each logger's folder.

    loggers      any of "tensorboard" (Avalanche's TensorboardLogger) and "wandb" (its WandBLogger)
    out_dir      where the logs go (default: <run_dir>/avalanche); tensorboard/ and wandb/ below it
    references   single-task runs of the same method, for Continual World's forward transfer
    per_seed     log every seed's values too, not only the means over seeds
    wandb_mode   "offline" (default: written locally, nothing sent; `wandb sync` uploads it later), "online", "disabled"
    """
    unknown = sorted(set(loggers) - set(LOGGERS))
    require(not unknown, f"loggers={list(loggers)} is not allowed: choose among {', '.join(LOGGERS)}")
    require(wandb_mode in WANDB_MODES, f"wandb_mode={wandb_mode!r} is not allowed; allowed: {', '.join(WANDB_MODES)}")
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "avalanche"
    values = run_metric_values(run_dir, references, per_seed)
    folders: dict[str, Path] = {}
    if "tensorboard" in loggers:
        folders["tensorboard"] = out_dir / "tensorboard"
        logger = TensorboardLogger(tb_log_dir=folders["tensorboard"])
        logger.log_metrics(values)
        logger.writer.close()
    if "wandb" in loggers:
        folders["wandb"] = out_dir / "wandb"
        out_dir.mkdir(parents=True, exist_ok=True)
        config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
        logger = _WandBLogger(
            project_name=wandb_project,
            run_name=f"{config['method']['name']}-{config['protocol']['name']}-{run_dir.name}",
            save_code=False,
            config=config,
            dir=out_dir,  # wandb writes below <dir>/wandb
            # with an id given, Avalanche 0.6 does not call wandb.util.generate_id, which recent wandb releases lack
            params={"mode": wandb_mode, "id": uuid.uuid4().hex[:8]},
        )
        logger.log_metrics(values)
        logger.wandb.finish()
        logger.wandb.teardown()  # stops wandb's service, which writes the offline run file before it exits
    return folders
