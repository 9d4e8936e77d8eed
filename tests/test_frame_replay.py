"""The frame replay: stacks rebuilt from frames stored once equal the stacks the environment handed out (episode starts
per seed included), nothing is read after it was overwritten, a checkpoint round trip is exact, and the planned
memory is what it allocates."""

import io

import torch

from cyclic_bench.frame_replay import FrameReplay, planned_bytes

SEEDS, K, FRAME = 2, 3, (3, 4, 4)


def play(replay: FrameReplay, steps: int, episode_lengths: tuple[int, ...], seed: int = 0) -> list[dict]:
    """Feed `steps` transitions whose observations stack fresh random frames as an environment's frame stack does
    (the first frame repeated after a reset); seed s's episodes last episode_lengths[s] steps. Returns them."""
    g = torch.Generator().manual_seed(seed)
    stacks = [None] * SEEDS
    elapsed = [0] * SEEDS
    fed = []
    for _ in range(steps):
        new = torch.randint(0, 256, (SEEDS, 2, *FRAME), generator=g, dtype=torch.uint8)
        for s in range(SEEDS):
            if stacks[s] is None:
                stacks[s] = new[s, 0].expand(K, *FRAME).clone()
        obs = torch.stack(stacks)
        nxt = torch.cat([obs[:, 1:], new[:, 1:2]], dim=1)
        action, reward = torch.rand(SEEDS, 2, generator=g), torch.rand(SEEDS, generator=g)
        replay.add(obs.reshape(SEEDS, -1).float(), action, reward, nxt.reshape(SEEDS, -1).float(), torch.zeros(SEEDS))
        fed.append({"obs": obs.reshape(SEEDS, K * 3, *FRAME[1:]), "next_obs": nxt.reshape(SEEDS, K * 3, *FRAME[1:]), "action": action})
        ended = torch.zeros(SEEDS, dtype=torch.bool)
        for s in range(SEEDS):
            elapsed[s] += 1
            stacks[s] = nxt[s]
            if elapsed[s] == episode_lengths[s]:
                elapsed[s], stacks[s], ended[s] = 0, None, True
        replay.start_episodes(ended)
    return fed


def test_stacks_are_rebuilt_exactly_across_episode_starts_of_each_seed():
    replay = FrameReplay(SEEDS, 40, FRAME, K, 2, "cpu")
    fed = play(replay, 30, episode_lengths=(4, 7))
    assert replay.size == 30
    batch = replay.get(torch.arange(30).expand(SEEDS, 30))
    for i, step in enumerate(fed):
        for key in ("obs", "next_obs", "action"):
            assert torch.equal(batch[key][:, i], step[key].to(batch[key].dtype)), (i, key)


def test_a_full_ring_keeps_the_newest_transitions_and_never_reads_an_overwritten_frame():
    replay = FrameReplay(SEEDS, 20, FRAME, K, 2, "cpu")  # frame slots for 20 transitions and 1 + K spare ones
    fed = play(replay, 90, episode_lengths=(2, 3))  # short episodes: more first frames than spare slots
    assert 0 < replay.size <= 20
    logical = torch.arange(replay.size).expand(SEEDS, -1)
    batch = replay.get(replay.chronological(logical))
    for i, step in enumerate(fed[-replay.size :]):
        assert torch.equal(batch["obs"][:, i], step["obs"]) and torch.equal(batch["next_obs"][:, i], step["next_obs"]), i


def test_a_checkpoint_round_trip_continues_exactly():
    first = FrameReplay(SEEDS, 20, FRAME, K, 2, "cpu")
    play(first, 25, episode_lengths=(4, 6))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = FrameReplay(SEEDS, 20, FRAME, K, 2, "cpu")
    second.load_state_dict(torch.load(buffer))
    for replay in (first, second):
        play(replay, 10, episode_lengths=(3, 5), seed=1)
    everything = torch.arange(first.size).expand(SEEDS, -1)
    mine, theirs = first.get(first.chronological(everything)), second.get(second.chronological(everything))
    assert first.size == second.size and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_the_planned_memory_is_what_it_allocates():
    replay = FrameReplay(3, 1000, (3, 84, 84), 3, 6, "cpu")
    assert planned_bytes(3, 1000, (3, 84, 84), 3, 6) == replay.nbytes()
    per_seed_transition = replay.nbytes() / (3 * 1000)
    assert 21_168 < per_seed_transition < 21_168 * 1.03  # one 3x84x84 frame, 2% spare frames, and the small fields
