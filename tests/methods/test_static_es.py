import math

import pytest
import torch
from cyclic_bench.methods.static_es import StaticES, StaticESConfig
from test_hebbian import make, step

from cyclic_bench.errors import ConfigError
from cyclic_bench.events import zero_fraction
from cyclic_bench.method import Transition
from cyclic_bench.rng import SeedRNG


def test_members_play_their_genomes_as_weights_and_nothing_changes_within_an_episode():
    agent = make(cls=StaticES)
    assert agent.genomes.shape == (1, 4, 5 * 3 + 4 * 5 + 2 * 4)
    weights = [w.clone() for w in agent.policy_weights()]
    torch.testing.assert_close(torch.cat([w.flatten(2) for w in weights], dim=2), agent.genomes)
    obs = torch.randn(1, 4, 3)
    action = step(agent, obs, torch.zeros(1, 4), terminated=torch.ones(1, 4, dtype=torch.bool))
    expected = obs
    for w in weights:
        expected = torch.tanh(torch.einsum("seoi,sei->seo", w, expected))
    torch.testing.assert_close(action, expected)
    assert all(torch.equal(a, b) for a, b in zip(weights, agent.policy_weights(), strict=True))


def test_the_centre_starts_as_pytorchs_default_linear_layers_or_within_one_bound():
    agent = make(cls=StaticES, obs_dim=27, action_dim=8, hidden=[128, 64], population=2)
    for w, fan_in in zip(agent.per_layer(agent.es.centre[:, None]), (27, 128, 64), strict=True):
        bound = 1 / math.sqrt(fan_in)  # nn.Linear's kaiming_uniform(a=sqrt(5)), as in the authors' static-network code
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound and abs(w.mean()) < 0.05 * bound
    narrow = make(cls=StaticES, obs_dim=27, action_dim=8, hidden=[128, 64], population=2, init_bound=0.01)
    assert narrow.es.centre.abs().max() <= 0.01
    with pytest.raises(ConfigError, match="^method.init_bound=-1.0 is not allowed"):
        StaticESConfig(init_bound=-1.0)


def test_evaluation_plays_the_centre():
    agent = make(cls=StaticES)
    agent.on_episode_start(torch.ones(1, 3, dtype=torch.bool), explore=False)
    obs = torch.randn(1, 3, 3)
    expected = obs
    for w in agent.per_layer(agent.es.centre[:, None]):
        expected = torch.tanh(torch.einsum("soi,sei->seo", w[:, 0, 0], expected))
    torch.testing.assert_close(agent.act(obs, explore=False), expected)


def test_damage_lasts_until_the_generation_closes():
    agent = make(cls=StaticES, population=2, generation_steps=3)
    zero_fraction(agent.policy_weights(), 1 / 3, SeedRNG([0], stream=9))
    zeros = sum(int((w == 0).sum()) for w in agent.policy_weights())
    assert zeros == round(agent.genomes.shape[2] * 2 / 3)
    step(agent, torch.zeros(1, 2, 3), torch.ones(1, 2))
    assert sum(int((w == 0).sum()) for w in agent.policy_weights()) == zeros  # static: no regrowth
    step(agent, torch.zeros(1, 2, 3), torch.ones(1, 2), terminated=torch.ones(1, 2, dtype=torch.bool))
    step(agent, torch.zeros(1, 2, 3), torch.ones(1, 2))  # the generation closes: evolution hands out fresh genomes
    assert agent.es.generation.item() == 1 and sum(int((w == 0).sum()) for w in agent.policy_weights()) == 0


def centre_error(agent: StaticES, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    agent.on_episode_start(torch.ones(1, 1, dtype=torch.bool), explore=False)
    return (agent.act(obs[:, :1], explore=False) - target).square().sum()


def test_static_es_evolves_weights_that_hit_a_target_action():
    """Reward -|action - target|^2 on a fixed observation, 5-step episodes: the centre's action must close in on it.

    (The toy stream is no test for it: a network without biases is an odd function of the observation, so on the
    toy task's symmetric offsets it cannot push right on average; only plastic weights can.)
    """
    agent = make(cls=StaticES, population=20, hidden=[8, 8], generation_steps=5, lr=0.05, sigma=0.3, sigma_decay=1.0)
    obs, target = torch.tensor([1.0, 0.5, -0.5]).expand(1, 20, 3), torch.tensor([0.6, -0.4])
    before = centre_error(agent, obs, target)
    for t in range(1, 5 * 60 + 1):
        action = agent.act(obs, explore=True)
        done = torch.full((1, 20), t % 5 == 0)
        reward = -(action - target).square().sum(dim=-1)
        agent.observe(Transition(obs, action, reward, obs, done, torch.zeros_like(done), learn=True))
    assert agent.es.generation.item() == 60 and centre_error(agent, obs, target) < 0.2 * before
