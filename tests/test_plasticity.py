import torch

from cyclic_bench.nn import BatchedMLP
from cyclic_bench.plasticity import (
    active_fraction,
    density,
    distance_from,
    dormant_ratio,
    dormant_units,
    effective_rank,
    network_diagnostics,
    parameter_count,
    srank,
    unit_scores,
)
from cyclic_bench.rng import SeedRNG


def test_redo_scores_and_dormant_units_by_hand():
    # seed 0: units with mean |h| 0, 1, 2 (layer mean 1); seed 1: all equal
    h = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    assert torch.allclose(unit_scores(h), torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]), atol=1e-6)
    assert dormant_units(h, 0.0).tolist() == [[True, False, False], [False, False, False]]
    assert torch.allclose(dormant_ratio([h], 0.1), torch.tensor([1 / 3, 0.0]))
    assert torch.allclose(active_fraction([h]), torch.tensor([2 / 3, 1.0]))


def test_srank_and_effective_rank_of_known_spectra():
    rank2 = torch.zeros(1, 8, 5)
    rank2[0, :, 0], rank2[0, :4, 1] = 1.0, 1.0  # two independent directions of comparable size
    assert srank(rank2).item() == 2
    identity = torch.eye(4).unsqueeze(0)
    assert abs(effective_rank(identity).item() - 4.0) < 1e-4  # equal singular values: entropy log 4


def test_network_diagnostics_per_seed_and_density_with_a_mask():
    net = BatchedMLP(2, [3, 6, 6, 1], SeedRNG([0, 1], stream=9))
    initial = [p.detach().clone() for p in net.parameters()]
    layer = net.layers[0]
    layer.mask = torch.ones_like(layer.weight)
    layer.mask[0, :, :3] = 0  # seed 0 drops half of the first layer's weights
    assert density(net)[1] == 1.0 and density(net)[0] < 1.0
    assert parameter_count(net)[1] - parameter_count(net)[0] == 9
    assert distance_from(net, initial).tolist() == [0.0, 0.0]
    x = torch.randn(2, 32, 3)
    before = network_diagnostics("actor", net, x, initial)
    assert all(v.shape == (2,) and torch.isfinite(v).all() for v in before.values())
    with torch.no_grad():  # kill one live unit of seed 1's first hidden layer
        unit = int(torch.nonzero(~dormant_units(_hidden(net, x)[0], 0.0)[1])[0])
        layer.weight[1, :, unit], layer.bias[1, :, unit] = 0.0, -100.0
    after = network_diagnostics("actor", net, x, initial)
    assert torch.isclose(after["actor_dormant_ratio_tau0"][1] - before["actor_dormant_ratio_tau0"][1], torch.tensor(1 / 12))
    assert after["actor_dormant_ratio_tau0"][0] == before["actor_dormant_ratio_tau0"][0]  # seeds do not interact
    assert after["actor_distance_from_init"][1] > 0 and after["actor_distance_from_init"][0] == 0


def _hidden(net, x):
    hidden = []
    net(x, hidden=hidden)
    return hidden


def test_feature_ranks_of_a_non_finite_seed_are_nan_and_the_others_unchanged():
    features = torch.randn(3, 2, 16, 8, generator=torch.Generator().manual_seed(0))  # [S, members, B, units]
    clean_srank, clean_erank = srank(features), effective_rank(features)
    features[1, 0, 3, 2], features[2, 1, 0, 0] = float("nan"), float("inf")  # torch.linalg.svdvals raises on these
    assert torch.equal(srank(features)[0], clean_srank[0]) and torch.equal(effective_rank(features)[0], clean_erank[0])
    assert srank(features)[1:].isnan().all() and effective_rank(features)[1:].isnan().all()
