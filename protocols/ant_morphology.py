"""Ant morphology stream: Gymnasium's Ant-v5 with damaged bodies, cycled in training and tested zero-shot on unseen ones.

After the damaged-morphology experiment of Najarro & Risi 2020 (Meta-learning through Hebbian plasticity in random
networks, NeurIPS, arXiv 2007.02686): train on the standard Ant and the Ant whose front-left lower leg is
shortened to a quarter of its length; test on the unseen Ant whose back-right lower leg is shortened the same way.
Here the training morphologies are visited in turn, each for a budget of steps, for several cycles (the paper's
evolution strategy instead scored every morphology in each fitness evaluation); every evaluation also plays the
held-out morphologies, which are never trained and are reported apart (`summary.json` lists them under
`held_out_tasks`).

Variants are written as MuJoCo XML at run time, by editing Gymnasium's standard `ant.xml`:
- `standard`: the model unchanged.
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
  held out); other lengths are interpolated between these.
- `reference`: TD3's Ant return after 1M steps (Fujimoto et al. 2018, Table 1), the same for every morphology, so
  a damaged Ant's score says how close it comes to what TD3 reaches on the intact one; scaled to the length played
  at the same per-step rate.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import partial
from importlib.resources import files

from cyclic_bench.protocols.cyclic_mujoco import TASKS

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

SIZES = {
    # seconds on a CPU: for tests
    "smoke": dict(steps_per_task=200, cycles=2, eval_every=100, eval_episodes=1, warmup_steps=100, max_episode_steps=50),
    # quick leaderboards: 2 morphologies x 50k steps x 2 cycles = 200k steps per seed, like cyclic_mujoco's lite
    "lite": dict(steps_per_task=50_000, cycles=2, eval_every=25_000, eval_episodes=3, warmup_steps=5_000, max_episode_steps=1000),
    # each visit as long as the reference's training (1M steps)
    "full": dict(steps_per_task=1_000_000, cycles=2, eval_every=50_000, eval_episodes=10, warmup_steps=25_000, max_episode_steps=1000),
}


@dataclass
class AntMorphologyConfig:
    name: str = "ant_morphology"  # protocol family
    size: str = "lite"  # smoke | lite | full: the presets below; any budget field set here overrides its preset
    train: list[str] = field(default_factory=lambda: ["standard", "short_front_left"])  # trained morphologies, stream order
    held_out: list[str] = field(default_factory=lambda: ["short_back_right"])  # evaluated, never trained
    steps_per_task: int | None = None  # environment steps per seed on each morphology visit
    cycles: int | None = None  # passes over the training morphologies
    eval_every: int | None = None  # environment steps per seed between evaluations
    eval_episodes: int | None = None  # deterministic episodes per seed and morphology at each evaluation
    warmup_steps: int | None = None  # random-action steps at the start of the stream
    max_episode_steps: int | None = None  # episode length limit
    task_aware: bool = False  # append a one-hot id of the trained morphology to observations
    boundaries_visible: bool = True  # tell methods when the morphology switches


def ant_xml(name: str) -> str:
    """The MuJoCo XML of morphology `name`, edited from Gymnasium's standard ant.xml."""
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
    return ET.tostring(root, encoding="unicode")


def _body_with_joint(root: ET.Element, joint: str) -> ET.Element:
    return next(body for body in root.iter("body") if body.find(f"./joint[@name='{joint}']") is not None)


def make_task(name: str, max_episode_steps: int) -> Task:
    """Ant-v5 with morphology `name` as a stream task."""
    xml = ant_xml(name)
    morphology = MORPHOLOGIES[name]
    make_env = partial(_make_env, xml, max_episode_steps)
    random_return, random_source = random_return_at(RANDOM_RETURNS[name], max_episode_steps)
    return Task(
        name=name,
        obs_dim=morphology.obs_dim,
        action_dim=morphology.action_dim,
        make_pool=lambda seeds: GymPool(make_env, seeds),
        random_return=random_return,
        reference_return=scaled_reference(ANT.reference_return, max_episode_steps),
        reference_source=f"{ANT.reference_source} (standard Ant), at its per-step rate over {max_episode_steps} steps",
        random_source=random_source,
    )


def _make_env(xml: str, max_episode_steps: int):
    """Ant-v5 on `xml`: written to a temporary file that lives only while MuJoCo compiles it."""
    import gymnasium as gym

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ant.xml")
        with open(path, "w") as f:
            f.write(xml)
        return gym.make(ANT.env_id, max_episode_steps=max_episode_steps, xml_file=path, **dict(ANT.kwargs))


@register_protocol("ant_morphology", AntMorphologyConfig)
def build(config: AntMorphologyConfig) -> Stream:
    s = resolve_size(config, SIZES)
    require(s["max_episode_steps"] > 0, f"max_episode_steps={s['max_episode_steps']} is not allowed: it must be > 0")
    both = sorted(set(config.train) & set(config.held_out))
    require(not both, f"morphology {', '.join(both)} is both trained and held out; a held-out morphology must be unseen")
    return Stream(
        name=f"ant_morphology-{config.size}",
        tasks=tuple(make_task(name, s["max_episode_steps"]) for name in config.train),
        held_out=tuple(make_task(name, s["max_episode_steps"]) for name in config.held_out),
        steps_per_task=s["steps_per_task"],
        cycles=s["cycles"],
        eval_every=s["eval_every"],
        eval_episodes=s["eval_episodes"],
        warmup_steps=s["warmup_steps"],
        task_aware=config.task_aware,
        boundaries_visible=config.boundaries_visible,
    )
