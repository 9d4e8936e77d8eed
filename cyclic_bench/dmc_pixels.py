"""Pixel observations of DeepMind Control tasks: rendered RGB frames, stacked, as in DrQ (Kostrikov, Yarats & Fergus,
ICLR 2021, "Image Augmentation Is All You Need", arXiv 2004.13649; public code github.com/denisyarats/drq).

Each observation is the last `frame_stack` frames (default 3) of `image_size` x `image_size` RGB (default 84), rendered
by MuJoCo's headless renderer after every agent step (after the whole action repeat), channels first, oldest frame
first: [frame_stack * 3, H, W] values 0-255, handed to the engine flattened as float32 (exact for bytes). At a reset
the stack holds the first frame `frame_stack` times, as DrQ's frame stack does. Camera 0, or 2 for quadruped (DrQ's
choice, after Dreamer). Rendering needs an OpenGL context without a display: EGL (`MUJOCO_GL=egl`; Debian's packages
libegl1, libegl-mesa0 and libgl1-mesa-dri on a CPU) or OSMesa (`MUJOCO_GL=osmesa`, libosmesa6).

Action repeat per domain (`PIXEL_ACTION_REPEAT`): DrQ's PlaNet-benchmark values (its Table of hyperparameters:
cartpole 8, reacher 4, cheetah 4, ball_in_cup 4, finger 2, walker 2); every other domain 2, the Dreamer benchmark's
setting. Snapshots are the state-based pool's plus each environment's frame stack, so a resumed run sees the
same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cyclic_bench.dmc import SUITE_EPISODE_LENGTH, DMCPool

PIXEL_ACTION_REPEAT = {"cartpole": 8, "reacher": 4, "cheetah": 4, "ball_in_cup": 4, "finger": 2, "walker": 2}
OTHER_ACTION_REPEAT = 2  # domains DrQ's PlaNet table does not list: the Dreamer benchmark's action repeat
CAMERA = {"quadruped": 2}  # every other domain renders camera 0


def pixel_action_repeat(domain: str) -> int:
    return PIXEL_ACTION_REPEAT.get(domain, OTHER_ACTION_REPEAT)


def pixel_shape(image_size: int, frame_stack: int) -> tuple[int, int, int]:
    """The observation's image shape: channels (frames x RGB), height, width."""
    return (3 * frame_stack, image_size, image_size)


class PixelDMCPool(DMCPool):
    """dm_control environments whose observations are stacks of rendered frames."""

    rendered = True

    def __init__(
        self,
        domain: str,
        task: str,
        seeds: Sequence[int],
        action_repeat: int = 1,
        episode_length: int = SUITE_EPISODE_LENGTH,
        image_size: int = 84,
        frame_stack: int = 3,
    ):
        self.image_size, self.camera = image_size, CAMERA.get(domain, 0)
        self.frames = np.zeros((len(seeds), frame_stack, 3, image_size, image_size), dtype=np.uint8)  # each env's stack
        self.cameras = [None] * len(seeds)  # each env's camera, made at its first frame (a camera costs as much as a frame)
        super().__init__(domain, task, seeds, action_repeat, episode_length)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.frames.shape[1:]))

    def render(self, i: int) -> np.ndarray:
        """Environment i's camera image now, [3, H, W] uint8 (what physics.render gives, with its camera kept)."""
        if self.cameras[i] is None:
            from dm_control.mujoco.engine import Camera

            self.cameras[i] = Camera(self.envs[i].physics, self.image_size, self.image_size, self.camera)
        return self.cameras[i].render().transpose(2, 0, 1)

    def observe(self, i: int, observation: dict, start: bool) -> np.ndarray:
        frame = self.render(i)
        stack = self.frames[i]
        if start:
            stack[:] = frame
        else:
            stack[:-1] = stack[1:].copy()
            stack[-1] = frame
        return stack.reshape(-1).astype(np.float32)

    def get_state(self) -> list[dict]:
        return [{**state, "frames": frames.copy()} for state, frames in zip(super().get_state(), self.frames, strict=True)]

    def set_state(self, states: list[dict]) -> None:
        super().set_state(states)
        for i, state in enumerate(states):
            self.frames[i] = state["frames"]
