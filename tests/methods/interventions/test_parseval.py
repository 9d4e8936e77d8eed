import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS, make, trained

from cyclic_bench.errors import ConfigError
from cyclic_bench.learner import with_terms

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def by_hand(module, scale: float, reference_width: int) -> torch.Tensor:
    """[S]: the Parseval term written out per seed, twin critic and hidden layer (the output layer left out)."""
    S = module.layers[0].weight.shape[0]
    total = torch.zeros(S)
    for layer in module.layers[:-1]:
        w = layer.weight.detach().reshape(S, -1, layer.in_features, layer.out_features)
        for s in range(S):
            for m in range(w.shape[1]):
                rows = w[s, m].T  # one row per unit: its incoming weights (the paper's W with W x layers)
                gram = rows @ rows.T
                total[s] += (reference_width / layer.out_features) ** 2 * ((gram - scale * torch.eye(len(gram))) ** 2).sum()
    return total


def test_the_term_is_strength_times_the_parseval_penalty_of_every_hidden_layer(learner):
    agent = make("parseval", learner, strength=0.01, scale=2.0, reference_width=64)
    batch = trained(agent, steps=20).learner.sample()
    for name, net in agent.learner.networks.items():
        expected = by_hand(net.module, 2.0, 64)
        torch.testing.assert_close(agent.intervention.penalty(net).detach(), expected, rtol=1e-5, atol=1e-4)
        plain = net.loss(batch, agent.learner.probe_rng)
        torch.testing.assert_close(with_terms(plain, net) - plain, 0.01 * expected, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(agent.diagnostics()[f"{name}_parseval_penalty"], expected, rtol=1e-5, atol=1e-4)


def test_training_pulls_the_hidden_layers_toward_scaled_orthogonal_rows(learner):
    free, regular = make("parseval", learner, strength=0.0, lr=1e-2), make("parseval", learner, strength=0.1, lr=1e-2)
    start = {name: by_hand(net.module, 2.0, 64) for name, net in free.learner.networks.items()}
    for agent in (free, regular):
        for t in transitions(2, 80):
            agent.observe(t)
    for name in ("actor", "critic"):
        plain, pulled = (by_hand(agent.learner.networks[name].module, 2.0, 64) for agent in (free, regular))
        assert (pulled < 0.7 * start[name]).all() and (pulled < 0.7 * plain).all(), name


def test_bad_settings_are_refused(learner):
    with pytest.raises(ConfigError, match="method.scale=0.0 is not allowed"):
        make("parseval", learner, scale=0.0)
