"""Ant morphology stream: Gymnasium's Ant-v5 with damaged bodies, trained on some and tested zero-shot on unseen ones.

After the damaged-morphology experiment of Najarro & Risi 2020 (Meta-learning through Hebbian plasticity in random
networks, NeurIPS, arXiv 2007.02686, and the authors' public code, github enajx/HebbianMetaLearning at ec65143):
train on the standard Ant and the Ant whose back-right lower leg is shortened to a quarter of its length (their
`ant_asym_right.xml`); the paper's third morphology, "damaged on left front leg" (`ant_asym_left.xml`), "is left out
of the training loop" and tests generalisation. Every evaluation plays the held-out morphologies too; they are
never trained and are reported apart (`summary.json` lists them under `held_out_tasks`).

Two variants (`variant`):
- `continual` (the default): the training morphologies are visited in turn, each for a budget of steps, for several
  cycles: a continual-learning stream, scored with Gymnasium's Ant reward.
- `paper`: the paper's protocol. Each visit is one episode of every environment of a population (`steps_per_task`
  = 200 members x `max_episode_steps`; set it to P x `max_episode_steps` for a population of P), and the visits
  alternate between the training morphologies, so an evolution strategy whose generation spans one cycle (for
  `hebbian` and `static_es`: `method.generation_steps` = len(train) x `max_episode_steps`, the stream's
  `generation_steps`, which they take when the setting is left unset) scores every member on
  every training morphology in each generation and ranks it by the mean, as the authors' fitness function does
  ("a 2-fold loop which returns the average cumulative distance walked of the standard morphology and the damaged
  one", their README). `full` runs the paper's 300 generations at population 200 (1.2e8 steps per seed). The reward
  is the distance walked (below). Gradient learners play the same stream: the morphology alternates every visit.

The reward (`reward`; default: `gymnasium` in the continual variant, `distance` in the paper variant):
- `gymnasium`: Ant-v5's reward and episode (forward velocity, +1 per healthy step, control cost; the episode
  terminates when the torso leaves the healthy height range).
- `distance`: the authors' quadruped episode (their `fitness_functions.py` for AntBulletEnv): 40 zero-action
  burn-in steps after every reset so the body settles on the floor (inside the reset: the policy does not see them
  and the step budget does not count them); the reward of a step is the distance the torso moved along +x (metres);
  the episode ends at the time limit (`max_episode_steps` policy steps), or, once more than 200 policy steps have
  passed, when the Ant is unhealthy (Gymnasium's height test; a termination) or after more than 30 consecutive
  steps of negative reward (an early stop, reported as a truncation). Differences: the authors' time limit (1000)
  counted the 40 burn-in steps, so their policy played 960 steps; the body is MuJoCo's Ant, not PyBullet's, and
  the observation is Ant-v5's 27 numbers (PyBullet's has 28).

Variants of the body are written as MuJoCo XML at run time, by editing Gymnasium's standard `ant.xml`:
- `standard`: the model unchanged (with `reward=distance`, one MuJoCo userdata slot holds the early-stop counter, so
  environment snapshots carry it).
- `short_<leg>`: the leg's lower-leg capsule (the geom of the body holding its ankle joint) runs a quarter of the
  way along its original `fromto` segment, as in the paper's XML files (0.4 0.4 -> 0.1 0.1).
- `no_<leg>`: the leg removed (its bodies, two hinge joints and two motors): observations shrink from 27 to 23
  and actions from 8 to 6. The stream's adapters zero-pad observations at the end and hand the task the first
  6 action components, so entries after the removed leg's shift: they do not line up with the standard Ant's.

Leg names are the model's own body labels, which the paper's damaged models use too. The Ant is four-fold
symmetric and Ant-v5 rewards velocity along +x, so in the initial pose, seen along that heading, front_left and
back_right are the two front legs (x > 0) and front_right and back_left the two back legs:

    leg          body in ant.xml     joints            hip position in the torso frame (x, y)
    front_left   front_left_leg      hip_1, ankle_1    (+0.2, +0.2)
    front_right  front_right_leg     hip_2, ankle_2    (-0.2, +0.2)
    back_left    back_leg            hip_3, ankle_3    (-0.2, -0.2)   (PyBullet's copy calls it left_back_leg)
    back_right   right_back_leg      hip_4, ankle_4    (+0.2, -0.2)

Observations leave out the contact forces (Ant of `cyclic_mujoco`, as most TD3 work does).
Normalised score = (return - random) / (reference - random), both at the episode length played
(`max_episode_steps`; see cyclic_bench/normalization.py):
- `random`: mean return of uniformly random actions per morphology, measured by the suite at each length a size
  plays (RANDOM_RETURNS; 100 episodes each) with `cyclic-bench random-returns protocol=ant_morphology
  protocol.size=SIZE 'protocol.held_out=[]' episodes=100 'protocol.train=[<all nine>]'` for SIZE = smoke (50 steps)
  and full (1000 steps) (the command measures trained morphologies only, hence every morphology trained and none
  held out); other lengths are interpolated between these. Add `protocol.reward=distance` (SIZE = full) for
  RANDOM_DISTANCES.
- `reference`: with Gymnasium's reward, TD3's Ant return after 1M steps (Fujimoto et al. 2018, Table 1), the same
  for every morphology, so a damaged Ant's score says how close it comes to what TD3 reaches on the intact one;
  scaled to the length played at the same per-step rate. With the distance reward, walking at 1 m/s for the whole
  episode (a suite convention: no published distance exists for MuJoCo's Ant, and the paper's PyBullet distances
  are in another body's units).
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import partial
from importlib.resources import files

import gymnasium as gym
import numpy as np
from cyclic_bench.protocols.cyclic_mujoco import TASKS
from gymnasium.wrappers import TimeLimit

from cyclic_bench.envs import GymPool
from cyclic_bench.errors import require
from cyclic_bench.normalization import random_return_at, scaled_reference
from cyclic_bench.registry import register_protocol, resolve_size
from cyclic_bench.stream import Stream, Task

ANT = TASKS["Ant"]  # Ant-v5 without contact forces, and its TD3-paper reference


@dataclass(frozen=True)
class Leg:
    body: str  # the leg's top body in ant.xml (attached to the torso)
    hip: str  # hinge joint at the torso
    ankle: str  # hinge joint of the lower leg


LEGS = {
    "front_left": Leg("front_left_leg", "hip_1", "ankle_1"),
    "front_right": Leg("front_right_leg", "hip_2", "ankle_2"),
    "back_left": Leg("back_leg", "hip_3", "ankle_3"),
    "back_right": Leg("right_back_leg", "hip_4", "ankle_4"),
}
SHORT_FRACTION = 0.25  # a shortened lower leg keeps this fraction of its length (Najarro & Risi 2020)
VARIANTS = ("continual", "paper")
REWARDS = ("gymnasium", "distance")
BURN_IN_STEPS = 40  # zero-action steps after every reset of the distance episode (the authors' "burnout phase")
EARLY_STOP_AFTER = 200  # policy steps of a distance episode before an unhealthy body or a backward streak can end it
BACKWARD_STREAK = 30  # a distance episode stops once more than this many consecutive steps moved backwards
REFERENCE_SPEED = 1.0  # m/s: the distance reward's score of 1 (a suite convention, see the module docstring)
ANT_DT = 0.05  # seconds per Ant-v5 step (5 substeps of 0.01 s)
DISTANCE_REFERENCE = f"walking at {REFERENCE_SPEED:g} m/s for the whole episode (suite convention)"


@dataclass(frozen=True)
class Morphology:
    shortened: str | None = None  # leg (key of LEGS) whose lower leg is shortened
    removed: str | None = None  # leg (key of LEGS) removed altogether

    @property
    def obs_dim(self) -> int:
        return ANT.obs_dim - (4 if self.removed else 0)  # a leg has 2 joint angles and 2 joint velocities

    @property
    def action_dim(self) -> int:
        return ANT.action_dim - (2 if self.removed else 0)


MORPHOLOGIES = {
    "standard": Morphology(),
    **{f"short_{leg}": Morphology(shortened=leg) for leg in LEGS},
    **{f"no_{leg}": Morphology(removed=leg) for leg in LEGS},
}

# Random-policy return per morphology and episode length: (mean, standard error, episodes), measured as the module
# docstring says (1000 steps on 2026-11-23, 50 steps on 2026-12-01). Random episodes earn 1 per step alive minus
# 0.5 * |a|^2 (on average 1.33 per step with 8 motors, 1.0 with 6): short-legged Ants rarely bounce out of the
# healthy height range, so they live longer and lose more.
RANDOM_RETURNS = {
    "standard": {50: (-14.7, 1.9, 100), 1000: (-54.2, 9.3, 100)},
    "short_front_left": {50: (-18.8, 1.8, 100), 1000: (-252.5, 14.3, 100)},
    "short_front_right": {50: (-10.2, 1.8, 100), 1000: (-250.0, 14.5, 100)},
    "short_back_left": {50: (-11.5, 1.7, 100), 1000: (-207.2, 15.9, 100)},
    "short_back_right": {50: (-17.3, 1.9, 100), 1000: (-220.2, 15.8, 100)},
    "no_front_left": {50: (3.3, 1.2, 100), 1000: (3.6, 2.5, 100)},
    "no_front_right": {50: (-7.9, 1.2, 100), 1000: (-5.7, 2.5, 100)},
    "no_back_left": {50: (-5.5, 1.3, 100), 1000: (-11.6, 2.2, 100)},
    "no_back_right": {50: (4.7, 1.3, 100), 1000: (4.6, 2.5, 100)},
}

# Random-policy distance walked (metres) per morphology with reward=distance (the distance episode: burn-in, early
# stops), as (mean, standard error, episodes) at 1000 policy steps, measured 2026-12-01 with the command in the module
# docstring. Random legs push the body about as much one way as the other, so every one is within a metre of 0.
RANDOM_DISTANCES = {
    "standard": {1000: (-0.2, 0.2, 100)},
    "short_front_left": {1000: (-0.5, 0.1, 100)},
    "short_front_right": {1000: (0.7, 0.2, 100)},
    "short_back_left": {1000: (0.4, 0.1, 100)},
    "short_back_right": {1000: (-0.7, 0.2, 100)},
    "no_front_left": {1000: (0.1, 0.1, 100)},
    "no_front_right": {1000: (-0.2, 0.1, 100)},
    "no_back_left": {1000: (0.0, 0.1, 100)},
    "no_back_right": {1000: (0.1, 0.1, 100)},
}

# Budgets of the continual variant.
SIZES = {
    # seconds on a CPU: for tests
    "smoke": dict(steps_per_task=200, cycles=2, eval_every=100, eval_episodes=1, warmup_steps=100, max_episode_steps=50),
    # quick leaderboards: 2 morphologies x 50k steps x 2 cycles = 200k steps per seed, like cyclic_mujoco's lite
    "lite": dict(steps_per_task=50_000, cycles=2, eval_every=25_000, eval_episodes=3, warmup_steps=5_000, max_episode_steps=1000),
    # each visit as long as the reference's training (1M steps)
    "full": dict(steps_per_task=1_000_000, cycles=2, eval_every=50_000, eval_episodes=10, warmup_steps=25_000, max_episode_steps=1000),
}
# Budgets of the paper variant: a visit is one 1000-step episode of each of 200 environments, a cycle one generation.
PAPER_SIZES = {
    # seconds on a CPU: for tests (episodes of 50 policy steps; set steps_per_task to population x 50)
    "smoke": dict(steps_per_task=200, cycles=2, eval_every=100, eval_episodes=1, warmup_steps=100, max_episode_steps=50),
    # 10 generations at population 200: 4M steps per seed
    "lite": dict(steps_per_task=200_000, cycles=10, eval_every=200_000, eval_episodes=3, warmup_steps=5_000, max_episode_steps=1000),
    # the paper's 300 generations at population 200: 1.2e8 steps per seed
    "full": dict(steps_per_task=200_000, cycles=300, eval_every=200_000, eval_episodes=10, warmup_steps=25_000, max_episode_steps=1000),
}


@dataclass
class AntMorphologyConfig:
    name: str = "ant_morphology"  # protocol family
    size: str = "lite"  # smoke | lite | full: the presets below; any budget field set here overrides its preset
    variant: str = "continual"  # continual: morphologies visited in turn for long visits | paper: Najarro & Risi's protocol
    train: list[str] = field(default_factory=lambda: ["standard", "short_back_right"])  # trained morphologies, stream order
    held_out: list[str] = field(default_factory=lambda: ["short_front_left"])  # evaluated, never trained (the paper's split)
    reward: str | None = None  # gymnasium | distance (the authors' quadruped episode); None: the variant's
    steps_per_task: int | None = None  # environment steps per seed on each morphology visit
    cycles: int | None = None  # passes over the training morphologies
    eval_every: int | None = None  # environment steps per seed between evaluations
    eval_episodes: int | None = None  # deterministic episodes per seed and morphology at each evaluation
    warmup_steps: int | None = None  # random-action steps at the start of the stream
    max_episode_steps: int | None = None  # episode length limit (policy steps)
    task_aware: bool = False  # append a one-hot id of the trained morphology to observations
    boundaries_visible: bool = True  # tell methods when the morphology switches

    def __post_init__(self):
        require(self.variant in VARIANTS, f"protocol.variant={self.variant!r} is not allowed: use one of {', '.join(VARIANTS)}")
        allowed = ", ".join(REWARDS)
        require(self.reward is None or self.reward in REWARDS, f"protocol.reward={self.reward!r} is not allowed: use one of {allowed}")

    @property
    def resolved_reward(self) -> str:
        return self.reward or ("distance" if self.variant == "paper" else "gymnasium")


def ant_xml(name: str, userdata: int = 0) -> str:
    """The MuJoCo XML of morphology `name`, edited from Gymnasium's standard ant.xml (with `userdata` userdata slots)."""
    require(name in MORPHOLOGIES, f"morphology {name!r} is not an ant_morphology variant; allowed: {', '.join(MORPHOLOGIES)}")
    morphology = MORPHOLOGIES[name]
    root = ET.fromstring((files("gymnasium.envs.mujoco") / "assets" / "ant.xml").read_text())
    if morphology.shortened:
        lower_leg = _body_with_joint(root, LEGS[morphology.shortened].ankle).find("geom")
        values = [float(v) for v in lower_leg.get("fromto").split()]
        start, end = values[:3], values[3:]
        end = [a + SHORT_FRACTION * (b - a) for a, b in zip(start, end, strict=True)]
        lower_leg.set("fromto", " ".join(f"{v:g}" for v in start + end))
    if morphology.removed:
        leg = LEGS[morphology.removed]
        torso = root.find("./worldbody/body[@name='torso']")
        torso.remove(torso.find(f"./body[@name='{leg.body}']"))
        actuators = root.find("actuator")
        for motor in [m for m in actuators if m.get("joint") in (leg.hip, leg.ankle)]:
            actuators.remove(motor)
        root.remove(root.find("custom"))  # its init_qpos lists the removed joints; Gymnasium never reads it
    if userdata:
        root.insert(0, ET.Element("size", nuserdata=str(userdata)))
    return ET.tostring(root, encoding="unicode")


