"""Pixel DMC: frames are rendered headless on the CPU, stacked as DrQ's frame stack does, restored exactly from a
snapshot; the protocol's pixel setting builds the same streams with DrQ's action repeats, and refuses what cannot work."""

import numpy as np
import pytest
from cyclic_bench.protocols.cyclic_dmc import CyclicDMCConfig, build

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.dmc import DMCPool
from cyclic_bench.dmc_pixels import PixelDMCPool, pixel_action_repeat
from cyclic_bench.errors import ConfigError

SIZE = 16  # tiny images: rendering is the cost here


def frames(obs: np.ndarray) -> np.ndarray:
    """[N, 9 * SIZE * SIZE] -> [N, 3 frames, 3, SIZE, SIZE]."""
    return obs.reshape(len(obs), 3, 3, SIZE, SIZE)


def test_frames_are_rendered_and_stacked_oldest_first_with_the_first_frame_repeated_after_a_reset():
    pool = PixelDMCPool("walker", "walk", [3, 4], action_repeat=2, episode_length=8, image_size=SIZE, frame_stack=3)
    start = frames(pool.reset())
    assert pool.obs_dim == 9 * SIZE * SIZE and start.max() > start.min()  # an image, not a blank
    assert all(np.array_equal(start[:, 0], start[:, j]) for j in (1, 2))
    steps = [frames(pool.step(np.full((2, 6), 0.8, np.float32)).obs) for _ in range(3)]
    assert np.array_equal(steps[0][:, :2], start[:, 1:]) and not np.array_equal(steps[0][:, 2], start[:, 2])  # the body moved
    assert np.array_equal(steps[1][:, :2], steps[0][:, 1:]) and np.array_equal(steps[2][:, :2], steps[1][:, 1:])
    assert steps[2].max() <= 255 and (steps[2] == np.round(steps[2])).all()  # bytes, exactly
    reset = pool.step(np.zeros((2, 6), np.float32))  # the episode's 4th agent step (8 control steps) ends it
    assert reset.truncated.all() and all(np.array_equal(frames(reset.obs)[:, 0], frames(reset.obs)[:, j]) for j in (1, 2))
    assert np.array_equal(frames(reset.final_obs)[:, :2], steps[2][:, 1:])


def test_a_snapshot_restores_the_pixels_exactly():
    pool = PixelDMCPool("cheetah", "run", [7], action_repeat=4, episode_length=40, image_size=SIZE)
    pool.reset()
    pool.step(np.full((1, 6), 0.5, np.float32))
    snapshot = pool.get_state()
    ahead = [pool.step(np.full((1, 6), -0.3, np.float32)).obs for _ in range(2)]
    other = PixelDMCPool("cheetah", "run", [7], action_repeat=4, episode_length=40, image_size=SIZE)
    other.reset()
    other.set_state(snapshot)
    again = [other.step(np.full((1, 6), -0.3, np.float32)).obs for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(ahead, again, strict=True))


def test_the_pixel_setting_plays_the_same_streams_with_drqs_action_repeats():
    states = build(CyclicDMCConfig(size="smoke", stream="cross_body"))
    pixels = build(CyclicDMCConfig(size="smoke", stream="cross_body", observation="pixels", episode_length=40))
    assert [t.name for t in pixels.tasks] == [t.name for t in states.tasks]
    assert pixels.obs_shape == (9, 32, 32) and pixels.obs_dim == 9 * 32 * 32 and states.obs_shape is None  # smoke renders 32 x 32
    assert build(CyclicDMCConfig(size="lite", observation="pixels")).obs_shape == (9, 84, 84)
    assert [pixel_action_repeat(t.name.split("-")[0]) for t in pixels.tasks] == [4, 2, 2, 2]
    assert pixel_action_repeat("cartpole") == 8 and pixel_action_repeat("quadruped") == 2
    pool = pixels.tasks[0].make_pool([0])
    assert isinstance(pool, PixelDMCPool) and pool.action_repeat == 4 and isinstance(states.tasks[0].make_pool([0]), DMCPool)
    fixed = build(CyclicDMCConfig(size="smoke", observation="pixels", action_repeat=1))
    assert fixed.tasks[0].make_pool([0]).action_repeat == 1  # a set action repeat holds for every task


PIXELS = ["protocol.observation=pixels"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method=drq", "protocol.observation=rgb"], "protocol.observation='rgb' is not allowed"),
        (["method=drq", *PIXELS, "protocol.image_size=8"], "protocol.image_size=8 is not allowed"),
        (["method=drq", *PIXELS, "protocol.task_aware=true"], "task_aware is not allowed with image observations"),
        (["method=drq", *PIXELS, "protocol.tasks=[cheetah-run]", "protocol.episode_length=50"], "action_repeat=4 is not allowed"),
        (["method=td3", *PIXELS], "method=td3 cannot play cyclic_dmc-walker-pixels-smoke: it has pixels observations"),
        (["method=ne", *PIXELS], "method=ne cannot play .*: it has pixels observations"),
        (["method=drq"], "method=drq cannot play cyclic_dmc-walker-smoke: it has vector observations"),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        plan_run(compose_config(["protocol=cyclic_dmc", "protocol.size=smoke", *overrides]))
