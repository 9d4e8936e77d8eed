import io

import torch

from cyclic_bench.es import OpenAIES, centered_ranks, keyed_normal, keyed_uniform, row_keys, shaped_fitness


def make_es(seed_ids=(0, 1, 2), dim=5, population=8, **overrides) -> OpenAIES:
    settings = dict(lr=0.2, lr_decay=0.995, lr_limit=0.001, sigma=0.1, sigma_decay=0.999, sigma_limit=0.01, l2=0.0)
    settings.update(overrides)
    return OpenAIES(torch.zeros(len(seed_ids), dim), seed_ids, stream=7, population=population, **settings)


def test_members_are_antithetic_pairs_around_the_centre():
    es = make_es()
    es.centre.data = torch.randn(3, 5)
    members = es.members()
    assert members.shape == (3, 8, 5)
    torch.testing.assert_close((members[:, 0::2] + members[:, 1::2]) / 2, es.centre[:, None].expand(3, 4, 5))
    torch.testing.assert_close(members[:, 0::2] - es.centre[:, None], 0.1 * es.noise)


def test_centered_ranks_span_minus_half_to_half_per_seed_and_standardise():
    fitness = torch.tensor([[3.0, -1.0, 10.0, 0.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    ranks = centered_ranks(fitness)
    assert torch.equal(ranks[0], torch.tensor([0.0, -0.5, 0.5, -0.25, 0.25]))
    assert torch.equal(ranks[1], torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5]))
    shaped = shaped_fitness(fitness * 1000)  # scale-free: only the order counts
    torch.testing.assert_close(shaped.mean(dim=1), torch.zeros(2))
    torch.testing.assert_close(shaped.std(dim=1, unbiased=False), torch.ones(2))
    assert torch.equal(shaped.argsort(dim=1), fitness.argsort(dim=1))


def test_one_update_matches_the_formula_and_decays_lr_and_sigma():
    es = make_es(population=4, l2=0.01)
    members, noise = es.members(), es.noise.clone()
    returns = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    fitness = returns - 0.01 * members.square().mean(dim=2)
    shaped = shaped_fitness(fitness)
    eps = torch.stack([noise, -noise], dim=2).flatten(1, 2)
    expected = 0.2 / (4 * 0.1) * torch.einsum("sp,spd->sd", shaped, eps)
    es.tell(returns, torch.tensor([True, True, False]))
    torch.testing.assert_close(es.centre[:2], expected[:2])
    assert torch.equal(es.centre[2], torch.zeros(5))  # a seed that did not close its generation keeps everything
    torch.testing.assert_close(es.lr, torch.tensor([0.2 * 0.995, 0.2 * 0.995, 0.2]))
    torch.testing.assert_close(es.sigma, torch.tensor([0.1 * 0.999, 0.1 * 0.999, 0.1]))
    assert es.generation.tolist() == [1, 1, 0]
    assert not torch.equal(es.noise[0], noise[0]) and torch.equal(es.noise[2], noise[2])


def test_lr_and_sigma_stop_decaying_at_their_limits():
    es = make_es(lr=0.0011, sigma=0.0101)
    for _ in range(3):
        es.tell(torch.randn(3, 8), torch.ones(3, dtype=torch.bool))
    assert torch.all(es.lr < 0.0011) and torch.all(es.lr > 0.001 * 0.995)
    assert torch.all(es.sigma < 0.0101) and torch.all(es.sigma > 0.01 * 0.999)


def improve_quadratic(es: OpenAIES, targets: torch.Tensor, generations: int, closes) -> None:
    for g in range(generations):
        returns = -(es.members() - targets[:, None]).square().sum(dim=2)
        es.tell(returns, closes(g))


def test_es_improves_a_quadratic_for_every_seed_independently():
    targets = torch.stack([torch.full((5,), 1.0), torch.full((5,), -2.0), torch.linspace(-1, 1, 5)])
    es = make_es(population=20, lr=0.05, lr_decay=1.0, sigma_decay=1.0)
    start = (es.centre - targets).norm(dim=1)
    improve_quadratic(es, targets, 150, lambda g: torch.ones(3, dtype=torch.bool))
    assert torch.all((es.centre - targets).norm(dim=1) < 0.2 * start)


def test_a_seed_evolves_the_same_alone_and_in_a_batch_whenever_the_others_close():
    targets = torch.randn(3, 5)
    batch, alone = make_es(seed_ids=(4, 5, 6)), make_es(seed_ids=(5,))
    assert torch.equal(batch.noise[1], alone.noise[0])
    # in the batch, seeds 4 and 6 close on other generations than seed 5; seed 5 closes every other call
    improve_quadratic(batch, targets, 40, lambda g: torch.tensor([g % 3 == 0, g % 2 == 0, True]))
    improve_quadratic(alone, targets[1:2], 40, lambda g: torch.tensor([g % 2 == 0]))
    assert batch.generation[1] == alone.generation[0] == 20
    torch.testing.assert_close(batch.centre[1], alone.centre[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(batch.noise[1], alone.noise[0])


def test_state_round_trips_and_the_noise_is_redrawn_from_the_generation():
    es = make_es()
    es.tell(torch.randn(3, 8), torch.tensor([True, False, True]))
    buffer = io.BytesIO()
    torch.save(es.state_dict(), buffer)
    assert set(es.state_dict()) == {"centre", "lr", "sigma", "generation"}  # no noise: it is a function of the generation
    buffer.seek(0)
    fresh = make_es()
    fresh.load_state_dict(torch.load(buffer))
    for name in ("centre", "lr", "sigma", "generation", "noise"):
        assert torch.equal(getattr(fresh, name), getattr(es, name)), name


def test_keyed_draws_depend_only_on_key_and_counter():
    keys = row_keys([3, 9], stream=2, rows=4)
    assert keys.shape == (2, 4) and len(set(keys.flatten().tolist())) == 8
    assert torch.equal(row_keys([9], stream=2, rows=4)[0], keys[1])
    counters = torch.tensor([0, 5])
    pair = keyed_uniform(keys[:, 0], counters, 1000)
    assert torch.equal(keyed_uniform(keys[1:, 0], counters[1:], 1000)[0], pair[1])
    assert pair.min() >= 0 and pair.max() < 1 and abs(pair.mean() - 0.5) < 0.05
    normal = keyed_normal(keys.flatten(), torch.zeros(8, dtype=torch.int64), 5000)
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1) < 0.05
