import csv
import json
import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from cyclic_bench.methods.hebbian import HebbianConfig, HebbianES
from cyclic_bench.protocols.ant_morphology import (
    ANT_DT,
    BURN_IN_STEPS,
    LEGS,
    MORPHOLOGIES,
    PAPER_SIZES,
    SIZES,
    AntMorphologyConfig,
    build,
    make_task,
)
from helpers import Recorder, spec_for

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.results import RunDir
from cyclic_bench.run import train
from cyclic_bench.trainer import Engine, EngineOptions

HIP_XY = {"front_left": (0.2, 0.2), "front_right": (-0.2, 0.2), "back_left": (-0.2, -0.2), "back_right": (0.2, -0.2)}  # docstring's table
SMALL_TD3 = ["method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]", "method.batch_size=16"]


def compiled(name: str) -> mujoco.MjModel:
    """The model of the environment the protocol really builds for morphology `name`."""
    pool = make_task(name, 50).make_pool([0])
    return pool.envs[0].unwrapped.model


def body_of_joint(model: mujoco.MjModel, joint: str) -> int:
    return int(model.jnt_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)])


def capsule_ends(model: mujoco.MjModel, geom: int) -> tuple[np.ndarray, np.ndarray]:
    """The end points of a capsule's segment in its body's frame: the one nearer the body's origin first."""
    axis = np.zeros(3)
    mujoco.mju_rotVecQuat(axis, np.array([0.0, 0.0, 1.0]), model.geom_quat[geom])
    ends = sorted((model.geom_pos[geom] + sign * model.geom_size[geom, 1] * axis for sign in (-1, 1)), key=np.linalg.norm)
    return ends[0], ends[1]


def lower_leg_geom(model: mujoco.MjModel, leg: str) -> int:
    body = body_of_joint(model, LEGS[leg].ankle)
    return int(np.flatnonzero(model.geom_bodyid == body)[0])


@pytest.mark.parametrize("name", list(MORPHOLOGIES))
def test_declared_sizes_match_the_real_environment(name):
    task = make_task(name, 50)
    env = task.make_pool([0]).envs[0]
    assert env.observation_space.shape == (task.obs_dim,) and env.action_space.shape == (task.action_dim,)
    assert task.reference_return > task.random_return and task.reference_source


def test_standard_is_gymnasiums_ant_unchanged():
    ours, theirs = compiled("standard"), gym.make("Ant-v5").unwrapped.model
    for field in ("geom_size", "geom_pos", "body_pos", "body_mass", "jnt_range", "actuator_gear", "actuator_trnid"):
        assert np.array_equal(getattr(ours, field), getattr(theirs, field)), field


def test_leg_names_map_to_the_documented_hips():
    model = compiled("standard")
    for leg, xy in HIP_XY.items():
        assert np.allclose(model.body_pos[body_of_joint(model, LEGS[leg].hip)], (*xy, 0.0))
        top = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, LEGS[leg].body)
        assert model.body_parentid[body_of_joint(model, LEGS[leg].hip)] == top


@pytest.mark.parametrize("leg", list(LEGS))
def test_a_short_leg_is_a_quarter_as_long_and_nothing_else_changes(leg):
    standard, short = compiled("standard"), compiled(f"short_{leg}")
    geom = lower_leg_geom(short, leg)
    (start, end), (start0, end0) = capsule_ends(short, geom), capsule_ends(standard, geom)
    assert np.allclose(start, start0)  # still hangs from the ankle
    assert np.allclose(end - start, 0.25 * (end0 - start0))
    assert short.geom_size[geom, 1] == pytest.approx(0.25 * standard.geom_size[geom, 1])
    others = np.arange(standard.ngeom) != geom
    assert np.array_equal(short.geom_size[others], standard.geom_size[others])
    assert np.array_equal(short.geom_pos[others], standard.geom_pos[others])
    assert (short.nq, short.nv, short.nu, short.nbody) == (standard.nq, standard.nv, standard.nu, standard.nbody)


@pytest.mark.parametrize("leg", list(LEGS))
def test_a_removed_leg_takes_its_bodies_joints_and_motors_with_it(leg):
    standard, model = compiled("standard"), compiled(f"no_{leg}")
    gone = LEGS[leg]
    assert model.nu == standard.nu - 2 and model.nq == standard.nq - 2 and model.nv == standard.nv - 2
    assert model.nbody == standard.nbody - 3  # the leg's top, hip and lower bodies
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, gone.body) == -1
    for joint in (gone.hip, gone.ankle):
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint) == -1

    def driven(m):
        return [m.joint(int(j)).name for j in m.actuator_trnid[:, 0]]

    assert driven(model) == [j for j in driven(standard) if j not in (gone.hip, gone.ankle)]  # the others keep their order
    assert model.ngeom == standard.ngeom - 3


