"""A replay buffer of image transitions per seed that stores every frame once, as uint8, and rebuilds frame stacks on
sampling.

An observation is a stack of the last k frames; consecutive observations share k - 1 of them, so storing stacks
would hold each frame 2k times (obs and next_obs). Here every transition keeps only the newest frame of its next
observation, plus the frame index of its episode's first frame; a stack is frames (next - k + j) for j = 0..k-1
(obs) or 1..k (next_obs), each clamped to the episode's first frame, which is exactly how the environment's stack
repeats the first frame after a reset. The first frame of every episode is stored once more (it is no
transition's next frame). All seeds step in lockstep, so they share one transition write position; each seed has its
own frame counter (episodes start at different steps for different seeds).

Frames live in a ring of `capacity + capacity // SPARE_PER + k + 1` slots. When more episodes start inside the
buffer than the spare slots hold (episodes shorter than SPARE_PER agent steps), the oldest transitions are dropped
before their frames are overwritten, so `size` stays a little below capacity then; a stack never reads a
frame that has been overwritten.
"""

from __future__ import annotations

import math

import torch

SPARE_PER = 50  # one spare frame slot per this many transitions: room for the first frames of episodes this long


def frame_slots(capacity: int, frame_stack: int) -> int:
    return capacity + capacity // SPARE_PER + frame_stack + 1


def planned_bytes(n_seeds: int, capacity: int, frame_shape: tuple[int, ...], frame_stack: int, action_dim: int) -> int:
    """What a FrameReplay of these sizes allocates, in bytes (checked against the real allocation in the tests)."""
    frames = n_seeds * frame_slots(capacity, frame_stack) * math.prod(frame_shape)  # uint8
    per_transition = n_seeds * (4 * action_dim + 4 + 4 + 8 + 8)  # action, reward, done (float32); first and next frame (int64)
    return frames + capacity * per_transition