def _body_with_joint(root: ET.Element, joint: str) -> ET.Element:
    return next(body for body in root.iter("body") if body.find(f"./joint[@name='{joint}']") is not None)


class DistanceEpisode(gym.Wrapper):
    """The authors' quadruped episode on Ant-v5 (built with terminate_when_unhealthy=False and a time limit that
    also counts the burn-in): burn-in at reset, distance walked as the reward, the early stops after step 200.

    The backward-streak counter lives in MuJoCo's userdata slot 0, and the step count in the time limit, so the
    pool's snapshots carry both.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        require(isinstance(env, TimeLimit), "the distance episode wraps the time limit, which counts its steps")

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        still = np.zeros(self.action_space.shape, dtype=self.action_space.dtype)
        for _ in range(BURN_IN_STEPS):
            obs, _, _, _, info = self.env.step(still)
        return obs, info

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        reward = float(info["x_velocity"]) * self.unwrapped.dt  # metres along +x in this step
        t = self.env._elapsed_steps - BURN_IN_STEPS - 1  # policy steps before this one, as the authors count
        terminated, streak = False, self.unwrapped.data.userdata
        if t > EARLY_STOP_AFTER:
            streak[0] = streak[0] + 1 if reward < 0.0 else 0
            terminated = not self.unwrapped.is_healthy
            truncated = truncated or (not terminated and streak[0] > BACKWARD_STREAK)
        return obs, reward, terminated, truncated, info


def make_task(name: str, max_episode_steps: int, reward: str = "gymnasium") -> Task:
    """Ant-v5 with morphology `name` as a stream task, with Gymnasium's reward or the distance episode."""
    distance = reward == "distance"
    xml = ant_xml(name, userdata=1 if distance else 0)
    morphology = MORPHOLOGIES[name]
    make_env = partial(_make_env, xml, max_episode_steps, distance)
    random_return, random_source = random_return_at((RANDOM_DISTANCES if distance else RANDOM_RETURNS)[name], max_episode_steps)
    if distance:
        reference_return, reference_source = REFERENCE_SPEED * ANT_DT * max_episode_steps, DISTANCE_REFERENCE
    else:
        reference_return = scaled_reference(ANT.reference_return, max_episode_steps)
        reference_source = f"{ANT.reference_source} (standard Ant), at its per-step rate over {max_episode_steps} steps"
    return Task(
        name=name,
        obs_dim=morphology.obs_dim,
        action_dim=morphology.action_dim,
        make_pool=lambda seeds: GymPool(make_env, seeds),
        random_return=random_return,
        reference_return=reference_return,
        reference_source=reference_source,
        random_source=random_source,
    )


