import pytest
import torch
from cyclic_bench.methods.interventions.l2_init import squared_distance
from helpers import transitions
from method_checks import LEARNERS, make, trained

from cyclic_bench.errors import ConfigError
from cyclic_bench.learner import with_terms

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def test_each_network_loss_adds_strength_times_the_squared_distance_from_its_start(learner):
    agent = make("l2_init", learner, strength=0.5)
    batch = trained(agent, steps=20).learner.sample()
    for name, net in agent.learner.networks.items():
        with torch.no_grad():
            for p, p0 in zip(net.module.parameters(), net.initial, strict=True):
                p.copy_(p0 + 1.0)  # every parameter exactly 1 from where it started
        plain = net.loss(batch, agent.learner.probe_rng)
        per_seed = sum(p[0].numel() for p in net.module.parameters())  # parameters of one seed (both twin critics)
        torch.testing.assert_close(with_terms(plain, net) - plain, torch.full((2,), 0.5 * per_seed), msg=name)
        torch.testing.assert_close(squared_distance(net), torch.full((2,), float(per_seed)), msg=name)


def test_the_pull_keeps_the_parameters_closer_to_their_start(learner):
    free, pulled = make("l2_init", learner, strength=0.0, lr=1e-2), make("l2_init", learner, strength=1.0, lr=1e-2)
    for agent in (free, pulled):
        for t in transitions(2, 60):
            agent.observe(t)
    for name in ("actor", "critic"):
        far, near = (squared_distance(agent.learner.networks[name]) for agent in (free, pulled))
        assert (near < 0.5 * far).all(), name


def test_a_negative_strength_is_refused(learner):
    with pytest.raises(ConfigError, match="method.strength=-1.0 is not allowed: it must be a finite number >= 0"):
        make("l2_init", learner, strength=-1.0)
