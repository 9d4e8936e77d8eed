"""Cyclic DMC: state-based DeepMind Control Suite tasks (Tassa et al. 2018) visited in turn, for several cycles.

Streams (`protocol.stream`):
- same body, the reward changes: `walker` (stand -> walk -> run), `quadruped` (walk -> run),
  `dog` (stand -> walk -> run -> trot; 223 observation dims, about 7x slower to simulate than walker);
- `cross_body`: cheetah-run -> walker-walk -> hopper-hop -> finger-spin (observation sizes 17, 24, 15, 9;
  action sizes 6, 6, 4, 2), played by one agent through the stream's adapters.
`protocol.tasks=[domain-task,...]` replaces the stream's tasks with any dm_control suite tasks.

Observations are the task's dict flattened in its declared key order (see cyclic_bench/dmc.py). Episodes are
`episode_length` control steps (1000, as in the suite; the smoke size shortens them) and never terminate, they
are truncated. `action_repeat` (default 1, the usual state-based
setting; pixel-based work uses 2 to 8) repeats each action for that many control steps and sums the rewards,
so an episode is 1000 / action_repeat agent steps; step budgets count agent steps.

Normalised score = (return - random) / (maximum - random), both at the episode length played
(`episode_length` control steps; see cyclic_bench/normalization.py). Per-step rewards lie in [0, 1], so the
maximum return is `episode_length` (1000 at full length, the DMC convention's 1). Unlike the usual DMC report
(return / 1000, where a random walker-stand already scores 0.13), 0 is the random policy here on every task;
entries keep the raw returns, and the leaderboard lists both ends per task. `random`: the mean return of uniform
random actions (action_repeat 1), measured by the suite at each length a size plays (RANDOM_RETURNS) with
`cyclic-bench random-returns protocol=cyclic_dmc protocol.size=SIZE protocol.stream=STREAM episodes=N`:
SIZE=full (1000 steps, 2026-11-23): N=100, dog N=50; SIZE=smoke (50 steps, 2026-12-01): N=100, dog N=30 (each dog
environment holds about 100 MB). Other lengths are interpolated; other action repeats use the action_repeat-1
values, and tasks outside RANDOM_RETURNS (`protocol.tasks=`) score from return 0; the leaderboard says so.
Means at 1000 steps (standard error in brackets):
  walker-stand 126.2 (1.2)     walker-walk 32.9 (0.5)       walker-run 22.9 (0.2)
  quadruped-walk 150.1 (22.7)  quadruped-run 159.4 (22.8)
  dog-stand 20.1 (0.6)         dog-walk 7.7 (0.6)           dog-run 4.7 (0.2)          dog-trot 6.5 (0.5)
  cheetah-run 4.1 (0.1)        hopper-hop 0.1 (0.0)         finger-spin 0.5 (0.1)

Pixels (`protocol.observation=pixels`, NE's second setting, with `method.base=drq`): each observation is the last
`frame_stack` (3) rendered `image_size` x `image_size` (84) RGB frames (cyclic_bench/dmc_pixels.py), the same
streams in the same order. `action_repeat` defaults per task to DrQ's (cartpole 8; reacher, cheetah, ball_in_cup 4;
finger, walker and every other domain 2); setting it gives every task that value. Budgets (`steps_per_task`,
`eval_every`, `warmup_steps`) count agent steps, in both settings and for every method alike: one agent step is one
decision, one stored transition and `action_repeat` simulator (control) steps, so a 100k-step visit of walker-walk
from pixels simulates 200k control steps (DrQ's papers plot simulator steps: divide theirs by the action repeat to
compare). The smoke size renders 32 x 32 images (seconds per update on a CPU); lite and full render 84 x 84.
`task_aware` is refused with pixels (a one-hot cannot join an image).

Memory: every environment compiles its own model, about 5 MB (walker, cheetah, hopper, finger, quadruped)
or 105 MB (dog), and a run holds seeds x (1 + eval_episodes x tasks) of them (evaluation environments stay
open). Dog at full size with 30 seeds would need about 130 GB: shard the seeds (`seeds=10 first_seed=0,10,20`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from cyclic_bench.dmc import SUITE_EPISODE_LENGTH, DMCPool, check_timing, describe, split_task_name
from cyclic_bench.dmc_pixels import PixelDMCPool, pixel_action_repeat, pixel_shape
from cyclic_bench.errors import Rule, integer, one_of, require, require_settings
from cyclic_bench.normalization import random_return_at
from cyclic_bench.registry import register_protocol, resolve_size
from cyclic_bench.stream import Stream, Task

OBSERVATIONS = ("states", "pixels")
MAXIMUM = "maximum return: every control step rewarded 1 (per-step rewards lie in [0, 1])"

STREAMS = {
    "walker": ["walker-stand", "walker-walk", "walker-run"],
    "quadruped": ["quadruped-walk", "quadruped-run"],
    "dog": ["dog-stand", "dog-walk", "dog-run", "dog-trot"],
    "cross_body": ["cheetah-run", "walker-walk", "hopper-hop", "finger-spin"],
}

# Random-policy return per episode length (control steps): (mean, standard error, episodes), as the module docstring says.
RANDOM_RETURNS = {
    "walker-stand": {50: (15.4, 0.4, 100), 1000: (126.2, 1.2, 100)},
    "walker-walk": {50: (4.0, 0.3, 100), 1000: (32.9, 0.5, 100)},
    "walker-run": {50: (2.8, 0.1, 100), 1000: (22.9, 0.2, 100)},
    "quadruped-walk": {50: (10.8, 1.1, 100), 1000: (150.1, 22.7, 100)},
    "quadruped-run": {50: (11.3, 0.9, 100), 1000: (159.4, 22.8, 100)},
    "dog-stand": {50: (12.4, 0.8, 30), 1000: (20.1, 0.6, 50)},
    "dog-walk": {50: (5.5, 0.7, 30), 1000: (7.7, 0.6, 50)},
    "dog-run": {50: (3.2, 0.2, 30), 1000: (4.7, 0.2, 50)},
    "dog-trot": {50: (4.2, 0.5, 30), 1000: (6.5, 0.5, 50)},
    "cheetah-run": {50: (0.2, 0.0, 100), 1000: (4.1, 0.1, 100)},
    "hopper-hop": {50: (0.1, 0.0, 100), 1000: (0.1, 0.0, 100)},
    "finger-spin": {50: (0.0, 0.0, 100), 1000: (0.5, 0.1, 100)},
}

SIZES = {
    # seconds on a CPU: for tests
    "smoke": dict(
        steps_per_task=100,
        cycles=2,
        eval_every=100,
        eval_episodes=1,
        warmup_steps=50,
        episode_length=50,
        image_size=32,
    ),
    # 100k steps per task visit, the "DMC100k" budget (Srinivas et al. 2020, CURL, Table 1)
    "lite": dict(
        steps_per_task=100_000,
        cycles=2,
        eval_every=25_000,
        eval_episodes=5,
        warmup_steps=5_000,
        episode_length=SUITE_EPISODE_LENGTH,
        image_size=84,
    ),
    # 500k steps per task visit, the "DMC500k" budget (same source)
    "full": dict(
        steps_per_task=500_000,
        cycles=2,
        eval_every=50_000,
        eval_episodes=10,
        warmup_steps=25_000,
        episode_length=SUITE_EPISODE_LENGTH,
        image_size=84,
    ),
}


def optional(rule: Rule) -> Rule:
    """`rule`, or None (the size's preset)."""
    ok, allowed = rule
    return (lambda v: v is None or ok(v)), f"{allowed}, or null for the size's preset"


@dataclass
class CyclicDMCConfig:
    name: str = "cyclic_dmc"  # protocol family
    size: str = "lite"  # smoke | lite | full: the presets below; any field set here overrides its preset
    stream: str = "walker"  # walker | quadruped | dog | cross_body: the task sequence (STREAMS)
    tasks: list[str] | None = None  # domain-task names in stream order, replacing the stream's (e.g. [cheetah-run,hopper-hop])
    steps_per_task: int | None = None  # agent steps per seed on each task visit
    cycles: int | None = None  # passes over the task list
    eval_every: int | None = None  # agent steps per seed between evaluations
    eval_episodes: int | None = None  # deterministic episodes per seed and task at each evaluation
    warmup_steps: int | None = None  # random-action steps at the start of the stream
    episode_length: int | None = None  # control steps per episode (1000 in the suite; smoke shortens it)
    action_repeat: int | None = None  # control steps each action is held for, rewards summed; None: 1 (states), DrQ's per task (pixels)
    task_aware: bool = False  # append a one-hot task id to observations
    boundaries_visible: bool = True  # tell methods when the task switches
    observation: str = "states"  # states | pixels: the task's state vector, or stacked rendered frames
    image_size: int | None = None  # pixels: rendered height and width (the size's preset: 32 smoke, 84 otherwise)
    frame_stack: int = 3  # pixels: frames per observation

    def __post_init__(self) -> None:
        require_settings(
            "protocol",
            self,
            {"observation": one_of(list(OBSERVATIONS)), "image_size": optional(integer(16)), "frame_stack": integer(1)},
        )


def resolve(config: CyclicDMCConfig) -> dict:
    """The preset of `config.size` and the tasks of `config.stream`, with every field the config sets overriding them."""
    require(config.stream in STREAMS, f"protocol.stream={config.stream!r} is not a stream of {config.name}; allowed: {', '.join(STREAMS)}")
    return resolve_size(config, SIZES, tasks=STREAMS[config.stream])


def make_task(name: str, action_repeat: int | None, episode_length: int, pixels: tuple[int, int] | None = None) -> Task:
    """The dm_control task `name` ('domain-task'), scored from its random-policy return to its maximum return.

    `pixels` = (image size, frame stack) makes its observations stacked frames; `action_repeat` None takes the
    setting's default (1 for states, DrQ's per-domain value for pixels).
    """
    domain, task = split_task_name(name)
    spec = describe(domain, task)
    if action_repeat is None:
        action_repeat = 1 if pixels is None else pixel_action_repeat(domain)
    check_timing(action_repeat, episode_length)
    options = dict(action_repeat=action_repeat, episode_length=episode_length)
    if pixels is None:
        make_pool, obs_dim, obs_shape = partial(DMCPool, domain, task, **options), spec.obs_dim, None
    else:
        image_size, frame_stack = pixels
        obs_shape = pixel_shape(image_size, frame_stack)
        options |= dict(image_size=image_size, frame_stack=frame_stack)
        make_pool, obs_dim = partial(PixelDMCPool, domain, task, **options), math.prod(obs_shape)
    if name in RANDOM_RETURNS:
        random_return, random_source = random_return_at(RANDOM_RETURNS[name], episode_length)
        if action_repeat != 1:
            random_source += f"; with action_repeat 1, not the {action_repeat} played"
    else:
        random_return, random_source = 0.0, "not measured for this task: return 0 stands in for the random policy"
    return Task(
        name=name,
        obs_dim=obs_dim,
        action_dim=spec.action_dim,
        make_pool=make_pool,
        random_return=random_return,
        reference_return=float(episode_length),
        reference_source=f"{MAXIMUM}, over {episode_length} control steps",
        random_source=random_source,
        action_low=spec.action_low,
        action_high=spec.action_high,
        obs_shape=obs_shape,
    )


@register_protocol("cyclic_dmc", CyclicDMCConfig)
def build(config: CyclicDMCConfig) -> Stream:
    s = resolve(config)
    pixels = (s["image_size"], config.frame_stack) if config.observation == "pixels" else None
    label = (config.stream if config.tasks is None else "custom") + ("-pixels" if pixels else "")
    return Stream(
        name=f"cyclic_dmc-{label}-{config.size}",
        tasks=tuple(make_task(name, config.action_repeat, s["episode_length"], pixels) for name in s["tasks"]),
        steps_per_task=s["steps_per_task"],
        cycles=s["cycles"],
        eval_every=s["eval_every"],
        eval_episodes=s["eval_episodes"],
        warmup_steps=s["warmup_steps"],
        task_aware=config.task_aware,
        boundaries_visible=config.boundaries_visible,
    )
