import torch

from cyclic_bench.nn import BatchedMLP, SeedAdam
from cyclic_bench.rng import SeedRNG
from cyclic_bench.units import reinit_units


def test_reinit_units_draws_incoming_zeroes_outgoing_resets_norm_and_moments_only_where_asked():
    net = BatchedMLP(2, [3, 5, 4, 1], SeedRNG([0, 1], stream=9), members=(2,), layer_norm=[0])
    opt = SeedAdam(net.parameters(), 2, 1e-3)
    for moment in [*opt.exp_avg, *opt.exp_avg_sq]:
        moment.fill_(1.0)
    with torch.no_grad():
        net.norms["0"].weight.fill_(3.0)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    units = torch.zeros(2, 2, 5, dtype=torch.bool)
    units[0, 1, 2] = units[1, 0, 4] = True  # one unit of seed 0's second member, one of seed 1's first
    reinit_units(net.layers[0], net.layers[1], units, SeedRNG([0, 1], stream=10), opt, net.norms["0"])

    after = dict(net.named_parameters())
    changed = (after["layers.0.weight"] != before["layers.0.weight"]).any(dim=2)  # [S, members, units]
    assert torch.equal(changed, units)
    assert torch.equal((after["layers.0.bias"] != before["layers.0.bias"]).squeeze(2), units)
    assert (after["layers.1.weight"][units] == 0).all() and torch.equal(after["layers.1.weight"][~units], before["layers.1.weight"][~units])
    norm_gain = after["norms.0.weight"].squeeze(2)
    assert (norm_gain[units] == 1).all() and (norm_gain[~units] == 3).all()
    assert torch.equal(after["layers.2.weight"], before["layers.2.weight"])
    moments = dict(zip([name for name, _ in net.named_parameters()], opt.exp_avg_sq, strict=True))
    assert torch.equal(moments["layers.0.weight"].transpose(2, 3) == 0, units.unsqueeze(-1).expand(-1, -1, -1, 3))
    assert torch.equal((moments["layers.1.weight"] == 0).all(dim=-1), units)
    assert (moments["layers.2.weight"] == 1).all()