def test_unknown_morphology_is_refused_naming_it_and_the_allowed_ones():
    allowed = ", ".join(MORPHOLOGIES)
    for config in (AntMorphologyConfig(train=["standard", "short_middle"]), AntMorphologyConfig(held_out=["short_middle"])):
        with pytest.raises(ConfigError, match=f"morphology 'short_middle' is not an ant_morphology variant; allowed: {allowed}$"):
            build(config)
    with pytest.raises(ConfigError, match="short_back_right is both trained and held out"):
        build(AntMorphologyConfig(held_out=["short_back_right"]))
    with pytest.raises(ConfigError, match="^protocol.variant='mixed' is not allowed: use one of continual, paper$"):
        AntMorphologyConfig(variant="mixed")
    with pytest.raises(ConfigError, match="^protocol.reward='speed' is not allowed: use one of gymnasium, distance$"):
        AntMorphologyConfig(reward="speed")


@pytest.mark.parametrize("variant, size", [(v, size) for v in ("continual", "paper") for size in SIZES])
def test_every_size_builds_the_papers_split(variant, size):
    """The paper trains on the standard Ant and the one with a short back-right leg; "damaged on left front leg" is held out."""
    stream = build(AntMorphologyConfig(size=size, variant=variant))
    assert [t.name for t in stream.tasks] == ["standard", "short_back_right"]
    assert [t.name for t in stream.held_out] == ["short_front_left"]
    assert stream.steps_per_task % stream.eval_every == 0 and stream.warmup_steps < stream.steps_per_task
    assert (stream.obs_dim, stream.action_dim) == (27, 8)


def test_budgets_of_both_variants():
    lite, full = build(AntMorphologyConfig(size="lite")), build(AntMorphologyConfig(size="full"))
    assert lite.total_steps == 200_000 and full.steps_per_task == 1_000_000
    assert lite.tasks[0].reference_source.startswith("Fujimoto")  # the continual variant keeps Gymnasium's reward
    paper_lite, paper_full = (
        build(AntMorphologyConfig(size="lite", variant="paper")),
        build(AntMorphologyConfig(size="full", variant="paper")),
    )
    assert paper_full.steps_per_task == 200 * 1000 and paper_full.cycles == 300 and paper_full.total_steps == 120_000_000  # the paper's
    assert paper_lite.total_steps == 4_000_000 and set(PAPER_SIZES) == set(SIZES)
    assert paper_full.tasks[0].reference_return == pytest.approx(1000 * ANT_DT)  # the distance reward: 1 m/s for 1000 steps


def test_switches_are_exact_and_adapters_fit_a_removed_leg(tmp_path):
    stream = build(AntMorphologyConfig(size="smoke", train=["no_back_left", "standard"], held_out=["no_front_right"], eval_every=200))
    assert (stream.obs_dim, stream.action_dim) == (27, 8)
    method = Recorder(None, spec_for(stream, (0, 1)))
    Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()
    assert method.task_starts == [(0, 0), (200, 1), (400, 0), (600, 1)]
    assert len(method.transitions) == stream.total_steps == 800
    assert all(t.obs.shape == (2, 1, 27) for t in method.transitions)
    assert not method.transitions[0].obs[..., 23:].any() and method.transitions[200].obs[..., 23:].any()  # padding only on 3 legs
    assert all(bool((method.transitions[i].truncated | method.transitions[i].terminated).all()) for i in (199, 399, 599, 799))


