import torch

from cyclic_bench.replay import SeedReplay


def test_each_seed_reads_its_own_rows_and_the_ring_wraps():
    replay = SeedReplay(2, capacity=4, fields={"x": (1,)}, device="cpu")
    for step in range(6):
        replay.add(x=torch.tensor([[[step]], [[100 + step]]], dtype=torch.float32))
    assert replay.size == 4
    oldest_first = replay.chronological(torch.arange(4).expand(2, 4))
    values = replay.get(oldest_first)["x"].squeeze(-1)
    assert values.tolist() == [[2, 3, 4, 5], [102, 103, 104, 105]]


def test_state_round_trip():
    replay = SeedReplay(1, capacity=5, fields={"x": ()}, device="cpu")
    replay.add(x=torch.tensor([[1.0, 2.0]]))
    copy = SeedReplay(1, capacity=5, fields={"x": ()}, device="cpu")
    copy.load_state_dict(replay.state_dict())
    assert copy.size == 2 and copy.position == 2 and torch.equal(copy.data["x"], replay.data["x"])