class FrameReplay:
    """Ring buffer of image transitions for S seeds; frames [3, H, W] uint8, observations stacks of `frame_stack` frames."""

    def __init__(self, n_seeds: int, capacity: int, frame_shape: tuple[int, ...], frame_stack: int, action_dim: int, device):
        self.n_seeds, self.capacity, self.frame_stack, self.frame_shape = n_seeds, capacity, frame_stack, tuple(frame_shape)
        self.frame_capacity = frame_slots(capacity, frame_stack)
        self.frames = torch.zeros(n_seeds, self.frame_capacity, *frame_shape, dtype=torch.uint8, device=device)
        self.data = {
            "action": torch.zeros(n_seeds, capacity, action_dim, device=device),
            "reward": torch.zeros(n_seeds, capacity, device=device),
            "done": torch.zeros(n_seeds, capacity, device=device),
            "first_frame": torch.zeros(n_seeds, capacity, dtype=torch.int64, device=device),  # its episode's first frame
            "next_frame": torch.zeros(n_seeds, capacity, dtype=torch.int64, device=device),  # its next_obs's newest frame
        }
        # host copies of what eviction reads every step (no device sync): frame counters, next frames, episode starts
        self.frames_written = torch.zeros(n_seeds, dtype=torch.int64)
        self.next_frame_host = torch.zeros(n_seeds, capacity, dtype=torch.int64)
        self.starting = torch.ones(n_seeds, dtype=torch.bool)  # seeds whose next stored obs begins an episode
        self.episode_first = torch.zeros(n_seeds, dtype=torch.int64, device=device)  # first frame of each seed's running episode
        self.transitions_written = 0  # transitions stored so far (absolute counter)
        self.position = 0  # next transition slot
        self.size = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [self.frames, *self.data.values()])

    def start_episodes(self, mask: torch.Tensor) -> None:
        """Seeds where mask [S] is True begin a new episode with their next stored transition."""
        self.starting |= mask.cpu()

    def newest_frame(self, obs: torch.Tensor) -> torch.Tensor:
        """[S, k * 3 * H * W] flat stacks (float, 0-255) -> their newest frames [S, 3, H, W] uint8."""
        return obs.reshape(self.n_seeds, self.frame_stack, *self.frame_shape)[:, -1].round().to(torch.uint8)

    def push_frames(self, frame: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """Store `frame` [S, 3, H, W] of the seeds where `seeds` (bool [S], host) is True, after dropping the oldest
        transitions that still need a frame this overwrites. Returns every seed's newest frame index [S] (host)."""
        while self.size > 0:
            needed = self.next_frame_host[:, self.oldest_slot()] - self.frame_stack  # the oldest transition's earliest frame
            if not bool((seeds & (needed <= self.frames_written - self.frame_capacity)).any()):
                break
            self.size -= 1
        rows = seeds.nonzero().flatten()
        slots = self.frames_written[rows] % self.frame_capacity
        device = self.frames.device
        self.frames[rows.to(device), slots.to(device)] = frame[rows.to(frame.device)].to(device)
        self.frames_written += seeds
        return self.frames_written - 1

    def oldest_slot(self) -> int:
        return (self.position - self.size) % self.capacity

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor, done: torch.Tensor) -> None:
        """One transition per seed: obs and next_obs [S, k*3*H*W] (flat stacks), action [S, A], reward and done [S]."""
        if bool(self.starting.any()):
            first = self.push_frames(self.newest_frame(obs), self.starting)
            self.episode_first = torch.where(
                self.starting.to(self.episode_first.device), first.to(self.episode_first.device), self.episode_first
            )
            self.starting.zero_()
        next_index = self.push_frames(self.newest_frame(next_obs), torch.ones(self.n_seeds, dtype=torch.bool))
        slot = self.position
        self.next_frame_host[:, slot] = next_index
        fields = {"action": action, "reward": reward, "done": done, "first_frame": self.episode_first, "next_frame": next_index}
        for name, values in fields.items():
            self.data[name][:, slot] = values.to(self.data[name].device, self.data[name].dtype)
        self.position = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.transitions_written += 1

    def chronological(self, logical: torch.Tensor) -> torch.Tensor:
        """Slot of the i-th oldest stored transition (0 = oldest), for age-aware sampling."""
        return (self.position - self.size + logical) % self.capacity

    def get(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        """slots [S, B] -> obs and next_obs [S, B, k*3, H, W] uint8, action [S, B, A], reward and done [S, B]."""
        rows = torch.arange(self.n_seeds, device=slots.device)[:, None]
        k = self.frame_stack
        offsets = torch.arange(k + 1, device=slots.device) - k
        indices = torch.maximum(self.data["next_frame"][rows, slots][..., None] + offsets, self.data["first_frame"][rows, slots][..., None])
        frames = self.frames[rows[..., None], indices % self.frame_capacity]  # [S, B, k + 1, 3, H, W]
        S, B = slots.shape
        batch = {name: self.data[name][rows, slots] for name in ("action", "reward", "done")}
        batch["obs"] = frames[:, :, :k].reshape(S, B, k * self.frame_shape[0], *self.frame_shape[1:])
        batch["next_obs"] = frames[:, :, 1:].reshape(S, B, k * self.frame_shape[0], *self.frame_shape[1:])
        return batch

    def state_dict(self) -> dict:
        """Only what has been written (a buffer that has not wrapped yet saves its filled part)."""
        stored = min(int(self.frames_written.max()), self.frame_capacity)
        slots = min(self.transitions_written, self.capacity)
        return {
            "frames": self.frames[:, :stored],
            "data": {name: values[:, :slots] for name, values in self.data.items()},
            "episode_first": self.episode_first,
            "starting": self.starting,
            "frames_written": self.frames_written,
            "transitions_written": self.transitions_written,
            "position": self.position,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.frames[:, : state["frames"].shape[1]] = state["frames"].to(self.frames.device)
        for name, values in state["data"].items():
            self.data[name][:, : values.shape[1]] = values.to(self.data[name].device)
        self.next_frame_host = self.data["next_frame"].cpu().clone()
        self.episode_first.copy_(state["episode_first"])
        self.starting.copy_(state["starting"])
        self.frames_written.copy_(state["frames_written"])
        self.transitions_written, self.position, self.size = state["transitions_written"], state["position"], state["size"]