@pytest.mark.parametrize("variant", ["continual", "paper"])
def test_td3_runs_the_smoke_size_and_reports_held_out_morphologies_apart(tmp_path, variant):
    overrides = ["method=td3", "protocol=ant_morphology", "protocol.size=smoke", f"protocol.variant={variant}", "seeds=2", "progress=false"]
    summary = train(compose_config([*overrides, *SMALL_TD3]), tmp_path)
    assert summary["failed_seeds"] == [] and summary["steps_per_seed"] == 800
    assert summary["tasks"] == ["standard", "short_back_right"] and summary["held_out_tasks"] == ["short_front_left"]
    assert set(summary["final_scores"]) == {"standard", "short_back_right", "short_front_left"}
    assert all(math.isfinite(v) for scores in summary["final_scores"].values() for v in scores.values())
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    with open(tmp_path / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    held_out_steps = sorted({int(r["step"]) for r in rows if r["eval_task"] == "short_front_left"})
    assert held_out_steps == list(range(0, 801, 100))  # evaluated at every evaluation
    assert {r["trained_task"] for r in rows} == {"none", "standard", "short_back_right"}  # never trained
    with open(tmp_path / "diagnostics.csv") as f:
        assert {r["name"] for r in csv.DictReader(f)} >= {"critic_loss", "actor_loss"}  # it learned on both morphologies


def test_the_distance_episode_burns_in_40_still_steps_and_pays_the_distance_walked():
    env = make_task("standard", 1000, "distance").make_pool([0]).envs[0]
    inner = env.env
    obs, _ = env.reset(seed=3)
    inner_obs, _ = inner.reset(seed=3)
    for _ in range(BURN_IN_STEPS):
        inner_obs, *_ = inner.step(np.zeros(8))
    np.testing.assert_array_equal(obs, inner_obs)  # the reset ends after the burn-in, on the floor
    assert env.unwrapped.data.qpos[2] < 0.7  # the torso starts at 0.75 (plus noise) and has settled
    action = np.full(8, 0.3)
    x = env.unwrapped.data.body("torso").xpos[0]
    _, reward, terminated, truncated, info = env.step(action)
    assert reward == pytest.approx(env.unwrapped.data.body("torso").xpos[0] - x) and reward == pytest.approx(info["x_velocity"] * ANT_DT)
    assert not terminated and not truncated


def backwards_until_stopped(env, steps: int):
    """Hold the Ant in place and report every step as a backward one: the streak counter sees negative rewards."""
    ends = []
    for t in range(steps):
        env.unwrapped.data.qvel[0] = -1.0  # pushed backwards each step: the torso moves along -x
        _, reward, terminated, truncated, _ = env.step(np.zeros(8))
        ends.append((t, reward < 0, terminated, truncated))
        if terminated or truncated:
            break
    return ends


def test_the_distance_episode_stops_after_step_200_on_a_backward_streak_and_resumes_it_from_a_snapshot():
    pool = make_task("standard", 1000, "distance").make_pool([0])
    pool.reset()
    ends = backwards_until_stopped(pool.envs[0], 400)
    assert all(backward for _, backward, _, _ in ends[190:])
    t, _, terminated, truncated = ends[-1]
    assert t == 200 + 31 and truncated and not terminated  # the authors count from t > 200 and stop once the streak passes 30
    pool.reset()
    backwards_until_stopped(pool.envs[0], 215)  # 14 steps into a streak
    snapshot = pool.get_state()
    fresh = make_task("standard", 1000, "distance").make_pool([0])
    fresh.reset()
    fresh.set_state(snapshot)
    assert fresh.envs[0].unwrapped.data.userdata[0] == 14
    assert backwards_until_stopped(fresh.envs[0], 100)[-1][0] == 231 - 215


def test_the_distance_episode_ends_on_an_unhealthy_body_only_after_step_200():
    env = make_task("standard", 1000, "distance").make_pool([0]).envs[0]
    env.reset(seed=0)
    env.unwrapped.data.qpos[2] = 2.0  # torso far above the healthy range: Gymnasium would terminate at once
    ends = []
    for t in range(300):
        env.unwrapped.data.qpos[2], env.unwrapped.data.qvel[:] = 2.0, 0.0
        _, _, terminated, truncated, _ = env.step(np.zeros(8))
        if terminated or truncated:
            ends.append((t, terminated))
            break
    assert ends == [(201, True)]


class RecordingHebbian(HebbianES):
    """Hebbian ES that records, per member, its summed reward on each training morphology of the open generation."""

    def __init__(self, config, spec):
        super().__init__(config, spec)
        self.task, self.per_task, self.fitness_seen = 0, {}, []

    def on_task_start(self, task_index):
        self.task = task_index

    def observe(self, t):
        self.per_task[self.task] = self.per_task.get(self.task, 0.0) + t.reward
        super().observe(t)

    def close_generation(self, continuing):
        self.fitness_seen.append((dict(self.per_task), self.window_episodes.clone()))
        self.per_task = {}
        super().close_generation(continuing)


def test_an_es_generation_on_the_paper_protocol_scores_every_member_on_every_training_morphology(tmp_path):
    stream = build(AntMorphologyConfig(size="smoke", variant="paper"))  # visits of 200 steps: one 50-step episode per member of 4
    P, episode = 4, 50
    assert stream.generation_steps == 2 * episode  # the stream's window: one episode per training morphology
    method = RecordingHebbian(HebbianConfig(population=P, hidden=[8]), spec_for(stream, (0, 1)))  # generation_steps left to the stream
    Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()
    assert method.es.generation.tolist() == [stream.cycles] * 2 and method.diagnostics()["fitness_step_fraction"].tolist() == [1.0, 1.0]
    for per_task, episodes in method.fitness_seen:
        assert set(per_task) == {0, 1} and episodes.eq(2).all()  # one episode on each morphology
    last, _ = method.fitness_seen[-1]
    torch.testing.assert_close(method.last_returns, (last[0] + last[1]) / 2)  # fitness: the mean over the morphologies
