import pytest
import torch
from helpers import inverted_pendulum_returns, transitions
from method_checks import make as make_pair
from method_checks import pick


def make(seed_ids, **overrides):
    return make_pair("td3", "td3", seed_ids, n_tasks=1, **overrides)


def test_a_seed_trains_the_same_alone_and_inside_a_batch(cpu_threads):
    batch, alone = make([4, 5, 6]), make([5])
    for a, b in zip(alone.learner.actor.parameters(), batch.learner.actor.parameters(), strict=True):
        assert torch.equal(a[0], b[1])  # bit-identical initial weights
    for t in transitions(3, 60):
        batch.observe(t)
        alone.observe(pick(t, 1))
    assert batch.learner.updates == alone.learner.updates > 40
    for name, module in alone.modules().items():
        for a, b in zip(module.parameters(), batch.modules()[name].parameters(), strict=True):
            torch.testing.assert_close(a[0], b[1], rtol=1e-5, atol=1e-6)
    obs = torch.randn(1, 3, 4)
    torch.testing.assert_close(alone.act(obs, explore=True)[0], batch.act(obs.expand(3, 3, 4), explore=True)[1], rtol=1e-5, atol=1e-6)


def test_learning_changes_weights_and_respects_the_warmup_flag():
    agent = make([0])
    critic = agent.learner.critic
    before = [p.detach().clone() for p in critic.parameters()]
    for t in transitions(1, 30):
        t.learn = False
        agent.observe(t)
    assert agent.learner.updates == 0 and agent.learner.replay.size == 30
    assert all(torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))
    for t in transitions(1, 5, seed=1):
        agent.observe(t)
    assert agent.learner.updates == 5
    assert not all(torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))


def test_the_actor_and_its_target_step_every_policy_delay_updates():
    agent = make([0], policy_delay=3)
    actor, target = agent.learner.actor, agent.learner.networks["actor"].target
    for t in transitions(1, 16):  # the 16th transition fills a batch: one update
        agent.observe(t)
    assert agent.learner.updates == 1 and all(torch.equal(a, b) for a, b in zip(actor.parameters(), target.parameters(), strict=True))
    for t in transitions(1, 2, seed=1):
        agent.observe(t)
    assert agent.learner.updates == 3 and not all(torch.equal(a, b) for a, b in zip(actor.parameters(), target.parameters(), strict=True))


def test_deterministic_actions_have_no_noise_and_stay_in_bounds():
    agent = make([0, 1])
    obs = torch.randn(2, 5, 4) * 100
    assert torch.equal(agent.act(obs, explore=False), agent.act(obs, explore=False))
    noisy = agent.act(obs, explore=True)
    assert noisy.abs().max() <= 1.0 and not torch.equal(noisy, agent.act(obs, explore=False))


def test_state_dict_round_trip_continues_identically():
    first = make([0, 1])
    data = list(transitions(2, 40))
    for t in data[:25]:
        first.observe(t)
    second = make([0, 1])
    second.load_state_dict(first.state_dict())
    for t in data[25:]:
        first.observe(t)
        second.observe(t)
    for a, b in zip(first.learner.critic.parameters(), second.learner.critic.parameters(), strict=True):
        assert torch.equal(a, b)


def test_an_inactive_seed_stops_updating():
    agent = make([0, 1])
    for t in transitions(2, 20):
        agent.observe(t)
    agent.deactivate(torch.tensor([False, True]))
    actor = agent.learner.actor
    frozen = [p.detach()[1].clone() for p in actor.parameters()]
    moving = [p.detach()[0].clone() for p in actor.parameters()]
    for t in transitions(2, 10, seed=3):
        agent.observe(t)
    assert all(torch.equal(f, p[1]) for f, p in zip(frozen, actor.parameters(), strict=True))
    assert not all(torch.equal(m, p[0]) for m, p in zip(moving, actor.parameters(), strict=True))


@pytest.mark.slow
def test_td3_learns_inverted_pendulum(tmp_path):
    """In 8k steps TD3 (64-unit networks, for CPU speed) goes from the random policy's return (9.1) to over 40.

    Balancing for the full 1000 steps takes TD3 tens of thousands of steps; a plain single-seed PyTorch TD3 with
    the same settings scores 57-122 over 3k-15k steps, like this one.
    """
    first, final = inverted_pendulum_returns("td3", tmp_path)
    assert final >= 40 and final >= 4 * first, (first, final)
