import math

import torch

from cyclic_bench.rng import SeedRNG, hash32


def test_a_seed_draws_the_same_numbers_alone_and_in_any_batch():
    alone = SeedRNG([7], stream=3)
    batch = SeedRNG([1, 7, 2, 9], stream=3)
    for _ in range(3):
        assert torch.equal(alone.normal(5, 4)[0], batch.normal(5, 4)[1])
        assert torch.equal(alone.randint(1000, 8)[0], batch.randint(1000, 8)[1])


def test_seeds_and_streams_differ():
    rng = SeedRNG([0, 1], stream=0)
    a, b = rng.uniform(1000)
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.1
    assert not torch.equal(SeedRNG([0], stream=1).uniform(10), SeedRNG([0], stream=2).uniform(10))


def test_distributions_have_the_right_moments():
    rng = SeedRNG([3, 4], stream=5)
    u = rng.uniform(20_000, low=-1.0, high=3.0)
    assert u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 0.03 and abs(u.var() - 16 / 12) < 0.05
    z = rng.normal(20_000)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03
    k = rng.randint(10, 50_000)
    counts = torch.bincount(k.flatten(), minlength=10).float() / k.numel()
    assert k.min() == 0 and k.max() == 9 and (counts - 0.1).abs().max() < 0.01


def test_state_restores_the_stream():
    rng = SeedRNG([0, 1], stream=0)
    rng.normal(3)
    saved = rng.state_dict()
    first = rng.normal(3)
    rng.load_state_dict(saved)
    assert torch.equal(first, rng.normal(3))


def test_hash_stays_in_32_bits_without_overflow():
    x = torch.tensor([0, 1, 2**31, 2**32 - 1], dtype=torch.int64)
    h = hash32(x)
    assert (h >= 0).all() and (h < 2**32).all()
    assert len(set(h.tolist())) == 4
    assert math.isclose(float(hash32(torch.arange(100_000)).float().mean()), 2**31, rel_tol=0.02)
