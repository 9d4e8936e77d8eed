import torch

from cyclic_bench.nn import BatchedLinear, BatchedMLP, SeedAdam
from cyclic_bench.rng import SeedRNG


def test_batched_linear_matches_a_plain_matmul_per_seed_and_member():
    layer = BatchedLinear(3, 4, 5, SeedRNG([0, 1, 2], 0), members=(2,))
    x = torch.randn(3, 2, 6, 4)
    y = layer(x)
    assert y.shape == (3, 2, 6, 5)
    for s in range(3):
        for m in range(2):
            torch.testing.assert_close(y[s, m], x[s, m] @ layer.weight[s, m] + layer.bias[s, m])


def test_initial_weights_are_bit_identical_alone_and_in_a_batch():
    alone = BatchedMLP(1, [4, 8, 2], SeedRNG([5], 1))
    batch = BatchedMLP(3, [4, 8, 2], SeedRNG([4, 5, 6], 1))
    for a, b in zip(alone.parameters(), batch.parameters(), strict=True):
        assert torch.equal(a[0], b[1])


def test_mask_makes_the_layer_sparse():
    layer = BatchedLinear(1, 3, 2, SeedRNG([0], 0))
    layer.mask = torch.zeros_like(layer.weight)
    x = torch.randn(1, 4, 3)
    torch.testing.assert_close(layer(x), layer.bias.expand(1, 4, 2))
    assert "mask" in layer.state_dict()


def test_seed_adam_matches_torch_adam_and_skips_inactive_seeds():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(2, 3))
    reference = torch.nn.Parameter(p.detach()[0].clone())
    ours = SeedAdam([p], n_seeds=2, lr=0.1)
    theirs = torch.optim.Adam([reference], lr=0.1)
    frozen = p.detach()[1].clone()
    for _ in range(5):
        g = torch.randn(3)
        p.grad = torch.stack([g, torch.full((3,), float("nan"))])
        reference.grad = g.clone()
        ours.step(torch.tensor([True, False]))
        theirs.step()
    torch.testing.assert_close(p.detach()[0], reference.detach())
    assert torch.equal(p.detach()[1], frozen)


def test_seed_adam_reset_forgets_only_the_chosen_seeds():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    opt = SeedAdam([p], n_seeds=2, lr=0.1)
    p.grad = torch.ones(2, 3)
    opt.step(torch.tensor([True, True]))
    opt.reset(torch.tensor([True, False]))
    assert opt.exp_avg[0][0].abs().sum() == 0 and opt.exp_avg[0][1].abs().sum() > 0
    assert opt.steps.tolist() == [0.0, 1.0]
