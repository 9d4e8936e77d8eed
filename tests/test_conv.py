"""Seed-batched convolutions: seed k alone equals seed k in a batch and equals a plain convolution with its weights;
random shifts are drawn per seed (the same alone and in a batch) and are pad-and-crop with a replicated border."""

import torch
from torch import nn

from cyclic_bench.conv import BatchedConv2d, ConvEncoder, conv_output_size, random_shift
from cyclic_bench.rng import SeedRNG


def images(n_seeds: int, n: int = 5, shape=(9, 16, 16), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n_seeds, n, *shape), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


def test_the_encoder_of_a_seed_alone_equals_its_row_in_a_batch(cpu_threads):
    batch, alone = ConvEncoder(3, (9, 16, 16), 8, 4, SeedRNG([4, 5, 6], 1)), ConvEncoder(1, (9, 16, 16), 8, 4, SeedRNG([5], 1))
    for a, b in zip(alone.parameters(), batch.parameters(), strict=True):
        assert torch.equal(a[0], b[1])  # the same initial weights
    x = images(3)
    hidden_batch, hidden_alone = [], []
    out_batch, out_alone = batch(x, hidden_batch), alone(x[1:2], hidden_alone)
    assert out_batch.shape == (3, 5, 8 * conv_output_size(16, 4) ** 2) and conv_output_size(84, 4) == 35  # DrQ's 35 x 35 maps
    torch.testing.assert_close(out_alone[0], out_batch[1], rtol=1e-5, atol=1e-6)
    for h_alone, h_batch in zip(hidden_alone, hidden_batch, strict=True):
        torch.testing.assert_close(h_alone[0], h_batch[1], rtol=1e-5, atol=1e-6)
    other = x.clone()
    other[0] = 255 - other[0]
    torch.testing.assert_close(batch(other)[1], out_batch[1], rtol=0, atol=0)  # another seed's input never reaches seed 1


def test_a_batched_convolution_is_each_seeds_own_convolution():
    layer = BatchedConv2d(2, 9, 4, 3, 2, SeedRNG([0, 1], 1))
    x = torch.randn(2, 3, 9, 11, 11)
    y = layer(x)
    for s in range(2):
        expected = nn.functional.conv2d(x[s], layer.weight[s], layer.bias[s], stride=2)
        torch.testing.assert_close(y[s], expected, rtol=1e-5, atol=1e-6)


def test_random_shifts_are_drawn_per_seed_and_crop_a_replicated_border():
    x = images(3, n=6)
    shifted_batch = random_shift(x, 2, SeedRNG([4, 5, 6], 5))
    shifted_alone = random_shift(x[1:2], 2, SeedRNG([5], 5))
    assert torch.equal(shifted_alone[0], shifted_batch[1])  # seed 5's offsets do not depend on its company
    assert not torch.equal(shifted_batch[0], shifted_batch[2])
    offsets = SeedRNG([4, 5, 6], 5).randint(5, 6, 2)  # the draw random_shift made
    padded = nn.functional.pad(x.float().flatten(0, 1), (2, 2, 2, 2), mode="replicate").view(3, 6, 9, 20, 20)
    for s in range(3):
        for n in range(6):
            dy, dx = offsets[s, n].tolist()
            assert torch.equal(shifted_batch[s, n], padded[s, n, :, dy : dy + 16, dx : dx + 16])
    assert offsets.min() >= 0 and offsets.max() <= 4 and len(set(map(tuple, offsets.flatten(0, 1).tolist()))) > 1
