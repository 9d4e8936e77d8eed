import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS, make, trained

from cyclic_bench.errors import ConfigError

pytestmark = pytest.mark.parametrize("learner", LEARNERS)


def by_hand_dormant(h: torch.Tensor, tau: float) -> torch.Tensor:
    """The paper's score, written out: mean |h_i| over the batch, divided by its average over the layer."""
    activity = h.abs().mean(dim=-2)
    return activity / activity.mean(dim=-1, keepdim=True) <= tau


def test_recycles_exactly_the_dormant_units_and_resets_their_moments(learner):
    agent = trained(make("redo", learner, redo_every=10**9))
    redo, actor = agent.intervention, agent.learner.networks["actor"]
    batch = agent.learner.sample()
    layer, following = actor.module.layers[0], actor.module.layers[1]
    with torch.no_grad():  # silence units 3 and 7 of seed 0's first actor layer; seed 1 keeps them
        layer.weight[0, :, [3, 7]] = 0.0
        layer.bias[0, :, [3, 7]] = -10.0
    hidden = []
    actor.module(batch["obs"], hidden=hidden)
    expected = by_hand_dormant(hidden[0], 0.1)
    assert expected[0, [3, 7]].all() and expected.sum() < expected.numel() / 2
    opt = actor.optimizer
    for moment in [*opt.exp_avg, *opt.exp_avg_sq]:
        moment.fill_(1.0)  # so that a reset is visible everywhere
    w_in, w_out = layer.weight.detach().clone(), following.weight.detach().clone()
    (m_in, v_in), (m_out, _) = (tuple(m.clone() for m in opt.moments(w)) for w in (layer.weight, following.weight))

    redo.recycle(batch)

    changed_in = (layer.weight.detach() != w_in).any(dim=1)  # [S, units]: a column of incoming weights was redrawn
    assert torch.equal(changed_in, expected)
    next_fresh = by_hand_dormant(hidden[1], 0.1).unsqueeze(1)  # [S, 1, units]: the next layer's recycled units redraw their column
    outgoing_zero = expected.unsqueeze(2) & ~next_fresh
    untouched = ~expected.unsqueeze(2) & ~next_fresh
    assert (following.weight.detach()[outgoing_zero] == 0).all()
    assert torch.equal(following.weight.detach()[untouched], w_out[untouched])
    m_in_after, v_in_after = opt.moments(layer.weight)
    assert (m_in_after.transpose(1, 2)[expected] == 0).all() and (v_in_after.transpose(1, 2)[expected] == 0).all()
    assert torch.equal(m_in_after.transpose(1, 2)[~expected], m_in.transpose(1, 2)[~expected])
    assert torch.equal(v_in_after.transpose(1, 2)[~expected], v_in.transpose(1, 2)[~expected])
    m_out_after = opt.moments(following.weight)[0]
    assert (m_out_after[expected] == 0).all() and torch.equal(m_out_after[untouched], m_out[untouched])
    assert redo.recycled["actor"][0] >= 2


def test_twin_critics_recycle_their_own_units_and_the_output_layer_is_never_recycled(learner):
    agent = trained(make("redo", learner, redo_every=10**9, redo_tau=0.0))  # tau 0: only units that never fire
    critic = agent.learner.critic
    with torch.no_grad():  # silence unit 5 of the second critic of seed 1, in the last hidden layer
        critic.layers[1].weight[1, 1, :, 5] = 0.0
        critic.layers[1].bias[1, 1, :, 5] = -10.0
    output_before = critic.layers[-1].bias.detach().clone()
    agent.intervention.recycle(agent.learner.sample())
    assert (critic.layers[-1].weight.detach()[1, 1, 5] == 0).all()
    assert (critic.layers[-1].weight.detach()[1, 0, 5] != 0).all()  # the first critic's unit 5 is a different unit
    assert torch.equal(critic.layers[-1].bias.detach(), output_before)


def test_an_inactive_seed_is_not_recycled(learner):
    agent = trained(make("redo", learner, redo_every=10**9, redo_tau=0.5))
    agent.deactivate(torch.tensor([True, False]))
    actor = agent.learner.actor
    before = [p.detach()[0].clone() for p in actor.parameters()]
    agent.intervention.recycle(agent.learner.sample())
    assert all(torch.equal(b, p[0]) for b, p in zip(before, actor.parameters(), strict=True))
    recycled = agent.intervention.recycled["actor"]
    assert recycled[0] == 0 and recycled[1] > 0


def test_checks_run_every_redo_every_updates(learner, monkeypatch):
    agent = make("redo", learner, redo_every=7)
    calls = []
    monkeypatch.setattr(agent.intervention, "recycle", lambda batch: calls.append(agent.learner.updates))
    for t in transitions(2, 40):
        agent.observe(t)
    assert calls == [7, 14, 21]  # updates start once the buffer holds a batch (16)


def test_bad_settings_are_refused(learner):
    with pytest.raises(ConfigError, match="redo_every"):
        make("redo", learner, redo_every=0)
    with pytest.raises(ConfigError, match="method.activation=crelu is not allowed with redo"):
        make("redo", learner, activation="crelu")