def _make_env(xml: str, max_episode_steps: int, distance: bool):
    """Ant-v5 on `xml`: written to a temporary file that lives only while MuJoCo compiles it."""
    settings = dict(ANT.kwargs, terminate_when_unhealthy=False) if distance else dict(ANT.kwargs)
    limit = max_episode_steps + (BURN_IN_STEPS if distance else 0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ant.xml")
        with open(path, "w") as f:
            f.write(xml)
        env = gym.make(ANT.env_id, max_episode_steps=limit, xml_file=path, **settings)
    return DistanceEpisode(env) if distance else env


@register_protocol("ant_morphology", AntMorphologyConfig)
def build(config: AntMorphologyConfig) -> Stream:
    s = resolve_size(config, PAPER_SIZES if config.variant == "paper" else SIZES)
    require(s["max_episode_steps"] > 0, f"max_episode_steps={s['max_episode_steps']} is not allowed: it must be > 0")
    both = sorted(set(config.train) & set(config.held_out))
    require(not both, f"morphology {', '.join(both)} is both trained and held out; a held-out morphology must be unseen")
    reward = config.resolved_reward
    tasks = {name: make_task(name, s["max_episode_steps"], reward) for name in [*config.train, *config.held_out]}
    return Stream(
        name=f"ant_morphology-{'paper-' if config.variant == 'paper' else ''}{config.size}",
        tasks=tuple(tasks[name] for name in config.train),
        held_out=tuple(tasks[name] for name in config.held_out),
        steps_per_task=s["steps_per_task"],
        cycles=s["cycles"],
        eval_every=s["eval_every"],
        eval_episodes=s["eval_episodes"],
        warmup_steps=s["warmup_steps"],
        task_aware=config.task_aware,
        boundaries_visible=config.boundaries_visible,
        generation_steps=len(config.train) * s["max_episode_steps"] if config.variant == "paper" else None,  # one episode per morphology
    )
